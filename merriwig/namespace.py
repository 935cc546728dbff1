"""The mount table (a process' VFS): longest match on whole path components.

A VFS is an ordered list of (path, target) pairs, shared between processes or copied at exec
(spec §9). The mount table is the kernel's (DESIGN.md §1: merriwig owns it): the kernel stores
rendezvous objects as targets, and this module does not care what they are.

Improvements over the seed: umount keeps the list order (the seed swap-removes), and a path given
to umount is normalised the same way mount normalises it, so `umount /x/` finds `/x`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def normalise(path: str) -> str:
    """Trim white space and trailing slashes; `/` becomes the empty string (matches everything)."""
    return path.strip().rstrip("/")


class Namespace(Generic[T]):
    """An ordered, mutable mount list. Several processes may hold the same object (shared VFS)."""

    __slots__ = ("_entries", "holders")

    def __init__(self, entries: list[tuple[str, T]] | None = None) -> None:
        self._entries: list[tuple[str, T]] = list(entries or [])
        self.holders = 0  # processes (and the host) using this table; the kernel counts them

    def mount(self, path: str, target: T) -> None:
        """Add a mount. Later mounts of the same path shadow earlier ones until umounted."""
        self._entries.append((normalise(path), target))

    def umount(self, path: str) -> T:
        """Remove the most recent mount at `path` and return its target; KeyError if none."""
        key = normalise(path)
        for i in range(len(self._entries) - 1, -1, -1):
            if self._entries[i][0] == key:
                return self._entries.pop(i)[1]
        raise KeyError(path)

    def resolve(self, path: str) -> tuple[T, int]:
        """Return (target, matched length) of the longest mount that is a whole-component prefix.

        `/ramdisksystem` does not match `/ramdisk`; the newest of equal mounts wins. KeyError if
        nothing matches (including any path not starting with `/`)."""
        best: tuple[T, int] | None = None
        best_len = -1
        for mpath, target in self._entries:
            n = len(mpath)
            if n >= best_len and path.startswith(mpath) and (len(path) == n or path[n] == "/"):
                if n == 0 and not path.startswith("/"):
                    continue
                best, best_len = (target, n), n
        if best is None:
            raise KeyError(path)
        return best

    def copy(self) -> Namespace[T]:
        """An independent snapshot (exec's `C` mode): later changes are not shared."""
        return Namespace(self._entries)

    def paths(self) -> list[str]:
        return [p or "/" for p, _ in self._entries]

    def to_json(self) -> str:
        """The list_mounts reply: a JSON array of mount paths (the seed's format, minus its
        trailing comma, which made it invalid JSON)."""
        return json.dumps(self.paths())

    def targets(self) -> Iterator[T]:
        return (t for _, t in self._entries)

    def clear(self) -> list[T]:
        out = [t for _, t in self._entries]
        self._entries.clear()
        return out

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: str) -> bool:
        key = normalise(path)
        return any(p == key for p, _ in self._entries)
