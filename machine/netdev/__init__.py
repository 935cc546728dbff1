"""Frame backends: where the emulated NIC's wire goes on the host (``--net``, like QEMU's -netdev).

Every backend has the same small interface, so the NIC model and the wrappers (pcap capture,
impairment) never care what is behind it:

* ``await backend.run(deliver)``: runs until cancelled, calling ``deliver(frame)`` for every frame
  arriving from the outside. Backends with a host fd wait on it with ``trio.lowlevel.wait_readable``
  and so cost nothing while the network is quiet (no polling).
* ``backend.send(frame)``: put one frame from the guest on the wire. Never blocks and never raises
  for network conditions (a full socket buffer, an interface that is down): like a real wire, it
  drops the frame and counts it in ``stats``.
* ``backend.close()``: release host resources; safe to call twice.

``make_backend("tap:tap0", pcap="out.pcap", impair="loss=5,seed=1")`` builds one from the command
line's words. Bad words raise ValueError with a one-line message; a backend the host will not allow
(no root) raises :class:`BackendError` saying what to use instead.

The words are ``KIND``, ``KIND:ARG`` or, QEMU-style, ``KIND,OPTION=VALUE,...``:
``user`` (the built-in router, :mod:`machine.netdev.user`; options ``hostfwd=tcp:HOST:PORT-:PORT``,
repeatable, ``hosts=FILE``, ``domainname=NAME``), ``switch:NAME`` (machines on this host joined
by a virtual switch, :mod:`machine.netdev.switch`), ``tap:NAME``, ``raw:NAME``, ``none``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import trio

Deliver = Callable[[bytes], object]


class BackendError(Exception):
    """The host refused the backend (permissions, no such interface, no TUN support).

    Its text is a complete one-line message for the user, e.g. ``--net tap:tap0: permission denied
    (needs root or CAP_NET_ADMIN); use --net user``."""


class Backend:
    """Base class of every backend; subclasses override :meth:`run`, :meth:`send`, :meth:`close`."""

    #: The ``--net`` words that made this backend (for messages and ``stats``).
    spec = "none"

    def __init__(self) -> None:
        self.counters: dict[str, int] = {"rx_frames": 0, "rx_bytes": 0, "tx_frames": 0, "tx_bytes": 0,
                                         "tx_dropped": 0}

    @property
    def stats(self) -> dict[str, int]:
        """Frames and bytes each way and frames lost on the way out (wrappers add their own)."""
        return self.counters

    async def run(self, deliver: Deliver) -> None:
        """Deliver frames from the outside until cancelled."""
        await trio.sleep_forever()

    def send(self, frame: bytes) -> None:
        """One frame from the guest; the base class (and ``none``) drops it."""
        self.counters["tx_dropped"] += 1

    def close(self) -> None:
        """Release host resources (nothing here)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"


class NoneBackend(Backend):
    """``--net none``: a cable to nowhere. Sent frames are dropped, nothing ever arrives."""


class Wrapper(Backend):
    """A backend that passes frames to and from an inner one (pcap capture, impairment)."""

    def __init__(self, inner: Backend) -> None:
        super().__init__()
        self.inner = inner
        self.spec = inner.spec

    def close(self) -> None:
        self.inner.close()


def _tap(arg: str) -> Backend:
    from machine.netdev.tap import TapBackend

    return TapBackend(arg)


def _raw(arg: str) -> Backend:
    from machine.netdev.raw import RawBackend

    return RawBackend(arg)


def _user(arg: str) -> Backend:
    from machine.netdev.user import make_user_backend

    return make_user_backend(arg)


def _switch(arg: str) -> Backend:
    from machine.netdev.switch import SwitchBackend

    return SwitchBackend(arg)


def _none(arg: str) -> Backend:
    if arg:
        raise ValueError(f"--net none takes no argument, got {arg!r}")
    return NoneBackend()


#: ``--net KIND[:ARG]`` or ``--net KIND[,OPTIONS]`` -> factory(ARG or OPTIONS).
FACTORIES: dict[str, Callable[[str], Backend]] = {
    "user": _user,
    "switch": _switch,
    "tap": _tap,
    "raw": _raw,
    "none": _none,
}
_NEEDS_ARG = {"tap": "tap:NAME", "raw": "raw:NAME", "switch": "switch:NAME"}
_KIND = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)(?:[:,](.*))?\Z", re.S)


def make_backend(
    spec: str, *, pcap: str | None = None, impair: str | None = None, hosts: str | None = None
) -> Backend:
    """The backend for ``--net SPEC``, wrapped for ``--impair`` and ``--pcap`` when given.

    ``hosts`` is ``--hosts FILE``: the names the ``user`` router's DNS server answers first.
    The capture is closest to the guest, so the file shows exactly what the NIC sent and what it
    was handed after impairment."""
    m = _KIND.match(spec.strip())
    kind, arg = (m.group(1), m.group(2) or "") if m else (spec.strip(), "")
    factory = FACTORIES.get(kind) if m else None
    if factory is None:
        choices = ", ".join(_NEEDS_ARG.get(k, k) for k in FACTORIES)
        raise ValueError(f"--net: unknown backend {spec!r} (choose from {choices})")
    if kind in _NEEDS_ARG and not arg:
        what = "a switch name" if kind == "switch" else "an interface name"
        raise ValueError(f"--net {kind} needs {what}: --net {_NEEDS_ARG[kind]}")
    if hosts is not None and kind != "user":
        raise ValueError("--hosts needs --net user (the built-in router's DNS server)")
    if kind == "user" and hosts is not None:
        from machine.netdev.user import make_user_backend

        backend: Backend = make_user_backend(arg, hosts=hosts)
    else:
        backend = factory(arg)
    try:
        if impair:
            from machine.netdev.impair import ImpairBackend, parse_impair

            backend = ImpairBackend(backend, parse_impair(impair))
        if pcap:
            from machine.netdev.pcap import PcapBackend

            backend = PcapBackend(backend, pcap)
    except BaseException:
        backend.close()
        raise
    return backend


__all__ = ["Backend", "BackendError", "Deliver", "FACTORIES", "NoneBackend", "Wrapper", "make_backend"]
