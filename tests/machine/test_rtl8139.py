"""RTL8139 register model: reset, interrupts, the receive ring, transmit descriptors, filters."""

from __future__ import annotations

import zlib

import pytest

from machine.irq import IrqController
from machine.memory import PhysicalMemory
from machine.rtl8139 import (
    CAPR,
    CBR,
    CONFIG1,
    CR,
    CR9346,
    CR_BUFE,
    CR_RE,
    CR_RST,
    CR_TE,
    IDR0,
    IMR,
    ISR,
    ISR_RER,
    ISR_ROK,
    ISR_RXOVW,
    ISR_SERR,
    ISR_TER,
    ISR_TOK,
    MAR0,
    MPC,
    RBSTART,
    RCR,
    RCR_AAP,
    RCR_AB,
    RCR_AM,
    RCR_APM,
    RCR_WRAP,
    RX_BAR,
    RX_MAR,
    RX_PAM,
    RX_ROK,
    TCR,
    TSAD0,
    TSD0,
    TSD_OWN,
    TSD_TABT,
    TSD_TOK,
    Rtl8139,
    mac_text,
    multicast_hash_index,
    parse_mac,
)

MAC = bytes.fromhex("525400123456")
OTHER = bytes.fromhex("02aabbccddee")
RX = 0x10000  # ring in RAM
TXBUF = 0x20000


class Card:
    """A card on its own little board, with the IRQ line and the wire observable."""

    def __init__(self) -> None:
        self.mem = PhysicalMemory(2 << 20)
        self.irq = IrqController()
        self.raised: list[int] = []
        self.irq.set_handler(self.raised.append)
        self.nic = Rtl8139(self.mem, self.irq)
        self.wire: list[bytes] = []
        self.nic.transmit = self.wire.append
        self.nic.pci.write(0x04, 2, 0x0007)  # I/O, memory, bus master (the driver's job)

    def r(self, reg: int, size: int = 1) -> int:
        return self.nic.io_read(reg, size)

    def w(self, reg: int, value: int, size: int = 1) -> None:
        self.nic.io_write(reg, size, value)

    def start(self, rcr: int = RCR_APM | RCR_AB | RCR_AM, imr: int = ISR_ROK | ISR_TOK) -> None:
        """The driver's bring-up: ring address, enable, receive config, interrupt mask."""
        self.w(RBSTART, RX, 4)
        self.w(CR, CR_RE | CR_TE)
        self.w(RCR, rcr, 4)
        self.w(IMR, imr, 2)

    def consume(self) -> tuple[int, int, bytes]:
        """Read the frame at CAPR+16 the way drivers do; returns (status, length, frame)."""
        off = (self.r(CAPR, 2) + 16) & 0xFFFF
        status = self.mem.read_uint(RX + off, 2)
        length = self.mem.read_uint(RX + off + 2, 2)
        data = self.mem.read(RX + off + 4, length)
        nxt = ((off + 4 + length + 3) & ~3) % self.nic.ring_size
        self.w(CAPR, (nxt - 16) & 0xFFFF, 2)
        return status, length, data


def frame(dst: bytes = MAC, size: int = 100, fill: int = 0xA5) -> bytes:
    return dst + OTHER + b"\x08\x00" + bytes([fill]) * (size - 14)


@pytest.fixture
def card() -> Card:
    return Card()


# ------------------------------------------------------------------------------------------- reset

def test_power_on_state(card: Card) -> None:
    assert bytes(card.r(IDR0 + i) for i in range(6)) == MAC
    assert card.r(IDR0, 4) == 0x1200_5452 and card.r(IDR0 + 4, 2) == 0x5634
    assert card.r(CR) == CR_BUFE  # nothing enabled, ring empty
    assert card.r(CAPR, 2) == 0xFFF0 and card.r(CBR, 2) == 0  # the datasheet's initial values
    assert card.r(ISR, 2) == 0 and card.r(IMR, 2) == 0
    assert all(card.r(TSD0 + 4 * i, 4) & TSD_OWN for i in range(4))  # all descriptors free
    assert card.r(TCR + 3) & 0x7C == 0x74  # hardware version: RTL8139C


def test_software_reset_self_clears_and_restores(card: Card) -> None:
    card.start()
    card.w(IDR0, 0x12)
    card.nic.receive(frame(bytes.fromhex("125400123456")))  # to the changed address
    assert card.r(ISR, 2) & ISR_ROK
    card.w(CR, CR_RST)
    assert not card.r(CR) & CR_RST  # reset completes before the driver's first poll
    assert card.r(CR) == CR_BUFE  # receiver and transmitter off, ring empty again
    assert card.r(ISR, 2) == 0 and card.r(IMR, 2) == 0
    assert card.nic.mac == MAC  # station address reloaded from the "EEPROM"


def test_config_registers_locked_unless_9346cr_unlocked(card: Card) -> None:
    before = card.r(CONFIG1)
    card.w(CONFIG1, 0x00)  # what drivers write to "power on": ignored while locked (as QEMU)
    assert card.r(CONFIG1) == before
    card.w(CR9346, 0xC0)
    card.w(CONFIG1, 0x01)
    assert card.r(CONFIG1) & 0x01


# ------------------------------------------------------------------------------------- interrupts

def test_isr_is_write_one_to_clear(card: Card) -> None:
    card.start(imr=0)
    card.nic.receive(frame())
    card.w(TSAD0, TXBUF, 4)
    card.w(TSD0, 60, 4)
    assert card.r(ISR, 2) == ISR_ROK | ISR_TOK
    card.w(ISR, 0, 2)  # writing zeros clears nothing
    assert card.r(ISR, 2) == ISR_ROK | ISR_TOK
    card.w(ISR, ISR_TOK, 2)
    assert card.r(ISR, 2) == ISR_ROK
    card.w(ISR, 0xFFFF, 2)
    assert card.r(ISR, 2) == 0


def test_imr_gates_the_interrupt_line(card: Card) -> None:
    card.start(imr=0)
    card.nic.receive(frame())
    assert card.r(ISR, 2) & ISR_ROK and card.raised == []  # status set, line quiet
    card.w(IMR, ISR_ROK, 2)  # unmasking a pending cause asserts the line at once
    assert card.raised == [11]
    card.nic.receive(frame())  # line already asserted: no new edge
    assert card.raised == [11]
    card.w(ISR, ISR_ROK, 2)  # acknowledged: the line drops
    card.nic.receive(frame())
    assert card.raised == [11, 11]


def test_ack_that_leaves_a_cause_pending_fires_again(card: Card) -> None:
    card.start(imr=ISR_ROK | ISR_TOK)
    card.nic.receive(frame())
    card.w(TSAD0, TXBUF, 4)
    card.w(TSD0, 60, 4)
    assert card.raised == [11]
    card.w(ISR, ISR_ROK, 2)  # TOK still pending: a level-triggered line re-interrupts
    assert card.raised == [11, 11]
    card.w(ISR, ISR_TOK, 2)
    assert card.raised == [11, 11]


def test_interrupt_disable_in_pci_command_masks_the_line(card: Card) -> None:
    card.start()
    card.nic.pci.write(0x04, 2, 0x0407)
    card.nic.receive(frame())
    assert card.raised == [] and card.r(ISR, 2) & ISR_ROK


# ----------------------------------------------------------------------------------- receive ring

def test_rx_header_crc_and_dword_alignment(card: Card) -> None:
    card.start()
    f = frame(size=61)
    assert card.nic.receive(f)
    status = card.mem.read_uint(RX, 2)
    length = card.mem.read_uint(RX + 2, 2)
    assert status == RX_ROK | RX_PAM
    assert length == 61 + 4
    assert card.mem.read(RX + 4, 61) == f
    assert card.mem.read(RX + 4 + 61, 4) == zlib.crc32(f).to_bytes(4, "little")
    assert card.r(CBR, 2) == (4 + 61 + 4 + 3) & ~3 == 72
    assert not card.r(CR) & CR_BUFE
    g = frame(size=100, fill=0x5A)
    card.nic.receive(g)
    assert card.mem.read(RX + 72 + 4, 100) == g  # next frame starts at the aligned offset
    assert card.consume() == (RX_ROK | RX_PAM, 65, f + zlib.crc32(f).to_bytes(4, "little"))
    assert card.r(CAPR, 2) == 72 - 16
    assert card.consume()[2][:100] == g
    assert card.r(CR) & CR_BUFE


def test_short_frames_are_padded_to_60_bytes(card: Card) -> None:
    card.start()
    f = frame(size=42)
    card.nic.receive(f)
    status, length, data = card.consume()
    assert length == 64
    assert data[:60] == f + bytes(18)
    assert data[60:] == zlib.crc32(f + bytes(18)).to_bytes(4, "little")


def fill_to(card: Card, offset: int, size: int = 1000) -> None:
    """Receive and consume frames until the write pointer sits at ``offset``."""
    while card.r(CBR, 2) != offset:
        card.nic.receive(frame(size=size))
        card.consume()
        assert card.r(CBR, 2) <= offset


def test_frame_wraps_to_the_ring_start_without_wrap_bit(card: Card) -> None:
    card.start()
    fill_to(card, 8 * 1008)  # 1000-byte frames take 1008 bytes each
    f = bytes(range(256)) * 4
    f = MAC + f[6:1000]
    card.nic.receive(f)
    pos = 8 * 1008 + 4  # frame data starts after the header
    first = 8192 - pos
    assert card.mem.read(RX + pos, first) == f[:first]
    assert card.mem.read(RX, 1000 - first) == f[first:]  # the rest continues at the start
    assert card.r(CBR, 2) == (8 * 1008 + 1008) % 8192
    # a driver reading modulo the ring gets the frame back
    off = (card.r(CAPR, 2) + 16) & 0xFFFF
    raw = card.mem.read(RX + off, 8192 - off) + card.mem.read(RX, 1008 - (8192 - off))
    assert raw[4:1004] == f


def test_frame_runs_past_the_end_with_wrap_bit(card: Card) -> None:
    card.start(rcr=RCR_APM | RCR_WRAP)
    fill_to(card, 8 * 1008)
    f = MAC + bytes(range(256)) * 3 + bytes(1000 - 6 - 768)
    card.nic.receive(f)
    off = 8 * 1008
    assert card.mem.read(RX + off + 4, 1000) == f  # contiguous, into the slack after the ring
    assert card.mem.read(RX + 4, 1000) == frame(size=1000)  # the ring's start is untouched
    assert card.r(CBR, 2) == (off + 1008) % 8192  # but the next frame starts over at the beginning
    status, length, data = card.consume()
    assert data[:1000] == f
    assert card.r(CR) & CR_BUFE


def test_overflow_drops_sets_rxovw_and_counts_missed(card: Card) -> None:
    card.start(imr=ISR_ROK | ISR_RXOVW)
    accepted = 0
    while card.nic.receive(frame(size=1000)):
        accepted += 1
    assert accepted == 8  # 8 x 1008 bytes fit; a ninth would fill the ring to the brim
    assert card.r(ISR, 2) & ISR_RXOVW
    assert card.r(MPC, 4) == 1
    assert card.nic.counters["rx_overflow"] == 1
    assert not card.r(CR) & CR_BUFE  # full is not mistaken for empty
    for _ in range(8):
        assert card.consume()[0] & RX_ROK
    assert card.r(CR) & CR_BUFE
    card.w(MPC, 0, 4)  # any write clears the missed packet counter
    assert card.r(MPC, 4) == 0
    assert card.nic.receive(frame(size=1000))  # room again


def test_receive_needs_re_and_bus_mastering(card: Card) -> None:
    card.w(RBSTART, RX, 4)
    card.w(RCR, RCR_APM, 4)
    assert not card.nic.receive(frame())  # receiver not enabled
    card.w(CR, CR_RE)
    card.nic.pci.write(0x04, 2, 0x0003)
    assert not card.nic.receive(frame())  # no DMA without bus mastering
    assert card.nic.counters["rx_disabled"] == 1 and card.nic.counters["rx_dma_errors"] == 1
    card.nic.pci.write(0x04, 2, 0x0007)
    assert card.nic.receive(frame())


def test_dma_outside_ram_is_a_system_error_not_a_crash(card: Card) -> None:
    card.start(imr=ISR_ROK | ISR_SERR)
    card.w(RBSTART, (2 << 20) - 64, 4)  # the ring runs off the end of RAM
    assert not card.nic.receive(frame(size=200))
    assert card.r(ISR, 2) & ISR_SERR
    assert card.r(CBR, 2) == 0


def test_rcr_buffer_length_selects_the_ring_size(card: Card) -> None:
    card.start(rcr=RCR_APM | (1 << 11))
    assert card.nic.ring_size == 16384
    fill_to(card, 9 * 1008)  # past 8 KiB without wrapping
    assert card.r(CBR, 2) == 9072


def test_frames_longer_than_ethernet_are_dropped(card: Card) -> None:
    card.start()
    assert not card.nic.receive(frame(size=1519))
    assert card.nic.receive(frame(size=1518))
    assert card.nic.counters["rx_too_long"] == 1


# ------------------------------------------------------------------------------------ accept filters

def test_filters_own_broadcast_multicast_promiscuous(card: Card) -> None:
    group = bytes.fromhex("01005e000001")
    idx = multicast_hash_index(group)

    def accepted(rcr: int, dst: bytes) -> int | None:
        card.w(RCR, rcr, 4)
        if not card.nic.receive(frame(dst)):
            return None
        status = card.consume()[0]
        return status & (RX_BAR | RX_PAM | RX_MAR)

    card.start()
    assert accepted(RCR_APM, MAC) == RX_PAM
    assert accepted(RCR_APM, OTHER) is None
    assert accepted(RCR_APM, b"\xff" * 6) is None
    assert accepted(RCR_AB, b"\xff" * 6) == RX_BAR
    assert accepted(RCR_AB, MAC) is None
    assert accepted(RCR_AM, group) is None  # MAR empty: no group joined
    card.w(MAR0 + (idx >> 3), 1 << (idx & 7))
    assert accepted(RCR_AM, group) == RX_MAR
    assert accepted(RCR_AM, bytes.fromhex("01005e7f0002")) is None  # different hash bucket
    assert accepted(RCR_APM | RCR_AB, group) is None  # multicast needs AM
    assert accepted(RCR_AAP, OTHER) == 0  # promiscuous: everything, with its address type
    assert accepted(RCR_AAP, MAC) == RX_PAM
    assert card.nic.counters["rx_filtered"] == 6


def test_multicast_hash_is_the_top_bits_of_the_ethernet_crc() -> None:
    def bitrev32(x: int) -> int:
        return int(f"{x:032b}"[::-1], 2)

    for mac in (bytes.fromhex("01005e000001"), bytes.fromhex("333300000001"), bytes.fromhex("0180c2000000")):
        # the MSB-first Ethernet CRC register is the bit-reversal of zlib's, before inversion
        assert multicast_hash_index(mac) == bitrev32(~zlib.crc32(mac) & 0xFFFF_FFFF) >> 26


# ----------------------------------------------------------------------------------------- transmit

def test_transmit_own_tok_and_interrupt(card: Card) -> None:
    card.start()
    f = frame(OTHER, size=300)
    card.mem.write(TXBUF, f)
    card.w(TSAD0, TXBUF, 4)
    card.w(TSD0, len(f), 4)  # OWN clear: the card takes it
    assert card.wire == [f]
    tsd = card.r(TSD0, 4)
    assert tsd & TSD_OWN and tsd & TSD_TOK and tsd & 0x1FFF == 300
    assert card.r(ISR, 2) & ISR_TOK
    assert card.raised == [11]
    assert card.r(0x60, 2) & 0x1001 == 0x1001  # TSAD summary: TOK0 and OWN0
    card.w(TSD0, 60, 4)  # a new write clears TOK; the card moved on to descriptor 1 though
    assert not card.r(TSD0, 4) & (TSD_TOK | TSD_OWN) and len(card.wire) == 1


def test_descriptors_are_sent_in_ring_order(card: Card) -> None:
    card.start()
    for i in range(4):
        card.mem.write(TXBUF + 2048 * i, frame(OTHER, 60, fill=i))
        card.w(TSAD0 + 4 * i, TXBUF + 2048 * i, 4)
    card.w(TSD0 + 4, 60, 4)  # descriptor 1 first: the card waits for descriptor 0
    assert card.wire == []
    card.w(TSD0, 60, 4)
    assert [f[-1] for f in card.wire] == [0, 1]
    card.w(TSD0 + 8, 60, 4)
    card.w(TSD0 + 12, 60, 4)
    card.w(TSD0, 60, 4)  # round robin back to 0
    assert [f[-1] for f in card.wire] == [0, 1, 2, 3, 0]
    assert card.nic.counters["tx_frames"] == 5


def test_transmitter_disabled_holds_frames_until_te(card: Card) -> None:
    card.w(CR, CR_RE)
    card.mem.write(TXBUF, frame(OTHER, 60))
    card.w(TSAD0, TXBUF, 4)
    card.w(TSD0, 60, 4)
    assert card.wire == [] and not card.r(TSD0, 4) & TSD_OWN
    card.w(CR, CR_RE | CR_TE)
    assert len(card.wire) == 1 and card.r(TSD0, 4) & TSD_OWN


def test_transmit_without_bus_mastering_aborts(card: Card) -> None:
    card.start(imr=ISR_TER)
    card.nic.pci.write(0x04, 2, 0x0003)
    card.w(TSAD0, TXBUF, 4)
    card.w(TSD0, 60, 4)
    assert card.wire == []
    assert card.r(TSD0, 4) & (TSD_OWN | TSD_TABT) == TSD_OWN | TSD_TABT
    assert card.r(ISR, 2) & ISR_TER and card.raised == [11]


def test_loopback_mode_sends_frames_to_our_own_receiver(card: Card) -> None:
    card.start()
    card.w(TCR, 3 << 17, 4)  # LBK = 11 (TCR is writable because TE is set)
    f = frame(MAC, 80)
    card.mem.write(TXBUF, f)
    card.w(TSAD0, TXBUF, 4)
    card.w(TSD0, 80, 4)
    assert card.wire == []
    assert card.consume()[2][:80] == f
    assert card.r(ISR, 2) & (ISR_ROK | ISR_TOK) == ISR_ROK | ISR_TOK


def test_tcr_ignored_while_transmitter_off(card: Card) -> None:
    before = card.r(TCR, 4)
    card.w(TCR, 3 << 24, 4)
    assert card.r(TCR, 4) == before
    card.w(CR, CR_TE)
    card.w(TCR, 3 << 24 | 7 << 8, 4)
    assert card.r(TCR, 4) & 0x0300_0700 == 0x0300_0700


def test_partial_register_writes_merge() -> None:
    card = Card()
    card.w(RBSTART, 0x1234_5678, 4)
    card.w(RBSTART + 1, 0xAB)
    assert card.r(RBSTART, 4) == 0x1234_AB78
    card.start(imr=0)
    card.nic.receive(frame())
    card.w(ISR + 1, 0xFF)  # a byte write to the high half clears nothing in the low half
    assert card.r(ISR, 2) & ISR_ROK
    card.w(IMR, ISR_RER, 2)
    assert card.r(IMR, 2) == ISR_RER


def test_counters(card: Card) -> None:
    card.start()
    card.nic.receive(frame())
    card.nic.receive(frame(OTHER))
    card.w(TSAD0, TXBUF, 4)
    card.w(TSD0, 64, 4)
    s = card.nic.stats()
    assert (s["rx_frames"], s["rx_filtered"], s["tx_frames"], s["tx_bytes"], s["missed"]) == (1, 1, 1, 64, 0)


def test_parse_mac() -> None:
    assert parse_mac(None) == MAC
    assert parse_mac("02-00-00-00-00-01") == bytes.fromhex("020000000001")
    assert mac_text(parse_mac("52:54:00:AB:CD:EF")) == "52:54:00:ab:cd:ef"
    for bad in ("52:54:00:12:34", "zz:54:00:12:34:56", "5254:00:12:34:56:7"):
        with pytest.raises(ValueError, match="bad MAC address"):
            parse_mac(bad)
    assert Rtl8139(PhysicalMemory(2 << 20), IrqController(), mac="02:00:00:00:00:01").mac == bytes.fromhex(
        "020000000001")


def test_wide_reads_are_the_bytes_read_one_by_one() -> None:
    """io_read of 2 or 4 bytes takes a fast path within a dword: it must give exactly the
    little-endian bytes of single-byte reads, at every offset of the register file."""
    card = Card()
    card.start()
    for i, v in enumerate((0x1111_2222, 0x8000_0123, 0x3344_5566, 0x0000_00FF)):
        card.w(TSAD0 + 4 * i, v, 4)
    card.w(TSD0 + 4, 100, 4)  # a descriptor with status bits set (TOK, OWN) after sending
    card.nic.receive(frame())  # ISR, CBR and the ring pointers move
    card.w(MAR0, 0xDEAD_BEEF, 4)
    for off in range(0, 0x80):
        one = [card.r(off + i) for i in range(4)]
        for size in (2, 4):
            expected = sum(b << (8 * i) for i, b in enumerate(one[:size]))
            assert card.r(off, size) == expected, (hex(off), size)


def test_whole_register_writes_equal_byte_writes() -> None:
    """io_write of a whole register at once (the driver's usual access, a fast path) leaves the
    card in the same state as writing its bytes one at a time."""
    def state(card: Card) -> tuple:
        n = card.nic
        return (n.tsd, n.tsad, n.rbstart, n.imr, n.isr, n.rcr, n.tcr, n.read_ptr, len(card.wire), n.cr)

    writes = [(TSAD0 + 8, 0x2_0000, 4), (RBSTART, RX, 4), (IMR, 0x0055, 2), (RCR, RCR_APM | RCR_AB, 4),
              (TCR, 0x0300_0700, 4), (CAPR, 0x0040, 2), (ISR, 0xFFFF, 2), (TSD0 + 8, 64, 4)]
    a, b = Card(), Card()
    for card in (a, b):
        card.w(CR, CR_RE | CR_TE)
    for reg, value, size in writes:
        a.w(reg, value, size)
        for i in range(size):
            b.w(reg + i, (value >> (8 * i)) & 0xFF)
        assert state(a) == state(b), hex(reg)
