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

Every program gets builtins of its own (merriwig/imports.py), and the compiled-code cache here is
reachable from nothing a program holds, so one program cannot change what the next one runs.
Inside one interpreter this keeps honest programs honest; it is not a sandbox (any Python object
graph leads back to the interpreter): that is why programs from files run confined, in a worker
of their own (merriwig/confine/), where this loader runs too. SECURITY.md says so.
"""

from __future__ import annotations

import hashlib
import sys
import types
from collections.abc import Callable
from typing import Any

from merriwig.errors import LoaderError
from merriwig.imports import IMAGE_PREFIXES, PRIVILEGED_IMAGE_PREFIXES, PURE_STDLIB, allowed, make_builtins

__all__ = ["IMAGE_PREFIXES", "PRIVILEGED_IMAGE_PREFIXES", "PURE_STDLIB", "allowed", "compile_image", "load"]

_loads = 0
_CODE_CACHE: dict[bytes, types.CodeType] = {}  # not reachable from a program: see merriwig/imports.py


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
    module.__dict__["__builtins__"] = make_builtins(io)
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
