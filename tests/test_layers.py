"""The tier table (merriwig/tiers.py) holds: every import in the tree obeys it, and the loader's
allowlist for program images is exactly what it derives.

Imports are read with ast, so every form counts: module level, inside functions, under
`if TYPE_CHECKING:`, `from X import module`, and relative imports (`from . import x`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from merriwig import loader, tiers
from merriwig.errors import LoaderError

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("proto", "machine", "merriwig", "euralios", "drivers", "vfs", "net", "programs")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    """Is `name` a module or package of ours (a file or a directory in the tree)?"""
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every module a file imports."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from X import a`: a may be a module of ours (then that is what is imported) or a
            # name defined in X.
            subs = [f"{base}.{a.name}" for a in node.names if a.name != "*" and is_module(f"{base}.{a.name}")]
            if len(subs) < len(node.names):
                yield node.lineno, base
            for sub in subs:
                yield node.lineno, sub


def sources() -> list[Path]:
    return sorted(p for pkg in CHECKED for p in (ROOT / pkg).rglob("*.py") if ".venv" not in p.parts)


def rule(importer: str) -> str:
    tier, own = tiers.tier_of(importer)
    allowed = "anything" if tier.may_import is None else ", ".join((own, *tier.may_import))
    return f"{tier.name} may import {allowed}"


def test_every_module_of_ours_has_a_tier() -> None:
    missing = []
    for path in sources():
        try:
            tiers.tier_of(module_name(path))
        except KeyError:
            missing.append(str(path.relative_to(ROOT)))
    assert not missing


def test_every_import_obeys_the_tier_table() -> None:
    violations = []
    for path in sources():
        importer = module_name(path)
        for line, target in imports(path):
            if not tiers.may_import(importer, target):
                violations.append(f"{path.relative_to(ROOT)}:{line}: {importer} imports {target} ({rule(importer)})")
    print("\n".join(violations))
    assert not violations, "\n" + "\n".join(violations)


def test_the_table_says_what_design_md_says() -> None:
    may = tiers.may_import
    assert may("proto.tcp.connection", "proto.wire") and not may("proto.wire", "machine.mmu")
    assert may("machine.board", "proto.wire") and not may("machine.board", "merriwig.kernel")
    assert may("merriwig.kernel", "machine.mmu") and not may("merriwig.kernel", "vfs.protocol")
    assert not may("euralios.std.proc", "merriwig.abi") and not may("euralios.std.net", "trio")
    assert may("euralios.boot", "programs.init") and may("euralios.cli", "trio")
    assert may("drivers.keyboard", "drivers.keymap") and may("programs.shell", "programs.lineedit")
    assert may("net.dns", "scapy.layers.dns") and not may("net.stack", "trio")
    for user in ("programs.init", "net.server", "vfs.server", "drivers.console"):
        assert may(user, "euralios.std") and may(user, "vfs.protocol") and may(user, "net.dns")
        assert not may(user, "merriwig.kernel") and not may(user, "machine.vga") and not may(user, "euralios.boot")
    assert not may("programs.init", "drivers.keyboard") and not may("programs.init", "vfs.ramdisk")
    assert not may("net.server", "programs.shell") and not may("vfs.ramdisk", "drivers.vt")


def test_the_loader_allowlist_is_what_the_table_derives() -> None:
    """Pinned, as trio's test_exports pins its public surface: a change to either is deliberate."""
    assert loader.IMAGE_PREFIXES == tiers.image_imports(io=False) == (
        "euralios.std", "proto", "vfs.protocol", "vfs.server", "vfs.ninep", "net", "scapy")
    assert loader.PRIVILEGED_IMAGE_PREFIXES == tiers.image_imports(io=True) == (
        *loader.IMAGE_PREFIXES, "drivers")


MAIN = b"\nasync def main(proc):\n    return 0\n"


@pytest.mark.parametrize("source", [
    "import drivers.keymap", "from drivers import keymap", "import programs.shell",
    "from programs import lineedit", "import merriwig", "from merriwig import kernel",
    "import machine", "import machine.mmu", "import vfs.ramdisk", "from vfs import ramdisk",
    "import merriwig.namespace", "import euralios.boot",
])
def test_a_program_image_may_not_import_private_or_lower_tier_modules(source: str) -> None:
    with pytest.raises(ImportError, match="is not allowed"):
        loader.load(source.encode() + MAIN, "bad")


@pytest.mark.parametrize("source", [
    "import euralios.std", "from euralios.std import abi", "import proto.tcp", "from proto.wire import ipv4",
    "import vfs.server", "from vfs import protocol, server", "import net.dns", "from net import dns",
])
def test_a_program_image_may_import_the_shared_user_space_libraries(source: str) -> None:
    assert callable(loader.load(source.encode() + MAIN, "good"))


def test_only_an_image_with_io_privilege_may_import_the_drivers_helpers() -> None:
    image = b"import drivers.keymap\nfrom drivers import vt" + MAIN
    with pytest.raises(ImportError, match="'drivers.keymap' is not allowed"):
        loader.load(image, "driver")
    assert callable(loader.load(image, "driver", io=True))
    with pytest.raises(ImportError, match="'programs.lineedit' is not allowed"):
        loader.load(b"from programs import lineedit" + MAIN, "driver", io=True)
    with pytest.raises(LoaderError):
        loader.load(b"import drivers.keymap\n", "driver", io=True)  # allowed, but no main
