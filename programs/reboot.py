"""reboot: restart the machine, as on a PC (root only).

Restarting is the kernel's to do, not a driver's: this program runs confined, without I/O
privilege, so it asks the kernel with the reboot syscall (Linux's reboot(2)), which refuses
anyone but root and then pulses the keyboard controller's reset line (out 0x64, 0xFE). The
machine model turns that into a machine reset -- the monitor's system_reset path -- and the PC
boots again from scratch. The permission question is asked first (REBOOT_QUERY) so that the
goodbye is printed only when the restart will happen."""

from euralios.std import SyscallError, abi


async def main(proc):
    try:
        await proc.sys.reboot(abi.REBOOT_QUERY)
    except SyscallError as e:
        await proc.print(f"reboot: {abi.ERROR_TEXT.get(e.code, f'error {e.code}').lower()}")
        return 1
    await proc.print("Restarting system.")
    await proc.sys.reboot(abi.REBOOT_RESTART)  # does not return: the machine resets
    return 0
