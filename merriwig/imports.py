"""What a program image's module gets as its builtins: the import allowlist and nothing else.

A separate module from the loader on purpose: the restricted `__import__` is a function in every
program's builtins, and a function leads to its module's globals (`f.__globals__`). Here those
globals hold only the allowlist; the loader's compiled-code cache lives in merriwig/loader.py,
which nothing a program holds refers to. Every program gets a builtins dict of its own
(`make_builtins`), so a program that changes its builtins changes no other program's.
"""

from __future__ import annotations

import builtins
import importlib
from collections.abc import Callable
from typing import Any

from merriwig import tiers

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


def make_builtins(io: bool) -> dict[str, Any]:
    """A fresh builtins dict for one program (about 10 us): its own, to change as it likes."""
    b = dict(vars(builtins))
    for name in REMOVED_BUILTINS:
        b.pop(name, None)
    b["__import__"] = _importer(io)
    return b
