"""Host folders shared with the guest (``--share``): what the host tells init and login.

The host (euralios/system_boot.py) puts one word per share in init's environment, SHARES,
space-separated: ``TAG`` then ``,ro`` if the share is read-only and ``,user`` if the account
`user` may see it, e.g. ``SHARES="src,user photos,ro"``. init starts one drivers/virtio_9p.py per
share and mounts it at /host/TAG in root's VFS; init passes SHARES on to login, which mounts the
``,user`` ones in a `user` session's VFS (read-only there when ``,ro``). The tag is the device's
own (its mount-tag config field): the driver finds its device by it. Tags are one path
component (the host checked them: machine/share/options.py).
"""

from __future__ import annotations

from dataclasses import dataclass

SHARES_ENV = "SHARES"
HOST_ROOT = "/host"  # each share at /host/TAG
VENDOR = 0x1AF4
DEVICES = (0x1009, 0x1049)  # virtio-9p: transitional, and non-transitional (0x1040 + 9)


@dataclass(frozen=True, slots=True)
class Share:
    tag: str
    readonly: bool = False
    user: bool = False

    @property
    def path(self) -> str:
        return f"{HOST_ROOT}/{self.tag}"


def encode(shares: list[Share]) -> str:
    return " ".join(s.tag + (",ro" if s.readonly else "") + (",user" if s.user else "") for s in shares)


def decode(text: str) -> list[Share]:
    """The SHARES word back as Share records; a malformed entry (an empty tag, a '/' in it, an
    unknown flag) is skipped, never mounted somewhere unexpected."""
    out = []
    for word in text.split():
        tag, *flags = word.split(",")
        if not tag or "/" in tag or tag in (".", "..") or set(flags) - {"ro", "user"}:
            continue
        out.append(Share(tag, "ro" in flags, "user" in flags))
    return out
