"""reboot: restart the machine, as on a PC (root only).

Restarting is the kernel's to do, not a driver's: this program runs confined, without I/O
privilege, so it asks the kernel with the reboot syscall (Linux's reboot(2)), which refuses
anyone but root and then pulses the keyboard controller's reset line (out 0x64, 0xFE). The
machine model turns that into a machine reset -- the monitor's system_reset path -- and the PC
boots again from scratch. The permission question is asked first (REBOOT_QUERY) so that the
goodbye is printed only when the restart will happen."""

from euralios.std import abi
from euralios.std.power import power


async def main(proc):
    return await power(proc, "reboot", abi.REBOOT_RESTART, "Restarting system.")
