"""The tier table: which of our packages may import which (DESIGN.md §1).

This is the one table. The loader's allowlist for program images (merriwig/loader.py) and the
import check over the whole tree (tests/test_layers.py) are both derived from it, so the rule a
program meets at run time and the rule the source is held to cannot drift apart.

    proto/          pure sans-IO protocol code               -> nothing of ours
    machine/        the emulated PC                           -> proto
    merriwig/       the kernel                                -> machine, proto
    euralios/std/   the user standard library                 -> nothing of ours, no third party
    euralios/       the front door (host side)                -> anything
    drivers/ vfs/ net/ programs/   user space                 -> the shared user-space libraries
                    (euralios.std, proto, vfs.protocol, vfs.server, vfs.ninep, net.*), the standard library
                    and scapy

Every module may import the modules of its own package (for user space: its own top-level
package, so drivers/keyboard.py may use drivers/keymap.py and programs/shell.py
programs/lineedit.py). drivers/ and programs/ are private: apart from their own modules only the
front door imports them.

Program images exec'd from files may import only the shared user-space libraries and scapy (the
loader adds the pure standard library). An image exec'd with I/O privilege -- a trusted driver
that init starts -- may also import drivers.*, the drivers' own helpers (drivers.keymap,
drivers.vt ...).

The kernel holds the table because the loader needs it and the kernel imports nothing above
itself; it is plain data, imported by the tests as well.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

OURS = ("proto", "machine", "merriwig", "euralios", "drivers", "vfs", "net", "programs")
USER_LIBRARIES = ("euralios.std", "proto", "vfs.protocol", "vfs.server", "vfs.ninep", "net")
USER_THIRD_PARTY = ("scapy",)
PRIVILEGED_IMAGE_EXTRA = ("drivers",)  # what an image exec'd with I/O privilege may add


@dataclass(frozen=True, slots=True)
class Tier:
    """packages: module prefixes of this tier. may_import: prefixes of ours its modules may import
    besides their own package (None: anything). third_party: the only non-stdlib packages not
    ours it may import (None: not restricted by this table)."""

    name: str
    packages: tuple[str, ...]
    may_import: tuple[str, ...] | None
    third_party: tuple[str, ...] | None = None
    own_top_level: bool = False  # own package = the top-level package (user space)


TIERS = (
    Tier("proto", ("proto",), ()),
    Tier("machine", ("machine",), ("proto",)),
    Tier("kernel", ("merriwig",), ("machine", "proto")),
    Tier("std", ("euralios.std",), (), third_party=()),
    Tier("front door", ("euralios",), None),
    Tier("user space", ("drivers", "vfs", "net", "programs"), USER_LIBRARIES, third_party=USER_THIRD_PARTY,
         own_top_level=True),
)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def is_ours(name: str) -> bool:
    return any(_within(name, p) for p in OURS)


def tier_of(module: str) -> tuple[Tier, str]:
    """The tier a module of ours belongs to, and its own package. KeyError: not ours."""
    best: tuple[Tier, str] | None = None
    for tier in TIERS:
        for p in tier.packages:
            if _within(module, p) and (best is None or len(p) > len(best[1])):
                best = (tier, p)
    if best is None:
        raise KeyError(module)
    tier, package = best
    return tier, module.split(".")[0] if tier.own_top_level else package


def may_import(importer: str, target: str) -> bool:
    """May module `importer` (ours) import module `target`? Standard-library modules always."""
    tier, own = tier_of(importer)
    if is_ours(target):
        if tier.may_import is None or _within(target, own):
            return True
        return any(_within(target, p) for p in tier.may_import)
    top = target.split(".")[0]
    if top in sys.stdlib_module_names or tier.third_party is None:
        return True
    return top in tier.third_party


def image_imports(io: bool) -> tuple[str, ...]:
    """Prefixes a program image may import besides the pure standard library: the shared
    user-space libraries and scapy; with I/O privilege also drivers.*"""
    return USER_LIBRARIES + USER_THIRD_PARTY + (PRIVILEGED_IMAGE_EXTRA if io else ())
