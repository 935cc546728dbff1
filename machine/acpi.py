"""The PIIX4 ACPI power-management registers: how the guest powers the machine off.

QEMU's ``-machine pc`` has the PIIX4 PM function (PCI 00:01.3, machine/pci.py) and SeaBIOS puts
its register block at I/O port 0x600. Of it this model has the PM1a event and control registers,
enough for a soft power-off: a 16-bit write to PM1a_CNT (0x604) with SLP_EN (bit 13) set and
SLP_TYP (bits 10-12) 0, the sleep type QEMU's DSDT gives S5, calls `power_off` -- as QEMU's
``acpi_pm1_cnt_write`` requests a shutdown. So ``outw(0x604, 0x2000)`` is the off switch, as it
is for any OS under QEMU. Other sleep types (S1-S4: suspend) are ignored; nothing else is modelled.
"""

from __future__ import annotations

from collections.abc import Callable

PM_BASE = 0x600  # where SeaBIOS programs the PIIX4's PMBA
PM1A_STS = PM_BASE + 0x00
PM1A_EN = PM_BASE + 0x02
PM1A_CNT = PM_BASE + 0x04
PORTS = range(PM_BASE, PM_BASE + 0x40)

SLP_EN = 1 << 13
SLP_TYP_SHIFT = 10
SLP_TYP_S5 = 0  # the soft-off sleep type in QEMU's DSDT for the PIIX4
SCI_EN = 1  # PM1_CNT bit 0: ACPI mode (SeaBIOS leaves it set)


class AcpiPm:
    """PM1a status, enable and control; a power-off request calls `power_off`."""

    def __init__(self, power_off: Callable[[], object] | None = None) -> None:
        self.power_off = power_off
        self.pm1_sts = 0
        self.pm1_en = 0
        self.pm1_cnt = SCI_EN

    def port_read(self, port: int, size: int) -> int:
        if port == PM1A_STS:
            return self.pm1_sts
        if port == PM1A_EN:
            return self.pm1_en
        if port == PM1A_CNT:
            return self.pm1_cnt
        return 0

    def port_write(self, port: int, size: int, value: int) -> None:
        if port == PM1A_STS:
            self.pm1_sts &= ~value  # write one to clear
        elif port == PM1A_EN:
            self.pm1_en = value & 0xFFFF
        elif port == PM1A_CNT:
            self.pm1_cnt = value & ~SLP_EN & 0xFFFF  # SLP_EN is write-only and reads 0
            sleep_type = (value >> SLP_TYP_SHIFT) & 7
            if value & SLP_EN and sleep_type == SLP_TYP_S5 and self.power_off is not None:
                self.power_off()
