"""Realtek RTL8139C network card, register level, in the classic (not C+) mode.

Modelled on the RTL8139C datasheet and QEMU's ``hw/net/rtl8139.c`` so that a driver written for
either works here unchanged: the same registers at the same offsets, the same receive ring format
written by DMA into guest RAM, the same four transmit descriptors, and the interrupt line asserted
while ``ISR & IMR`` is non-zero.

Receive. A frame from the wire (the backend) passes the address filter of RCR (own MAC, broadcast,
multicast through the MAR hash, or everything in promiscuous mode), is padded to the 60-byte
Ethernet minimum, and is written at the ring's write pointer (CBR) as a 4-byte header (status u16:
ROK and the BAR/PAM/MAR address-type bits; length u16 including the 4-byte CRC), the frame, and its
CRC; CBR then advances to the next dword. Without RCR.WRAP a frame that reaches the end of the ring
continues at its start; with WRAP it runs on past the end (the driver allocated 1.5 KiB of slack so
it can read every frame contiguously) and only the next frame starts over at the beginning. The
driver consumes frames and writes CAPR = read pointer - 16 (a hardware offset every driver
copies). A frame that does not fit in the free space is dropped and sets ISR.RXOVW and counts in
MPC: a card cannot push back on the wire (QEMU instead holds frames back; a real card cannot).

Transmit. Writing TSDn with OWN clear hands descriptor n to the card: it reads SIZE bytes at TSADn
by DMA, puts them on the wire, then sets OWN and TOK in TSDn and ISR.TOK. Descriptors are taken in
round-robin order, as the chip does. Transmission completes within the register write (the wire is
a function call), so a driver always finds OWN set again when it next looks.

DMA happens only while the PCI command register allows bus mastering; a DMA address outside RAM
(a driver bug) is reported as a PCI system error (ISR.SERR) instead of bringing the machine down.

Interrupts. This machine's IRQ controller takes one raise per event, so the level of the PCI line
is emulated: the line is raised when ``ISR & IMR`` becomes non-zero, and again after an ISR write
that leaves it non-zero (a level-triggered line re-fires after the end of interrupt). A driver that
acknowledges ISR and then drains the ring until CR.BUFE can therefore never miss a frame.

Left out: C+ mode descriptors, the EEPROM (9346) protocol, the timer (TCTR/TimerInt), MII
autonegotiation writes and early-RX/TX thresholds; their registers read as QEMU's reset values or 0.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from machine.irq import IrqController
from machine.memory import BusError, PhysicalMemory
from machine.pci import Bar, PciFunction

VENDOR = 0x10EC
DEVICE = 0x8139
DEFAULT_MAC = "52:54:00:12:34:56"
IRQ_LINE = 11
IO_BASE = 0xC000
MMIO_BASE = 0xFEBF_1000
IO_SIZE = 256

# registers (offsets into the I/O BAR)
IDR0 = 0x00
MAR0 = 0x08
TSD0 = 0x10
TSAD0 = 0x20
RBSTART = 0x30
ERBCR = 0x34
ERSR = 0x36
CR = 0x37
CAPR = 0x38
CBR = 0x3A
IMR = 0x3C
ISR = 0x3E
TCR = 0x40
RCR = 0x44
TCTR = 0x48
MPC = 0x4C
CR9346 = 0x50
CONFIG0 = 0x51
CONFIG1 = 0x52
MSR = 0x58
CONFIG3 = 0x59
CONFIG4 = 0x5A
MULINT = 0x5C
RERID = 0x5E
TSAD_SUMMARY = 0x60
BMCR = 0x62
BMSR = 0x64
ANAR = 0x66
ANLPAR = 0x68
ANER = 0x6A
CSCR = 0x74

# CR bits
CR_BUFE = 0x01
CR_TE = 0x04
CR_RE = 0x08
CR_RST = 0x10

# ISR / IMR bits
ISR_ROK = 0x0001
ISR_RER = 0x0002
ISR_TOK = 0x0004
ISR_TER = 0x0008
ISR_RXOVW = 0x0010
ISR_PUN = 0x0020
ISR_FOVW = 0x0040
ISR_LENCHG = 0x2000
ISR_TIMEOUT = 0x4000
ISR_SERR = 0x8000
_ISR_RESERVED = 0x1E00  # bits 9-12 cannot be written (QEMU's mask)

# RCR bits
RCR_AAP = 0x01  # accept all packets (promiscuous)
RCR_APM = 0x02  # accept physical match (own MAC)
RCR_AM = 0x04  # accept multicast (through the MAR hash)
RCR_AB = 0x08  # accept broadcast
RCR_AR = 0x10  # accept runt
RCR_AER = 0x20  # accept error
RCR_WRAP = 0x80
RCR_RBLEN_SHIFT = 11
_RCR_WRITABLE = ~0xF0FC0040 & 0xFFFF_FFFF

# TCR bits
TCR_LBK = 0x0006_0000  # loopback test mode (both bits)
TCR_HWVERID = 0x7400_0000  # RTL8139C
_TCR_WRITABLE = ~(0x7C80_0000 | 0x8070_F80F) & 0xFFFF_FFFF

# TSD bits
TSD_SIZE = 0x1FFF
TSD_OWN = 0x2000
TSD_TUN = 0x4000
TSD_TOK = 0x8000
TSD_TABT = 0x4000_0000

# receive header status bits
RX_ROK = 0x0001
RX_BAR = 0x2000  # broadcast address received
RX_PAM = 0x4000  # physical address matched
RX_MAR = 0x8000  # multicast address received

ETH_HEADER = 14  # destination, source, EtherType: anything shorter is a runt
ETH_MIN = 60  # minimum frame without CRC; shorter frames are padded, as Ethernet does
ETH_MAX = 1518  # longest frame without CRC (1514 + an 802.1Q tag): what the WRAP slack is sized for
BROADCAST = b"\xff" * 6


def parse_mac(mac: str | bytes | None) -> bytes:
    """'52:54:00:12:34:56' (or '-' separated, or 6 bytes) -> 6 bytes; ValueError otherwise."""
    if mac is None:
        mac = DEFAULT_MAC
    if isinstance(mac, bytes | bytearray):
        if len(mac) != 6:
            raise ValueError(f"a MAC address has 6 bytes, not {len(mac)}")
        return bytes(mac)
    parts = mac.replace("-", ":").split(":")
    try:
        if len(parts) != 6 or any(len(p) != 2 for p in parts):
            raise ValueError
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(f"bad MAC address {mac!r} (try 52:54:00:12:34:56)") from None


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def multicast_hash_index(mac: bytes) -> int:
    """Bit index (0-63) of a multicast address in MAR0-7: the top 6 bits of the big-endian
    Ethernet CRC of the address, as the chip (and QEMU's ``compute_mcast_idx``) computes it."""
    crc = 0xFFFF_FFFF
    for byte in mac[:6]:
        for _ in range(8):
            carry = ((crc >> 31) & 1) ^ (byte & 1)
            crc = (crc << 1) & 0xFFFF_FFFF
            byte >>= 1
            if carry:
                crc = (crc ^ 0x04C1_1DB6) | carry
    return crc >> 26


class Rtl8139:
    """The card: registers behind an I/O BAR, a receive ring and 4 transmit descriptors in RAM.

    ``transmit`` is where frames go on the wire (the board connects it to a backend's ``send``);
    :meth:`receive` is where frames from the wire come in (the backend's ``deliver``)."""

    def __init__(self, memory: PhysicalMemory, irq: IrqController, mac: str | bytes | None = None,
                 line: int = IRQ_LINE, io_base: int = IO_BASE) -> None:
        self.memory = memory
        self.irq = irq
        self.line = line
        self.eeprom_mac = parse_mac(mac)  # what reset restores IDR0-5 to
        self.transmit: Callable[[bytes], object] = lambda frame: None
        self.pci = PciFunction(
            VENDOR, DEVICE, 0x020000, revision=0x20, irq_line=line, irq_pin=1, io=self,
            bars={0: Bar("io", IO_SIZE, io_base), 1: Bar("mem", IO_SIZE, MMIO_BASE)}, mmio={1: self},
            name="RTL8139")
        #: Counters for the host (``stats()``): frames and bytes each way and why frames were lost.
        self.counters = dict.fromkeys(
            ("rx_frames", "rx_bytes", "tx_frames", "tx_bytes", "rx_filtered", "rx_disabled", "rx_overflow",
             "rx_too_long", "rx_runt", "rx_dma_errors", "tx_aborted", "interrupts"), 0)
        self.idr = bytearray(self.eeprom_mac)
        self.mar = bytearray(8)  # multicast hash filter; like QEMU, reset leaves it alone
        self.config0 = 0
        self.config4 = 0
        self.cr9346 = 0
        self.mpc = 0
        self._line_high = False
        self.reset()

    # -- chip state --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Software reset (CR.RST) and power-on: what QEMU's ``rtl8139_reset`` restores."""
        self.idr[:] = self.eeprom_mac
        self.isr = 0
        self.imr = 0
        self.cr = 0
        self.tsd = [TSD_OWN] * 4
        self.tsad = [0] * 4
        self.tx_current = 0
        self.rbstart = 0
        self.rcr = 0
        self.tcr = TCR_HWVERID
        self.config1 = 0x0C  # I/O and memory mapped registers available
        self.config3 = 0x01
        self.bmcr = 0x1000
        self._reset_ring(8192)
        self._update_irq()

    def _reset_ring(self, size: int) -> None:
        self.ring_size = size
        self.read_ptr = 0  # CAPR + 16
        self.write_ptr = 0  # CBR

    @property
    def mac(self) -> bytes:
        """The station address currently in IDR0-5."""
        return bytes(self.idr)

    def stats(self) -> dict[str, int]:
        return dict(self.counters, missed=self.mpc)

    def _update_irq(self) -> None:
        """Emulate the level of INTA on an edge-per-event controller (see the module doc): raise
        the line when the level goes high; callers reset ``_line_high`` to make it re-fire."""
        level = bool(self.isr & self.imr) and self.pci.intx_enabled
        if level and not self._line_high:
            self.counters["interrupts"] += 1
            self.irq.raise_irq(self.line)
        self._line_high = level

    def _buffer_empty(self) -> bool:
        return self.read_ptr == self.write_ptr

    # -- register file -----------------------------------------------------------------------------

    def io_read(self, offset: int, size: int) -> int:
        """A port read at ``offset`` into the BAR; wide reads are the little-endian bytes."""
        if size == 1:
            return self._read_byte(offset)
        off = offset & 0xFF
        shift = off & 3
        if shift + size <= 4:
            # Within one dword: the bytes _read_byte would give, taken from the dword at once
            # (drivers read ISR, CBR, TSD and TSAD on every frame).
            base = off - shift
            if TSD0 <= base < TSD0 + 16:
                word = self.tsd[(base - TSD0) >> 2]
            elif TSAD0 <= base < TSAD0 + 16:
                word = self.tsad[(base - TSAD0) >> 2]
            elif base >= MAR0 + 8 and base != CR & ~3:  # not IDR, MAR or the dword holding CR
                word = self._read_dword(base)
            else:
                word = None
            if word is not None:
                return (word >> (8 * shift)) & ((1 << (8 * size)) - 1)
        value = 0
        for i in range(size):
            value |= self._read_byte(offset + i) << (8 * i)
        return value

    def mmio_read(self, offset: int, size: int) -> int:
        """BAR1: the same registers, memory-mapped (the chip decodes both; so does QEMU)."""
        return self.io_read(offset, size)

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        self.io_write(offset, size, value)

    def _read_byte(self, off: int) -> int:
        off &= 0xFF
        if off < 6:
            return self.idr[off]
        if MAR0 <= off < MAR0 + 8:
            return self.mar[off - MAR0]
        if off == CR:
            return self.cr | (CR_BUFE if self._buffer_empty() else 0)
        base = off & ~3
        shift = 8 * (off & 3)
        if TSD0 <= off < TSD0 + 16:
            return (self.tsd[(off - TSD0) >> 2] >> shift) & 0xFF
        if TSAD0 <= off < TSAD0 + 16:
            return (self.tsad[(off - TSAD0) >> 2] >> shift) & 0xFF
        word = self._read_dword(base)
        return (word >> shift) & 0xFF

    def _read_dword(self, base: int) -> int:
        """The 32 bits at an aligned offset, for registers read as parts of a dword."""
        if base == RBSTART:
            return self.rbstart
        if base == CAPR:
            return ((self.read_ptr - 16) & 0xFFFF) | (self.write_ptr & 0xFFFF) << 16
        if base == IMR:
            return self.imr | self.isr << 16
        if base == TCR:
            return self.tcr
        if base == RCR:
            return self.rcr
        if base == MPC:
            return self.mpc
        if base == CR9346:
            return self.cr9346 | self.config0 << 8 | self.config1 << 16
        if base == MSR & ~3:  # 0x58: MSR, CONFIG3, CONFIG4, reserved
            msr = 0xD0 | (0 if self._bmsr() & 0x04 else 0x04)  # LINKB is 1 when the link is down
            return msr | self.config3 << 8 | self.config4 << 16
        if base == RERID & ~3:  # 0x5C: MULINT, RERID
            return 0x20 << 16
        if base == TSAD_SUMMARY:
            return self._tsad_summary() | self.bmcr << 16
        if base == BMSR:
            return self._bmsr() | 0x05E1 << 16
        if base == ANLPAR:
            return 0x05E1 | 0x0001 << 16
        return 0

    def _bmsr(self) -> int:
        return 0x7809 | 0x0020 | 0x0004  # capabilities, autonegotiation complete, link up

    def _tsad_summary(self) -> int:
        """TSAD (0x60): TOK, TUN, TABT and OWN of the four descriptors gathered in one word."""
        v = 0
        for i, t in enumerate(self.tsd):
            v |= (bool(t & TSD_TOK) << (12 + i)) | (bool(t & TSD_TUN) << (8 + i))
            v |= (bool(t & TSD_TABT) << (4 + i)) | (bool(t & TSD_OWN) << i)
        return v

    def io_write(self, offset: int, size: int, value: int) -> None:
        """A port write. Wide registers get the written bytes merged in (``mask`` says which), so
        a byte write to one of them behaves like the corresponding part of a wide write."""
        offset &= 0xFF
        reg, width = self._register_at(offset)
        if reg == offset and width == size:  # the whole register at once (the usual access)
            full = (1 << (8 * size)) - 1
            self._write_register(reg, value & full, full)
            return
        end = offset + size
        pos = offset
        while pos < end:
            reg, width = self._register_at(pos)
            lo = max(pos, reg)
            hi = min(end, reg + width)
            mask = 0
            part = 0
            for o in range(lo, hi):
                mask |= 0xFF << (8 * (o - reg))
                part |= ((value >> (8 * (o - offset))) & 0xFF) << (8 * (o - reg))
            self._write_register(reg, part, mask)
            pos = hi

    @staticmethod
    def _register_at(off: int) -> tuple[int, int]:
        """(start, width) of the register containing ``off``."""
        if TSD0 <= off < RBSTART + 4 or off in (TCR, TCR + 1, TCR + 2, TCR + 3) or RCR <= off < RCR + 4 \
                or MPC <= off < MPC + 4:
            return off & ~3, 4
        if off in (CAPR, CAPR + 1, CBR, CBR + 1, IMR, IMR + 1, ISR, ISR + 1):
            return off & ~1, 2
        return off, 1

    def _write_register(self, reg: int, value: int, mask: int) -> None:
        if reg < 6:
            self.idr[reg] = value
        elif MAR0 <= reg < MAR0 + 8:
            self.mar[reg - MAR0] = value
        elif TSD0 <= reg < TSD0 + 16:
            self._write_tsd((reg - TSD0) >> 2, value, mask)
        elif TSAD0 <= reg < TSAD0 + 16:
            i = (reg - TSAD0) >> 2
            self.tsad[i] = (self.tsad[i] & ~mask) | (value & mask)
        elif reg == RBSTART:
            self.rbstart = (self.rbstart & ~mask) | (value & mask)
        elif reg == CR:
            self._write_cr(value)
        elif reg == CAPR:
            capr = (((self.read_ptr - 16) & 0xFFFF) & ~mask) | (value & mask)
            self.read_ptr = (capr + 16) % self.ring_size
        elif reg == IMR:
            imr = (self.imr & ~mask) | (value & mask)
            self.imr = (imr & ~_ISR_RESERVED) | (self.imr & _ISR_RESERVED)
            self._update_irq()
        elif reg == ISR:
            self.isr &= ~(value & mask & ~_ISR_RESERVED)
            self._line_high = False  # as after an EOI: a cause still pending interrupts again
            self._update_irq()
        elif reg == TCR:
            if self.cr & CR_TE:  # the chip ignores TCR while the transmitter is off (QEMU too)
                new = (self.tcr & ~mask) | (value & mask)
                self.tcr = (new & _TCR_WRITABLE) | (self.tcr & ~_TCR_WRITABLE)
        elif reg == RCR:
            new = (self.rcr & ~mask) | (value & mask)
            self.rcr = (new & _RCR_WRITABLE) | (self.rcr & ~_RCR_WRITABLE)
            # The ring length may have changed, so the pointers start over (QEMU does the same).
            self._reset_ring(8192 << ((self.rcr >> RCR_RBLEN_SHIFT) & 3))
        elif reg == MPC:
            self.mpc = 0  # any write clears the missed packet counter
        elif reg == CR9346:
            self.cr9346 = value & 0xC0
            if self.cr9346 == 0x40:  # "auto-load": reload from the EEPROM, i.e. reset
                self.reset()
                self.cr9346 = 0
        elif reg in (CONFIG0, CONFIG1, CONFIG3, CONFIG4):
            if self.cr9346 == 0xC0:  # configuration registers are write-protected unless unlocked
                if reg == CONFIG1:
                    self.config1 = (value & ~0x0C) | (self.config1 & 0x0C)
                elif reg == CONFIG3:
                    self.config3 = value
                elif reg == CONFIG4:
                    self.config4 = value
        # everything else (ERBCR, ERSR, CBR, MSR, MII, reserved) is read-only or ignored

    def _write_cr(self, value: int) -> None:
        if value & CR_RST:
            self.reset()  # completes at once: RST reads back clear on the next poll
        self.cr = value & (CR_RE | CR_TE)
        if self.cr & CR_TE:
            self._transmit_pending()

    def _write_tsd(self, i: int, value: int, mask: int) -> None:
        new = (self.tsd[i] & ~mask) | (value & mask)
        new &= ~0xFF00_C000  # status bits (TOK, TUN, NCC, CDH, OWC, TABT, CRS) clear on write
        self.tsd[i] = new
        if not new & TSD_OWN:
            self._transmit_pending()

    # -- transmit ----------------------------------------------------------------------------------

    def _transmit_pending(self) -> None:
        """Send every descriptor handed to the card, in ring order from the current one."""
        for _ in range(4):
            if not self.cr & CR_TE:
                return
            i = self.tx_current
            if self.tsd[i] & TSD_OWN:
                return
            self._transmit_one(i)
            self.tx_current = (i + 1) & 3

    def _transmit_one(self, i: int) -> None:
        size = self.tsd[i] & TSD_SIZE
        frame = b""
        if size:
            try:
                if not self.pci.bus_master:
                    raise BusError("bus mastering disabled")
                frame = self.memory.read(self.tsad[i], size)
            except BusError:
                self.tsd[i] |= TSD_OWN | TSD_TABT  # master abort: the transmission is aborted
                self.isr |= ISR_TER | (0 if not self.pci.bus_master else ISR_SERR)
                self.counters["tx_aborted"] += 1
                self._update_irq()
                return
        self.tsd[i] |= TSD_OWN | TSD_TOK
        if frame:
            self.counters["tx_frames"] += 1
            self.counters["tx_bytes"] += size
            if self.tcr & TCR_LBK == TCR_LBK:
                self.receive(frame)  # loopback test mode: straight back into our own receiver
            else:
                self.transmit(frame)
        self.isr |= ISR_TOK
        self._update_irq()

    # -- receive -----------------------------------------------------------------------------------

    def _classify(self, frame: bytes) -> int | None:
        """Receive-header address bits if RCR accepts ``frame``, else None."""
        dst = frame[:6]
        rcr = self.rcr
        if dst == BROADCAST:
            kind, ok = RX_BAR, rcr & RCR_AB
        elif dst[0] & 1:
            idx = multicast_hash_index(dst)
            kind, ok = RX_MAR, rcr & RCR_AM and self.mar[idx >> 3] & (1 << (idx & 7))
        elif dst == self.idr:
            kind, ok = RX_PAM, rcr & RCR_APM
        else:
            kind, ok = 0, 0
        if ok or rcr & RCR_AAP:
            return kind
        return None

    def receive(self, frame: bytes) -> bool:
        """A frame arrives from the wire; True if it was placed in the receive ring."""
        c = self.counters
        if not self.cr & CR_RE:
            c["rx_disabled"] += 1
            return False
        if len(frame) > ETH_MAX:
            c["rx_too_long"] += 1
            return False
        if len(frame) < ETH_HEADER:
            c["rx_runt"] += 1  # not even a header: line noise, dropped as a card drops runts
            return False
        kind = self._classify(frame)
        if kind is None:
            c["rx_filtered"] += 1
            return False
        if len(frame) < ETH_MIN:
            frame = frame + bytes(ETH_MIN - len(frame))
        size = len(frame)
        ring = self.ring_size
        avail = (ring + self.read_ptr - self.write_ptr) % ring
        need = (size + 8 + 3) & ~3
        if avail != 0 and need >= avail:
            # no room: the frame is lost (and the ring never becomes exactly full, which would
            # read as empty)
            self.isr |= ISR_RXOVW
            self.mpc = (self.mpc + 1) & 0xFF_FFFF
            c["rx_overflow"] += 1
            self._update_irq()
            return False
        if not self.pci.bus_master:
            c["rx_dma_errors"] += 1
            return False
        header = (RX_ROK | kind) | (size + 4) << 16
        crc = zlib.crc32(frame)
        start = self.write_ptr
        try:
            self._ring_write(header.to_bytes(4, "little"))
            self._ring_write(frame)
            self._ring_write(crc.to_bytes(4, "little"))
        except BusError:
            self.write_ptr = start
            self.isr |= ISR_SERR
            c["rx_dma_errors"] += 1
            self._update_irq()
            return False
        self.write_ptr = ((self.write_ptr + 3) & ~3) % ring
        c["rx_frames"] += 1
        c["rx_bytes"] += size
        self.isr |= ISR_ROK
        self._update_irq()
        return True

    def _ring_write(self, data: bytes) -> None:
        """DMA ``data`` at the write pointer; wrap to the start unless RCR.WRAP lets it run on."""
        ring = self.ring_size
        pos = self.write_ptr
        n = len(data)
        if pos + n > ring:
            wrapped = (pos + n) % ring
            if wrapped and not (ring < 65536 and self.rcr & RCR_WRAP):
                first = n - wrapped
                if first > 0:
                    self.memory.write(self.rbstart + pos, data[:first])
                self.memory.write(self.rbstart, data[first:])
                self.write_ptr = wrapped
                return
        self.memory.write(self.rbstart + pos, data)
        self.write_ptr = pos + n
