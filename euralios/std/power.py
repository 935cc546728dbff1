"""Restarting and powering off the machine, as `reboot` and `shutdown` do (root only).

Both ask the kernel (the reboot syscall, Linux's reboot(2)) rather than touching hardware:
programs from files run confined without I/O privilege, and only the kernel decides who may.
The permission is asked first (REBOOT_QUERY) so that the goodbye is printed only when it will
happen."""

from __future__ import annotations

from typing import Any

from euralios.std import abi
from euralios.std.errors import SyscallError


async def power(proc: Any, command: str, how: int, goodbye: str) -> int:
    """`how` is abi.REBOOT_RESTART or abi.REBOOT_POWER_OFF; 1 (with why) when refused."""
    try:
        await proc.sys.reboot(abi.REBOOT_QUERY)
    except SyscallError as e:
        await proc.print(f"{command}: {abi.ERROR_TEXT.get(e.code, f'error {e.code}').lower()}")
        return 1
    await proc.print(goodbye)
    await proc.sys.reboot(how)  # does not return: the machine resets or the power goes
    return 0
