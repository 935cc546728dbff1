"""Program loader: a program image (Python source bytes) becomes a fresh module.

The image is first placed read-only in the process' code region (by the caller, through its
address space), then compiled (cached by content, so running the same program twice compiles
once) and executed as a new module whose `import` statements go through an allowlist derived
from the tier table (merriwig/tiers.py): the shared user-space libraries (euralios.std, proto,
vfs.protocol, vfs.server, net), scapy (for net), and pure standard-library modules; an image
exec'd with I/O privilege (a trusted driver that init starts) may also import drivers.*, the
drivers' own helpers. Anything else -- the kernel, the hardware, the front door, programs.*,
private user-space modules such as vfs.ramdisk, trio, os, sys, sockets, threads, ctypes -- fails
with an ImportError that names the rule. `open`, `eval`, `exec`, `compile`, `input` and
`breakpoint` are not builtins here.

This keeps honest programs honest; it is not a sandbox against a determined attacker (any Python
object graph leads back to the interpreter). SECURITY.md says so.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib
import sys
import types
from collections.abc import Callable
from typing import Any

from merriwig import tiers
from merriwig.errors import LoaderError

IMAGE_PREFIXES = tiers.image_imports(io=False)
PRIVILEGED_IMAGE_PREFIXES = tiers.image_imports(io=True)
PURE_STDLIB = frozenset(
    """
    __future__ abc argparse array ast base64 binascii bisect calendar cmath codecs collections
    colorsys contextlib copy csv dataclasses datetime decimal difflib dis enum errno fnmatch
    fractions functools graphlib hashlib heapq hmac html inspect io ipaddress itertools json
    keyword locale math numbers operator pprint queue random re reprlib secrets shlex statistics
    string stringprep struct textwrap token tokenize types typing typing_extensions unicodedata
    urllib urllib.parse uuid warnings weakref zlib zoneinfo
    """.split()
)
REMOVED_BUILTINS = ("open", "eval", "exec", "compile", "input", "breakpoint", "exit", "quit", "help")
_RULE = (f"EuraliOS programs may import {tiers.USER_LIBRARIES[0]}, the user-space libraries "
         f"({', '.join(tiers.USER_LIBRARIES[1:])}), {', '.join(tiers.USER_THIRD_PARTY)} and pure "
         f"standard-library modules; with I/O privilege also {', '.join(p + '.*' for p in tiers.PRIVILEGED_IMAGE_EXTRA)}")


def allowed(name: str, io: bool = False) -> bool:
    """May a program image import module `name`? io: the image runs with I/O privilege."""
    if any(name == p or name.startswith(p + ".") for p in (PRIVILEGED_IMAGE_PREFIXES if io else IMAGE_PREFIXES)):
        return True
    return name in PURE_STDLIB or name.split(".")[0] in PURE_STDLIB and name.split(".")[0] != "urllib"


def _importer(io: bool) -> Callable[..., Any]:
    def restricted_import(name: str, globals_: Any = None, locals_: Any = None, fromlist: Any = (),
                          level: int = 0) -> Any:
        if level != 0:
            raise ImportError("relative imports are not allowed in EuraliOS programs")
        if not allowed(name, io):
            # `from vfs import protocol` names the package; each module taken from it must pass.
            denied = [f"{name}.{f}" for f in fromlist or ()] or [name]
            denied = [m for m in denied if not allowed(m, io)]
            if denied:
                raise ImportError(f"import of {denied[0]!r} is not allowed: {_RULE}")
        return importlib.__import__(name, globals_, locals_, fromlist, level)

    return restricted_import


def _make_builtins(io: bool) -> dict[str, Any]:
    b = dict(vars(builtins))
    for name in REMOVED_BUILTINS:
        b.pop(name, None)
    b["__import__"] = _importer(io)
    return b


_BUILTINS = {False: _make_builtins(False), True: _make_builtins(True)}
_loads = 0
_CODE_CACHE: dict[bytes, types.CodeType] = {}


def compile_image(image: bytes, name: str) -> types.CodeType:
    key = hashlib.blake2b(image, digest_size=16).digest()
    code = _CODE_CACHE.get(key)
    if code is None:
        try:
            source = image.decode("utf-8")
        except UnicodeDecodeError as e:
            raise LoaderError(f"{name}: not a program (not UTF-8 Python source)") from e
        try:
            code = compile(source, f"<{name}>", "exec")
        except SyntaxError as e:
            raise LoaderError(f"{name}: syntax error line {e.lineno}: {e.msg}") from e
        if len(_CODE_CACHE) > 256:
            _CODE_CACHE.clear()
        _CODE_CACHE[key] = code
    return code


def load(image: bytes, name: str, *, io: bool = False) -> Callable[..., Any]:
    """Run the module body of a program image and return its `main` coroutine function.
    io: the process has I/O privilege (the image may also import drivers.*).

    Exceptions raised by the module body (including a forbidden import) propagate: the caller
    runs this inside the new process, so they kill that process alone."""
    code = compile_image(image, name)
    global _loads
    _loads += 1
    modname = f"__euralios_program_{_loads}__"
    module = types.ModuleType(modname)
    module.__dict__["__builtins__"] = _BUILTINS[io]
    # Registered while its body runs: decorators such as @dataclass look their module up in
    # sys.modules. Removed afterwards so finished programs leave nothing behind.
    sys.modules[modname] = module
    try:
        exec(code, module.__dict__)  # noqa: S102 - this is the loader
    finally:
        sys.modules.pop(modname, None)
    main: object = module.__dict__.get("main")
    if not callable(main):
        raise LoaderError(f"{name}: program has no main(proc) function")
    return main
