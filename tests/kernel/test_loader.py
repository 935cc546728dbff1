"""The loader: source images become processes; imports go through the allowlist."""

from __future__ import annotations

import pytest

from euralios.boot import boot
from merriwig.errors import LoaderError
from merriwig.loader import allowed, load


def test_allowlist_rules() -> None:
    for ok in ("euralios.std", "euralios.std.fs", "json", "collections.abc", "proto.tcp", "scapy.layers.inet",
               "vfs.server", "urllib.parse"):
        assert allowed(ok), ok
    for bad in ("merriwig", "merriwig.kernel", "machine.mmu", "trio", "os", "sys", "socket", "ctypes",
                "subprocess", "threading", "euralios.boot", "euralios", "merriwig.namespace", "importlib", "urllib.request"):
        assert not allowed(bad), bad


def test_forbidden_import_names_the_rule() -> None:
    with pytest.raises(ImportError, match="import of 'os' is not allowed: EuraliOS programs may import euralios.std"):
        load(b"import os\nasync def main(proc):\n    return 0\n", "bad")
    with pytest.raises(ImportError, match="merriwig"):
        load(b"from merriwig import kernel\n", "bad")


def test_no_open_eval_or_exec_builtins_and_main_required() -> None:
    with pytest.raises(NameError):
        load(b"open('/etc/passwd')\n", "x")
    with pytest.raises(LoaderError, match="no main"):
        load(b"x = 1\n", "nomain")
    with pytest.raises(LoaderError, match="syntax error line 1"):
        load(b"def (:\n", "broken")
    with pytest.raises(LoaderError, match="not UTF-8"):
        load(b"\xff\xfe\x00", "binary")


async def test_source_program_runs_and_forbidden_import_kills_only_it() -> None:
    good = b"import json\nasync def main(proc):\n    await proc.print(json.dumps({'ok': proc.args[1:]}))\n    return 4\n"
    bad = b"import socket\nasync def main(proc):\n    return 0\n"
    async with boot() as system:
        assert await system.run(good, ["good", "a", "b"]) == 4
        assert await system.run(bad, ["bad"]) == 1
        assert '{"ok": ["a", "b"]}' in system.output()
        assert "killed: ImportError: import of 'socket' is not allowed" in system.klog()


async def test_program_image_lives_read_only_in_the_code_region() -> None:
    src = b"async def main(proc):\n    return proc.gate.load(0x400000, 5) == b'async'\n"
    async with boot() as system:
        assert await system.run(src) == 1  # True -> 1 (main returned True)


async def test_dataclasses_work_in_programs_loaded_from_source() -> None:
    src = (b"from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int\n    y: int = 2\n"
           b"async def main(proc):\n    return P(3).x + P(1).y\n")
    async with boot() as system:
        assert await system.run(src) == 5


def test_every_program_gets_builtins_of_its_own() -> None:
    """A program that rewrites its builtins (directly or through a function's globals) changes
    no other program's: a trojan planted there once ran when root logged in."""
    first = load(b"__builtins__['len'] = lambda x: 42\n"
                 b"async def main(proc):\n    return 0\n", "trojan")
    first.__globals__["__builtins__"]["sorted"] = lambda *a, **k: ["planted"]
    second = load(b"async def main(proc):\n    return 0\nRESULT = (len([1, 2]), sorted([2, 1]))\n", "next")
    assert second.__globals__["RESULT"] == (2, [1, 2])
    assert first.__globals__["__builtins__"] is not second.__globals__["__builtins__"]


def test_the_code_cache_is_out_of_a_programs_reach() -> None:
    """Nothing a program holds leads to the loader's compiled-code cache: walk every object
    reachable from its module (globals, builtins, the import function and what it refers to)."""
    import gc

    from merriwig import loader

    main = load(b"import json\nasync def main(proc):\n    return json.dumps(1)\n", "walker")
    seen: set[int] = set()
    frontier: list[object] = [main, main.__globals__, main.__globals__["__builtins__"]]
    for _ in range(6):
        nxt: list[object] = []
        for obj in frontier:
            if id(obj) in seen or isinstance(obj, type(gc)) and obj is not loader and obj.__name__ not in ("merriwig.imports",):
                continue  # other modules (json, importlib...) are the interpreter's, not the loader's
            seen.add(id(obj))
            assert obj is not loader._CODE_CACHE, "the code cache is reachable from a program"
            assert obj is not loader, "the loader module is reachable from a program"
            nxt.extend(gc.get_referents(obj))
        frontier = nxt
