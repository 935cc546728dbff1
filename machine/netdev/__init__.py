"""Frame backends: where the emulated NIC's wire goes on the host (``--net``, like QEMU's -netdev).

Every backend has the same small interface, so the NIC model and the wrappers (pcap capture,
impairment) never care what is behind it:

* ``await backend.run(deliver, deliver_gso=None)``: runs until cancelled, calling ``deliver(frame)``
  for every frame arriving from the outside. Backends with a host fd wait on it with
  ``trio.lowlevel.wait_readable`` and so cost nothing while the network is quiet (no polling).
* ``backend.send(frame)``: put one frame from the guest on the wire. Never blocks and never raises
  for network conditions (a full socket buffer, an interface that is down): like a real wire, it
  drops the frame and counts it in ``stats``.
* ``backend.close()``: release host resources; safe to call twice.

Offloads (a virtio-net card: checksum offload and TSO both ways) add two things:

* ``backend.send_gso(hdr, frame)``: one frame from the guest with work left, as its
  :class:`~proto.wire.vnet.VnetHdr` says -- NEEDS_CSUM (``csum_start``/``csum_offset``) and/or
  ``gso_type`` TCPV4 with ``gso_size`` (the MSS) and ``hdr_len``; frames up to 64 KiB. The base
  class does the work in software (:func:`proto.wire.gso.wire_frames`) and calls :meth:`send`
  for each resulting frame; a backend whose other end has real offloads (a tap, a raw socket,
  the ``user`` router, a switch port that takes big frames) passes the frame on whole. Like
  ``send`` it never raises for network conditions; a header or frame that makes no sense is
  dropped and counted in ``tx_bad_offload``.
* ``deliver_gso(hdr, frame)``, the optional second argument of ``run``: given, the backend may
  hand over a frame larger than the MTU (up to 64 KiB, ``gso_type`` TCPV4, ``gso_size`` the
  MSS it came in) and/or one whose checksum is not done (NEEDS_CSUM, with ``csum_start`` and
  ``csum_offset``) or already checked (DATA_VALID), so the guest does large receive. Frames
  with nothing to say still go to ``deliver``. Not given (``None``, the RTL8139), the backend
  delivers only complete, checksummed, MTU-sized frames, segmenting in software anything large
  the host gave it -- the card sees exactly what it saw before offloads existed.

:func:`software_gso` turns a ``deliver`` into a ``deliver_gso`` for a card that learns only
later (feature negotiation) whether its guest takes large frames.

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

from proto.wire import DecodeError
from proto.wire.gso import wire_frames
from proto.wire.vnet import HDR_LEN_LEGACY, VnetHdr

Deliver = Callable[[bytes], object]
#: ``deliver_gso(hdr, frame)``: a frame towards the guest with offload work left for it.
DeliverGso = Callable[[VnetHdr, bytes], object]


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

    async def run(self, deliver: Deliver, deliver_gso: DeliverGso | None = None) -> None:
        """Deliver frames from the outside until cancelled (``deliver_gso``: see the module)."""
        await trio.sleep_forever()

    def pump(self) -> None:
        """Deliver at once, without waiting, what the outside has already queued for the guest.

        A card calls it right after sending: a host often answers at once (a TCP sender's next
        segment right after the guest's ACK), and the frame is then in the guest's ring before
        its driver looks again, as it would be on a machine whose device runs beside the CPU.
        Only backends with a host queue to look at (tap, raw) do anything."""

    def send(self, frame: bytes) -> None:
        """One frame from the guest; the base class (and ``none``) drops it."""
        self.counters["tx_dropped"] += 1

    def send_gso(self, hdr: VnetHdr, frame: bytes) -> None:
        """One frame from the guest with offload work left: done here, then :meth:`send` each."""
        for piece in self.wire_frames(hdr, frame):
            self.send(piece)

    def wire_frames(self, hdr: VnetHdr, frame: bytes, bad: str = "tx_bad_offload") -> list[bytes]:
        """The frames ``hdr`` and ``frame`` stand for on a wire; none (counted as ``bad``) if
        malformed. Used both ways: ``rx_bad_offload`` for a frame towards the guest."""
        try:
            return wire_frames(hdr, frame)
        except DecodeError:
            self.count(bad)
            return []

    def deliver_offloaded(self, data: bytes, frame: bytes, deliver: Deliver,
                          deliver_gso: DeliverGso | None) -> None:
        """A frame the host (tap, raw socket) left work in, ``data`` starting with its header:
        to the card whole if it takes that, else segmented and checksummed here.

        Only the first 10 header bytes are read: the kernel does not write ``num_buffers``."""
        try:
            hdr = VnetHdr.unpack(data, HDR_LEN_LEGACY)
        except DecodeError:
            self.count("rx_bad_offload")
            return
        if deliver_gso is not None:
            deliver_gso(hdr, frame)
            return
        self.count("rx_software_offload")
        for piece in self.wire_frames(hdr, frame, "rx_bad_offload"):
            deliver(piece)

    def count(self, name: str, n: int = 1) -> None:
        """Add to a counter that exists only once something happened (offload trouble)."""
        self.counters[name] = self.counters.get(name, 0) + n

    def close(self) -> None:
        """Release host resources (nothing here)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"


class HostQueueBackend(Backend):
    """A backend whose frames wait in a host queue it reads without blocking (a tap's fd, a raw
    socket): :meth:`run` waits for it to be readable, :meth:`pump` reads what is already there.
    Subclasses give :meth:`source` (the fd or socket, None once closed) and :meth:`read_burst`."""

    error = ""  # set when the interface went away: the cable is cut
    _receivers: tuple[Deliver, DeliverGso | None] | None = None  # while run() runs

    def source(self) -> object | None:
        """What to wait on (``trio.lowlevel.wait_readable``); None once closed."""
        raise NotImplementedError

    def read_burst(self, deliver: Deliver, deliver_gso: DeliverGso | None) -> None:
        """Up to a burst of frames that can be read without waiting, each to :meth:`deliver_read`."""
        raise NotImplementedError

    async def run(self, deliver: Deliver, deliver_gso: DeliverGso | None = None) -> None:
        self._receivers = (deliver, deliver_gso)
        try:
            while (src := self.source()) is not None and not self.error:
                await trio.lowlevel.wait_readable(src)
                self.read_burst(deliver, deliver_gso)
            if self.error:
                # The interface went away (deleted under us): stop reading rather than spin on a
                # source that stays readable with an error.
                await trio.sleep_forever()
        finally:
            self._receivers = None

    def pump(self) -> None:
        """What the host has already queued for us, delivered now (see Backend.pump)."""
        if self._receivers is not None and self.source() is not None and not self.error:
            self.read_burst(*self._receivers)

    def deliver_read(self, data: bytes, skip: int, deliver: Deliver, deliver_gso: DeliverGso | None) -> None:
        """One frame read from a host fd (tap, raw socket), ``data`` with its ``skip``-byte
        virtio-net header when the host gives one: counted, then to the card as it is if the
        header says nothing, else :meth:`deliver_offloaded`."""
        frame = data[skip:] if skip else data
        self.counters["rx_frames"] += 1
        self.counters["rx_bytes"] += len(frame)
        if not skip or not (data[0] or data[1]):  # no flags, no GSO: a plain frame
            deliver(frame)
        else:
            self.deliver_offloaded(data, frame, deliver, deliver_gso)


class NoneBackend(Backend):
    """``--net none``: a cable to nowhere. Sent frames are dropped, nothing ever arrives."""


class Wrapper(Backend):
    """A backend that passes frames to and from an inner one (pcap capture, impairment)."""

    def __init__(self, inner: Backend) -> None:
        super().__init__()
        self.inner = inner
        self.spec = inner.spec

    async def run(self, deliver: Deliver, deliver_gso: DeliverGso | None = None) -> None:
        await self.inner.run(deliver, deliver_gso)

    def pump(self) -> None:
        self.inner.pump()

    def send(self, frame: bytes) -> None:
        self.inner.send(frame)

    def send_gso(self, hdr: VnetHdr, frame: bytes) -> None:
        self.inner.send_gso(hdr, frame)

    @property
    def stats(self) -> dict[str, int]:
        return self.inner.stats

    def count(self, name: str, n: int = 1) -> None:
        self.inner.count(name, n)  # one set of counters: the inner backend's, which stats shows

    def close(self) -> None:
        self.inner.close()


def software_gso(deliver: Deliver, counters: dict[str, int] | None = None) -> DeliverGso:
    """A ``deliver_gso`` that does the offload work itself and hands plain frames to ``deliver``.

    For a card that passes a ``deliver_gso`` to ``run`` before it knows whether its guest will
    take large frames (virtio-net before feature negotiation), and for tests. A frame that makes
    no sense is dropped, counted as ``rx_bad_offload`` in ``counters`` if given."""

    def deliver_gso(hdr: VnetHdr, frame: bytes) -> None:
        try:
            pieces = wire_frames(hdr, frame)
        except DecodeError:
            if counters is not None:
                counters["rx_bad_offload"] = counters.get("rx_bad_offload", 0) + 1
            return
        for piece in pieces:
            deliver(piece)

    return deliver_gso


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


__all__ = ["Backend", "BackendError", "Deliver", "DeliverGso", "FACTORIES", "NoneBackend", "Wrapper", "make_backend",
           "software_gso"]
