"""What a share is, as the command line says it: ``--share`` and QEMU's ``-virtfs``.

    --share DIR[,tag=NAME][,readonly=on][,user=on]
    -virtfs local,path=DIR,mount_tag=NAME,security_model=none|mapped-xattr[,readonly=on][,id=X]

The tag defaults to the folder's basename (``--share`` only; ``-virtfs`` needs mount_tag as in
QEMU). It names the share in the guest, which mounts it at /host/TAG, so it must be one path
component: letters, digits, ``.``, ``_``, ``-``, at most 31 bytes (QEMU's limit), not ``.`` or
``..``. ``user=on`` also gives the account ``user`` the share (the guest's policy, carried here
so one option says everything about a share). security_model: this server never maps owners
(files are created as the host user running euralios, like QEMU's ``none``), and it stores no
xattrs, so ``none`` is accepted and so is ``mapped-xattr`` (taken as ``none``; said in --help);
``passthrough`` and ``mapped-file`` are refused, since they promise what is not done.

Every mistake is a ValueError with one line that says what to write instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from machine.virtio.ninep import MAX_TAG_LEN as MAX_TAG

_TAG = re.compile(r"[A-Za-z0-9._-]+")
_ON = {"on": True, "yes": True, "true": True, "1": True, "off": False, "no": False, "false": False, "0": False}
SECURITY_MODELS = ("none", "mapped-xattr")


@dataclass(frozen=True, slots=True)
class ShareOption:
    """One host folder shared with the guest."""

    path: str  # absolute, a directory that existed when the option was read
    tag: str
    readonly: bool = False
    user: bool = False  # the account `user` sees it too


def check_tag(tag: str, where: str) -> str:
    if not _TAG.fullmatch(tag) or tag in (".", "..") or len(tag.encode()) > MAX_TAG:
        raise ValueError(f"{where}: bad tag {tag!r} (letters, digits, '.', '_', '-'; at most {MAX_TAG} bytes)")
    return tag


def _flag(key: str, value: str, where: str) -> bool:
    try:
        return _ON[value.lower()]
    except KeyError:
        raise ValueError(f"{where}: {key}={value!r} must be on or off") from None


def _folder(path: str, where: str) -> str:
    if not path:
        raise ValueError(f"{where}: no folder given")
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(full):
        what = "is not a folder" if os.path.exists(full) else "does not exist"
        raise ValueError(f"{where}: {path} {what}")
    return full


def _pairs(parts: list[str], where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq:
            raise ValueError(f"{where}: {part!r} is not KEY=VALUE")
        if key in out:
            raise ValueError(f"{where}: {key} given twice")
        out[key] = value
    return out


def parse_share(text: str) -> ShareOption:
    """``DIR[,tag=NAME][,readonly=on][,user=on]``."""
    where = f"--share {text}"
    path, *rest = text.split(",")
    opts = _pairs(rest, where)
    unknown = set(opts) - {"tag", "readonly", "user"}
    if unknown:
        raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r} (tag=, readonly=, user=)")
    full = _folder(path, where)
    tag = opts.get("tag") or os.path.basename(full.rstrip("/"))
    if "tag" not in opts and not _TAG.fullmatch(tag or ""):
        raise ValueError(f"{where}: the folder's name {tag!r} cannot be a tag: add tag=NAME")
    return ShareOption(full, check_tag(tag, where), _flag("readonly", opts.get("readonly", "off"), where),
                       _flag("user", opts.get("user", "off"), where))


def parse_virtfs(text: str) -> ShareOption:
    """QEMU's ``local,path=DIR,mount_tag=NAME,security_model=none[,readonly=on][,id=X]``."""
    where = f"-virtfs {text}"
    driver, *rest = text.split(",")
    if driver != "local":
        raise ValueError(f"{where}: only the 'local' fsdriver exists here")
    opts = _pairs(rest, where)
    unknown = set(opts) - {"path", "mount_tag", "security_model", "readonly", "id", "user"}
    if unknown:
        raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r} "
                         "(path=, mount_tag=, security_model=, readonly=, id=, user=)")
    for key in ("path", "mount_tag", "security_model"):
        if key not in opts:
            raise ValueError(f"{where}: {key}= is needed")
    model = opts["security_model"]
    if model not in SECURITY_MODELS:
        raise ValueError(f"{where}: security_model={model} is not supported (none or mapped-xattr)")
    return ShareOption(_folder(opts["path"], where), check_tag(opts["mount_tag"], where),
                       _flag("readonly", opts.get("readonly", "off"), where),
                       _flag("user", opts.get("user", "off"), where))


def check_shares(shares: list[ShareOption]) -> list[ShareOption]:
    """The list as given, once no tag is used twice (ValueError otherwise)."""
    seen: set[str] = set()
    for s in shares:
        if s.tag in seen:
            raise ValueError(f"two shares have the tag {s.tag!r}: give one of them tag=NAME")
        seen.add(s.tag)
    return shares
