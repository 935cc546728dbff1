"""passwd [NAME]: set or change your password (asks login through /dev/login).

Only your own: login changes the password of the user it logged in, so `passwd root` typed by
`user` is refused here, before any password is asked for."""

from euralios.std import SyscallError, abi
from euralios.std.fs import send_bytes

PASSWD = 0x500


async def main(proc):
    if len(proc.args) > 2:
        await proc.print("Usage: passwd [your user name]")
        return 2
    if len(proc.args) == 2 and proc.args[1] != proc.user:
        await proc.print(f"passwd: {proc.args[1]}: permission denied (you may change only your own password)")
        return 1
    try:
        h = await proc.connect_handle("/dev/login")
    except SyscallError:
        await proc.print("passwd: no login session (/dev/login is missing)")
        return 1
    await proc.write("Current password (empty if none): ")
    old = (await proc.read_line(echo=False)).rstrip("\n")
    await proc.write("\nNew password: ")
    new = (await proc.read_line(echo=False)).rstrip("\n")
    await proc.write("\nRetype new password: ")
    again = (await proc.read_line(echo=False)).rstrip("\n")
    await proc.write("\n")
    if not new or new != again:
        await proc.print("passwd: passwords do not match (or are empty); unchanged")
        return 1
    data = f"{old}\0{new}".encode()
    try:
        await proc.sys.rcall(h, PASSWD, len(data), await send_bytes(proc.sys, data))
    except SyscallError as e:
        if e.code == abi.DENIED:
            await proc.print("passwd: authentication failure; unchanged")
            return 1
        raise
    await proc.print("passwd: password updated")
    return 0
