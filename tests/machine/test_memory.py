"""PhysicalMemory: bounds, little-endian integers, write watches."""

from __future__ import annotations

import array

import pytest

from machine.memory import PAGE_SIZE, BusError, PhysicalMemory

MIB = 2**20


@pytest.fixture
def ram() -> PhysicalMemory:
    return PhysicalMemory(4 * MIB)


def test_size_and_frames() -> None:
    mem = PhysicalMemory()
    assert mem.size == 64 * MIB
    assert mem.frames == 64 * MIB // PAGE_SIZE
    assert len(mem.buf) == mem.size


@pytest.mark.parametrize("size", [0, MIB, 2 * MIB - PAGE_SIZE, 2 * MIB + 1, 3 * MIB + 100])
def test_bad_sizes_rejected(size: int) -> None:
    with pytest.raises(ValueError):
        PhysicalMemory(size)


def test_odd_but_valid_size() -> None:
    mem = PhysicalMemory(2 * MIB + PAGE_SIZE)
    assert mem.frames == 513


def test_read_write_round_trip(ram: PhysicalMemory) -> None:
    ram.write(0x1234, b"hello")
    assert ram.read(0x1234, 5) == b"hello"
    assert isinstance(ram.read(0, 1), bytes)
    ram.write(0x2000, bytearray(b"ab"))
    ram.write(0x2002, memoryview(b"cd"))
    assert ram.read(0x2000, 4) == b"abcd"


def test_read_returns_a_copy(ram: PhysicalMemory) -> None:
    ram.write(0, b"xy")
    snapshot = ram.read(0, 2)
    ram.write(0, b"zz")
    assert snapshot == b"xy"


def test_write_multibyte_items_counts_bytes_not_items(ram: PhysicalMemory) -> None:
    # An array of 4-byte items must write 8 bytes, and never resize RAM.
    ram.write(0x100, array.array("I", [0x11223344, 0x55667788]))
    assert ram.read(0x100, 8) == bytes.fromhex("4433221188776655")
    assert len(ram.buf) == ram.size


def test_write_at_last_byte_and_empty_write_at_end(ram: PhysicalMemory) -> None:
    ram.write(ram.size - 1, b"\x7f")
    assert ram.read(ram.size - 1, 1) == b"\x7f"
    ram.write(ram.size, b"")
    assert ram.read(ram.size, 0) == b""


@pytest.mark.parametrize(
    "op",
    [
        lambda m: m.read(-1, 1),
        lambda m: m.read(m.size - 4, 8),
        lambda m: m.read(0, -1),
        lambda m: m.write(m.size - 1, b"ab"),
        lambda m: m.write(-8, b"a"),
        lambda m: m.read_uint(m.size - 2, 4),
        lambda m: m.read_uint(-1, 1),
        lambda m: m.write_uint(m.size, 1, 0),
        lambda m: m.read_u64(m.size - 7),
        lambda m: m.read_u64(-8),
        lambda m: m.write_u64(m.size - 4, 1),
        lambda m: m.write_u64(-1, 1),
        lambda m: m.zero(m.size - PAGE_SIZE, PAGE_SIZE + 1),
        lambda m: m.zero(-1, 1),
    ],
)
def test_out_of_bounds_is_bus_error(ram: PhysicalMemory, op) -> None:
    with pytest.raises(BusError):
        op(ram)
    assert len(ram.buf) == ram.size


def test_bus_error_message_names_address() -> None:
    mem = PhysicalMemory()
    with pytest.raises(BusError) as info:
        mem.read_u64(0x4000000)
    assert str(info.value) == "bus error: physical 0x4000000+8 outside 64 MiB RAM"


def test_u64_round_trip_little_endian(ram: PhysicalMemory) -> None:
    value = 0x8000_0000_DEAD_B007
    ram.write_u64(0x3FF8, value)
    assert ram.read_u64(0x3FF8) == value
    assert ram.read(0x3FF8, 8) == value.to_bytes(8, "little")
    ram.write_u64(ram.size - 8, 2**64 - 1)
    assert ram.read_u64(ram.size - 8) == 2**64 - 1
    ram.write_u64(5, 0x0102030405060708)  # unaligned is fine, as on x86
    assert ram.read_u64(5) == 0x0102030405060708


@pytest.mark.parametrize("size", [1, 2, 4, 8])
def test_uint_round_trip(ram: PhysicalMemory, size: int) -> None:
    value = (1 << (8 * size)) - 3
    ram.write_uint(0x40, size, value)
    assert ram.read_uint(0x40, size) == value
    assert ram.read(0x40, size) == value.to_bytes(size, "little")
    assert ram.read_uint(0x40 + size, 1) == 0  # nothing written past the value


def test_uint_bad_size_and_value(ram: PhysicalMemory) -> None:
    with pytest.raises(ValueError):
        ram.read_uint(0, 3)
    with pytest.raises(ValueError):
        ram.write_uint(0, 16, 0)
    with pytest.raises(ValueError):
        ram.write_uint(0, 1, 256)
    with pytest.raises(ValueError):
        ram.write_uint(0, 2, -1)
    with pytest.raises(ValueError):
        ram.write_u64(0, 2**64)
    with pytest.raises(ValueError):
        ram.write_u64(0, -1)


def test_zero(ram: PhysicalMemory) -> None:
    ram.write(0x1000, b"\xff" * PAGE_SIZE)
    ram.zero(0x1000, PAGE_SIZE)
    assert ram.read(0x1000, PAGE_SIZE) == bytes(PAGE_SIZE)
    assert len(ram.buf) == ram.size


VGA = 0xB8000
VGA_END = VGA + 80 * 25 * 2


def test_write_watch_fires_only_on_overlap(ram: PhysicalMemory) -> None:
    hits: list[int] = []
    ram.add_write_watch(VGA, VGA_END, lambda: hits.append(1))

    ram.write(VGA - 2, b"ab")  # ends exactly at start: no overlap
    ram.write(VGA_END, b"ab")  # starts exactly at end: no overlap
    ram.write_u64(0x1000, 1)
    ram.zero(0, VGA)
    ram.read(VGA, 16)  # reads never fire
    ram.read_u64(VGA)
    ram.write(VGA + 4, b"")  # empty write changes nothing
    assert hits == []

    ram.write(VGA - 1, b"ab")  # straddles the start
    ram.write(VGA_END - 1, b"ab")  # straddles the end
    ram.write_uint(VGA + 10, 2, 0x0741)
    ram.write_u64(VGA + 100, 7)
    ram.zero(0, VGA + 1)
    ram.write(0, bytes(ram.size))  # covers everything
    assert len(hits) == 6


def test_write_watch_fires_after_write(ram: PhysicalMemory) -> None:
    seen: list[bytes] = []
    ram.add_write_watch(0x100, 0x101, lambda: seen.append(ram.read(0x100, 1)))
    ram.write(0x100, b"Q")
    assert seen == [b"Q"]


def test_remove_write_watch_and_multiple_watches(ram: PhysicalMemory) -> None:
    a: list[int] = []
    b: list[int] = []
    ta = ram.add_write_watch(0, 0x1000, lambda: a.append(1))
    ram.add_write_watch(0x800, 0x2000, lambda: b.append(1))
    ram.write(0x900, b"x")
    assert (len(a), len(b)) == (1, 1)
    ram.remove_write_watch(ta)
    ram.write(0x900, b"x")
    assert (len(a), len(b)) == (1, 2)
    with pytest.raises(ValueError):
        ram.remove_write_watch(ta)


def test_watch_callback_may_remove_itself(ram: PhysicalMemory) -> None:
    calls: list[int] = []
    token: object = None

    def once() -> None:
        calls.append(1)
        ram.remove_write_watch(token)

    token = ram.add_write_watch(0, 16, once)
    ram.write(0, b"a")
    ram.write(0, b"b")
    assert calls == [1]


def test_write_watch_bad_range(ram: PhysicalMemory) -> None:
    with pytest.raises(ValueError):
        ram.add_write_watch(10, 10, lambda: None)
    with pytest.raises(ValueError):
        ram.add_write_watch(0, ram.size + 1, lambda: None)
