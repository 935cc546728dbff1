"""``--net switch:NAME``: several backends on one host joined by a Unix-datagram hub."""

from __future__ import annotations

import os
import uuid

import pytest
import trio
import trio.testing

from machine.netdev import make_backend
from machine.netdev.switch import SwitchBackend, check_name

BROADCAST = b"\xff" * 6


def mac(n: int) -> bytes:
    return bytes.fromhex("525400aa00") + bytes([n])


def frame(dst: bytes, src: bytes, body: bytes) -> bytes:
    return dst + src + b"\x88\xb5" + body


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Port:
    """A backend plus what its guest received."""

    def __init__(self, name: str, n: int) -> None:
        self.backend = SwitchBackend(name)
        self.mac = mac(n)
        self.got: list[bytes] = []
        self.scope = trio.CancelScope()

    async def run(self) -> None:
        with self.scope:
            await self.backend.run(self.got.append)

    def send(self, dst: bytes, body: bytes) -> None:
        self.backend.send(frame(dst, self.mac, body))

    def leave(self) -> None:
        self.scope.cancel()
        self.backend.close()

    def bodies(self) -> list[bytes]:
        out = [f[14:] for f in self.got]
        self.got.clear()
        return out


async def settle() -> None:
    """Let every port's run loop take in what is waiting on its socket. A datagram is in its
    receiver's queue when the send returns, and the hub forwards from its own run loop, so once
    every task is blocked again nothing is left in flight."""
    await trio.testing.wait_all_tasks_blocked()


async def test_two_join_a_third_joins_one_leaves_the_hub_leaves(nursery: trio.Nursery) -> None:
    fds = open_fds()
    name = "t-" + uuid.uuid4().hex[:8]
    a = Port(name, 1)
    assert a.backend.is_hub
    b = Port(name, 2)
    assert not b.backend.is_hub
    for p in (a, b):
        nursery.start_soon(p.run)
    await settle()
    # both ways, broadcast then unicast (the hub learns where each MAC lives)
    a.send(BROADCAST, b"a-hello")
    b.send(BROADCAST, b"b-hello")
    await settle()
    assert b.bodies() == [b"a-hello"] and a.bodies() == [b"b-hello"]
    a.send(b.mac, b"a->b")
    b.send(a.mac, b"b->a")
    await settle()
    assert b.bodies() == [b"a->b"] and a.bodies() == [b"b->a"]

    c = Port(name, 3)
    nursery.start_soon(c.run)
    await settle()
    assert a.backend.stats["members"] == 2
    c.send(BROADCAST, b"c-hello")
    await settle()
    assert a.bodies() == [b"c-hello"] and b.bodies() == [b"c-hello"]
    b.send(c.mac, b"b->c")  # member to member, through the hub
    await settle()
    assert c.bodies() == [b"b->c"] and a.bodies() == [] and b.bodies() == []
    assert a.backend.stats["forwarded"] >= 3

    b.leave()  # a member leaves: the others carry on, the hub forgets it
    await settle()
    assert a.backend.stats["members"] == 1
    a.send(BROADCAST, b"after-b")
    c.send(a.mac, b"c->a")
    await settle()
    assert c.bodies() == [b"after-b"] and a.bodies() == [b"c->a"]

    d = Port(name, 4)
    nursery.start_soon(d.run)
    await settle()
    a.leave()  # the hub leaves: c and d elect a new one and keep talking
    await settle()
    assert [c.backend.is_hub, d.backend.is_hub].count(True) == 1
    c.send(BROADCAST, b"c-again")
    d.send(c.mac, b"d->c")
    await settle()
    assert d.bodies() == [b"c-again"] and c.bodies() == [b"d->c"]
    c.leave()
    d.leave()
    await settle()
    assert open_fds() == fds  # every socket closed


async def test_a_hub_that_vanishes_silently_is_replaced_on_the_next_send(nursery: trio.Nursery) -> None:
    name = "t-" + uuid.uuid4().hex[:8]
    a, b, c = Port(name, 1), Port(name, 2), Port(name, 3)
    for p in (a, b, c):
        nursery.start_soon(p.run)
    await settle()
    # the hub "crashes": its socket goes away without telling anyone
    a.scope.cancel()
    assert a.backend.sock is not None
    a.backend.sock.close()
    a.backend.sock = None
    await settle()
    b.send(BROADCAST, b"anyone?")  # b finds the hub gone and takes over
    assert b.backend.is_hub
    c.send(BROADCAST, b"c here")  # c finds the new hub (joining it) and is heard
    await settle()
    assert b.bodies() == [b"c here"]
    b.send(c.mac, b"b->c")
    await settle()
    assert c.bodies() == [b"b->c"]
    for p in (b, c):
        p.leave()


def test_switch_names_and_make_backend() -> None:
    name = "t-" + uuid.uuid4().hex[:8]
    b = make_backend(f"switch:{name}")
    try:
        assert isinstance(b, SwitchBackend) and b.spec == f"switch:{name}" and b.is_hub
    finally:
        b.close()
        b.close()
    for bad in ("", "a/b", "x" * 65, "sp ace"):
        with pytest.raises(ValueError, match="switch name"):
            check_name(bad)
