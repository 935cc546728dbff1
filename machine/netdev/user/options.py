"""What ``--net user,...`` may say: ``hostfwd=`` rules, ``hosts=FILE``, ``domainname=NAME``,
``restrict=on|off``.

**restrict=on** is QEMU's: the guest is isolated, it cannot contact the host and none of its
packets is relayed over the host to the outside; the router's own built-in services (DHCP, and
its DNS server for the names in its hosts table: the host's resolver is not asked, as slirp does
not forward DNS when restricted) and explicitly set ``hostfwd`` rules keep working. What the guest
sends anywhere else is dropped, as slirp drops it.

**Port forwarding** uses QEMU's syntax (``hostfwd=tcp:127.0.0.1:7070-:70``, ``hostfwd=udp:...``,
repeatable); the
``hosts`` file has /etc/hosts' syntax (``ADDRESS NAME...`` lines) and feeds the router's DNS
server. Bad words are a one-line ValueError naming the option, for the front door to print.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from machine.netdev.user.segment import GUEST

__all__ = [
    "HostFwd",
    "UserOptions",
    "DEFAULT_DOMAIN",
    "parse_hostfwd",
    "parse_user_options",
    "parse_hosts",
    "load_hosts",
]

DEFAULT_DOMAIN = "euralios.internal"  # .internal: reserved for private use (ICANN, 2024)


@dataclass(frozen=True)
class HostFwd:
    """One ``hostfwd`` rule: host ``host_addr:host_port`` -> guest ``guest_addr:guest_port``."""

    proto: str
    host_addr: str
    host_port: int
    guest_addr: str
    guest_port: int


@dataclass
class UserOptions:
    """What ``--net user,...`` may say (QEMU's option names where QEMU has one)."""

    hostfwd: list[HostFwd] = field(default_factory=list)
    hosts: str | None = None
    domain: str = DEFAULT_DOMAIN
    restrict: bool = False


def _port(text: str, what: str, rule: str, allow_zero: bool) -> int:
    try:
        port = int(text, 10)
    except ValueError:
        port = -1
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise ValueError(f"--net user: hostfwd={rule}: bad {what} port {text!r}")
    return port


def _address(text: str, default: str, what: str, rule: str) -> str:
    if not text:
        return default
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise ValueError(f"--net user: hostfwd={rule}: bad {what} address {text!r}") from None


def parse_hostfwd(rule: str) -> HostFwd:
    """``[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport`` (QEMU's syntax) -> HostFwd.

    An empty host address means every interface (as in QEMU), an empty guest address the DHCP
    address 10.0.2.15; host port 0 picks a free port (see ``UserBackend.hostfwd_ports``)."""
    host, sep, guest = rule.partition("-")
    if not sep:
        raise ValueError(f"--net user: hostfwd={rule}: expected [tcp:|udp:][hostaddr]:hostport-[guestaddr]:guestport")
    proto, _, rest = host.partition(":")
    if not _:
        raise ValueError(f"--net user: hostfwd={rule}: expected [tcp:|udp:][hostaddr]:hostport-[guestaddr]:guestport")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp"):
        raise ValueError(f"--net user: hostfwd={rule}: forwarding is tcp or udp, not {proto!r}")
    haddr, hsep, hport = rest.rpartition(":")
    gaddr, gsep, gport = guest.rpartition(":")
    if not hsep or not gsep:
        raise ValueError(f"--net user: hostfwd={rule}: expected [tcp:|udp:][hostaddr]:hostport-[guestaddr]:guestport")
    return HostFwd(
        proto,
        _address(haddr, "0.0.0.0", "host", rule),
        _port(hport, "host", rule, allow_zero=True),
        _address(gaddr, GUEST, "guest", rule),
        _port(gport, "guest", rule, allow_zero=False),
    )


_SWITCH = {"on": True, "yes": True, "y": True, "off": False, "no": False, "n": False}  # QEMU's booleans


def parse_user_options(text: str) -> UserOptions:
    """The words after ``user,``: ``hostfwd=RULE`` (repeatable), ``hosts=FILE``, ``domainname=D``,
    ``restrict=on|off``."""
    opts = UserOptions()
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not value:
            raise ValueError(f"--net user: expected key=value, got {item!r}")
        if key == "hostfwd":
            opts.hostfwd.append(parse_hostfwd(value.strip()))
        elif key == "hosts":
            opts.hosts = value.strip()
        elif key in ("domainname", "domain"):
            opts.domain = value.strip().strip(".").lower()
        elif key == "restrict":
            word = value.strip().lower()
            if word not in _SWITCH:
                raise ValueError(f"--net user: restrict={value.strip()}: expected on or off")
            opts.restrict = _SWITCH[word]
        else:
            raise ValueError(f"--net user: unknown option {key!r} (use hostfwd=, hosts=, domainname=, restrict=)")
    return opts


def parse_hosts(text: str, source: str = "hosts") -> dict[str, list[str]]:
    """``ADDRESS NAME...`` lines (``#`` comments) -> lower-case name -> IPv4 addresses.

    IPv6 lines are skipped rather than refused, so the host's own /etc/hosts can be given."""
    table: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        try:
            addr = ipaddress.ip_address(words[0])
        except ValueError:
            raise ValueError(f"{source}:{number}: {words[0]!r} is not an IP address") from None
        if len(words) < 2:
            raise ValueError(f"{source}:{number}: an address needs at least one name")
        if addr.version != 4:
            continue
        for name in words[1:]:
            addrs = table.setdefault(name.lower().rstrip("."), [])
            if str(addr) not in addrs:
                addrs.append(str(addr))
    return table


def load_hosts(path: str) -> dict[str, list[str]]:
    """Read a hosts file; a missing or bad file is a one-line ValueError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ValueError(f"--net user: hosts={path}: {e.strerror or e}") from None
    return parse_hosts(text, path)
