"""The protocols both ends import (euralios.std.protocols) and the typed failure reasons of net/.

The tag numbers are the seed's (spec §16.4): pinned here once, since client and server now
share one definition and would no longer disagree with each other if one changed. The batch
codec is checked the way each end uses it: the stack packs whole lists and reads leniently,
the driver takes what fits from its queue and refuses a malformed batch outright."""

from __future__ import annotations

import json
from collections import deque

from euralios.std import abi
from euralios.std.protocols import mux, nic, pci
from net.dns import DnsError, DnsErrorKind
from net.errors import DNS_REASONS, SOCKET_ERRORS, STACK_ERRORS, TCP_ERRORS, dns_error, socket_error
from net.lookups import Lookup
from net.sockets import SocketError, StackError, StackErrorKind
from proto.tcp import TcpErrorKind


def test_tag_numbers_are_the_seeds() -> None:
    assert (pci.FIND_DEVICE, pci.READ_BAR, pci.ENABLE_BUS_MASTERING) == (256, 257, 258)
    assert (pci.ADDRESS, pci.NOTFOUND, pci.BAR, pci.NOT_FOUND_VALUE) == (384, 385, 386, 2**64 - 1)
    assert (nic.GET_MAC_ADDRESS, nic.WRITE_FRAMES, nic.READ_FRAMES, nic.MAC_ADDRESS) == (260, 261, 262, 300)
    assert (nic.BLOCKING, nic.BATCH_BYTES) == (1, 64 * 1024)
    assert (mux.CONNECT, mux.LISTEN, mux.POLL, mux.WATCH, mux.ID_SHIFT) == (80, 81, 82, 83, 16)
    assert (mux.READABLE, mux.WRITABLE, mux.ACCEPTABLE, mux.ERROR, mux.ALL_EVENTS) == (1, 2, 4, 8, 15)
    assert mux.EVENT.size == 8 and mux.EVENT.pack(3, mux.READABLE) == b"\x03\0\0\0\x01\0\0\0"


def test_take_batch_takes_what_fits_and_leaves_the_rest_queued() -> None:
    queue = deque([b"a" * 100, b"b" * 100, b"c" * 100])
    batch, count = nic.take_batch(queue, 205)
    assert count == 2 and batch == b"\x64\x00" + b"a" * 100 + b"\x64\x00" + b"b" * 100
    assert list(queue) == [b"c" * 100]
    assert nic.take_batch(queue, 50) == (b"\x64\x00" + b"c" * 100, 1)  # the first always goes
    assert nic.take_batch(queue, 50) == (b"", 0) and not queue


def test_split_frames_stops_at_the_first_entry_that_is_not_a_frame() -> None:
    good = nic.pack_frames([b"x" * 60, b"y" * 1514], nic.BATCH_BYTES)[0][0]
    frames = nic.split_frames(good, 1792)
    assert frames == [b"x" * 60, b"y" * 1514] and nic.packed_size(frames) == len(good)
    for bad in (good + b"\x00\x00", good + b"\x05", good[:-1], nic.pack_frames([b"z" * 1800], 4096)[0][0]):
        frames = nic.split_frames(bad, 1792)
        assert nic.packed_size(frames) != len(bad)  # what the driver refuses (ERROR_INVALID_VALUE)
    assert nic.split_frames(nic.pack_frames([b"z" * 1800], 4096)[0][0]) == [b"z" * 1800]  # no limit asked


def test_every_failure_kind_has_its_error_code() -> None:
    assert set(STACK_ERRORS) == set(StackErrorKind) and set(SOCKET_ERRORS) == set(SocketError)
    assert set(DNS_REASONS) == set(DnsErrorKind) and sorted(DNS_REASONS.values()) == list(range(1, 10))
    assert {TcpErrorKind.REFUSED, TcpErrorKind.RESET, TcpErrorKind.TIMED_OUT, TcpErrorKind.UNREACHABLE} == set(TCP_ERRORS)
    assert socket_error(SocketError.REFUSED).code == abi.REFUSED and socket_error(None).code == abi.UNREACHABLE
    e = dns_error("nope.test", DnsErrorKind.NXDOMAIN)
    assert (e.code, e.reason, e.reply.d3) == (abi.NOTFOUND, 1, 1)


def test_typed_reasons_read_as_the_old_words() -> None:
    """Users and JSON readers see the same text as before the enums."""
    assert str(StackError(StackErrorKind.IN_USE, "TCP port 80 is already listening")) == \
        "in-use: TCP port 80 is already listening"
    assert str(DnsError("nope.test", DnsErrorKind.NXDOMAIN)) == "nope.test: not found"
    assert str(DnsError("x.test", DnsErrorKind.SERVFAIL)) == "x.test: servfail"
    lk = Lookup("nope.test")
    lk.done, lk.error = True, DnsErrorKind.NO_SERVER
    assert json.loads(json.dumps(lk.as_dict()))["error"] == "no-server"
