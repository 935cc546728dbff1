"""shutdown: power the machine off (root only); `euralios` then ends with status 0.

Like reboot, this asks the kernel (the reboot syscall, Linux's reboot(2)) rather than touching
hardware: programs from files run confined without I/O privilege, and only the kernel should
decide who may switch the machine off. The kernel refuses anyone but root, then writes the ACPI
soft-off -- SLP_EN with sleep type S5 to the PIIX4's PM1a control register (outw 0x604, 0x2000),
QEMU's power-off too -- and the machine powers down. "System halted." is printed once the kernel
has said yes (REBOOT_QUERY), before the power goes."""

from euralios.std import abi
from euralios.std.power import power


async def main(proc):
    return await power(proc, "shutdown", abi.REBOOT_POWER_OFF, "System halted.")
