"""login: who are you? Then a shell with the VFS your account may see.

Accounts are the seed's: `root` (the whole system) and `user` (a private VFS: /bin read-only, its
home directory as /ramdisk, /tcp, /proc, and the host folders shared with ``user=on`` at
/host/TAG). Neither has a password until one is set with
`passwd`. Password hashes (scrypt) live in /etc/passwd.json on a store that only login's VFS
mounts — no shell can reach it. `passwd` asks this login process, through /dev/login in the
shell's VFS, to change the logged-in user's password; that rendezvous is the only door.

Handle 0: this console's reader channel (the console is a tty: drivers/tty.py); handle 1: the
console. The console edits and echoes what is typed at `login:` (not `Password:`); the shell is
started in front of it (euralios.std.tty), so keys typed ahead while it starts wait in the
console for it -- login never relays a key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets

from euralios.std import Memory, Message, SyscallError, abi, discard, tty
from euralios.std.fs import take_bytes
from euralios.std.protocols.shares import SHARES_ENV
from euralios.std.protocols.shares import decode as decode_shares
from euralios.std.serve import serve

WELCOME = """\x1b[1mWelcome to EuraliOS!\x1b[0m

  [F1] switches to system console
  [F2..F5] user consoles
"""
ACCOUNTS = ("root", "user")
PASSWD_FILE = "/etc/passwd.json"
PASSWD = 0x500  # request to /dev/login: Long(PASSWD, Value(len), Memory(b"old\0new"))
SCRYPT = {"n": 2**14, "r": 8, "p": 1}
# Frames (4 KiB) each program of a `user` session may own: 16 MiB, a quarter of the default RAM,
# enough for the editor, the Gopher browser and the stack's buffers; everything the session
# starts inherits it. With the kernel's reserve for root, no user can starve init, the drivers
# or another console.
USER_QUOTA = 4096


def hash_password(password: str, salt: bytes) -> str:
    return hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT).hex()


class Login:
    def __init__(self, proc) -> None:
        self.proc = proc
        self.session = None  # the running shell (a Child)
        self.user = ""

    # ------------------------------------------------------------------ password store
    async def load(self) -> dict:
        try:
            return json.loads(await self.proc.read_file(PASSWD_FILE))
        except (SyscallError, ValueError):
            return {}

    async def check(self, name: str, password: str | None) -> bool:
        entry = (await self.load()).get(name)
        if not entry:
            return True  # no password set
        if password is None:
            return False
        digest = hash_password(password, bytes.fromhex(entry["salt"]))
        return hmac.compare_digest(digest, entry["hash"])

    async def has_password(self, name: str) -> bool:
        return bool((await self.load()).get(name))

    async def set_password(self, name: str, password: str) -> None:
        table = await self.load()
        salt = secrets.token_bytes(16)
        table[name] = {"salt": salt.hex(), "hash": hash_password(password, salt)}
        await self.proc.write_file(PASSWD_FILE, json.dumps(table))

    # ------------------------------------------------------------------ keys
    async def read_line(self, echo: bool = True) -> str | None:
        """A line from the console (None at end of input). The console edits it; typed
        control characters are dropped."""
        line = await self.proc.read_line(echo=echo)
        if not line:
            return None
        return "".join(ch for ch in line.rstrip("\n") if ch >= " ")

    # ------------------------------------------------------------------ /dev/login
    async def passwd_service(self, handle: int) -> None:
        """Serve `passwd` for the shell of this session (and its children); ends with it."""
        await serve(self.proc.sys, handle, self.passwd_request)

    async def passwd_request(self, msg: Message) -> Message:
        sys = self.proc.sys
        if msg.tag != PASSWD or not isinstance(msg.d3, Memory):
            await discard(sys, msg)
            return Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0)
        raw = (await take_bytes(sys, msg)).decode("utf-8", "replace")
        old, _, new = raw.partition("\0")
        if new and await self.check(self.user, old if await self.has_password(self.user) else None):
            await self.set_password(self.user, new)
            return Message(abi.OK, 0, 0)
        await self.proc.sleep(1.0)
        return Message(abi.ERROR_DENIED, 0, 0)

    # ------------------------------------------------------------------ sessions
    async def start_shell(self, name: str):
        """The shell for `name`, with /dev/login (this login's passwd service) in its VFS."""
        proc = self.proc
        dev1, dev2 = await proc.sys.new_rendezvous()
        await proc.spawn_thread(self.passwd_service, dev1)
        env = {"PWD": "/ramdisk", "HOME": "/ramdisk", "USER": name, "PATH": "/bin"}
        if name == "root":
            return await self._exec_root(dev2, env)
        mounts: dict[str, int] = {}
        # Host folders given with user=on (--share DIR,user=on), at the same /host/TAG as root's.
        shared = [(sh.path, sh.path, "r" if sh.readonly else "r+")
                  for sh in decode_shares(proc.env.get(SHARES_ENV, "")) if sh.user]
        for path, target, mode in (("/bin", "/ramdisk/bin", "r"), ("/ramdisk", "/ramdisk/user", "r+"),
                                   ("/tcp", "/tcp", "r+"), ("/proc", "/proc", "r"), *shared):
            try:
                mounts[path] = (await proc.open(target, mode)).handle
            except SyscallError:
                continue
        mounts["/dev/login"] = dev2
        return await proc.exec("/bin/shell", ["shell"], vfs=mounts, stdin="tty", env=env, user=name,
                               quota=None if name == "root" else USER_QUOTA)

    async def _exec_root(self, dev: int, env: dict[str, str]):
        """root's shell: a copy of login's VFS without the password store, plus /dev/login."""
        proc = self.proc
        image = await proc.read_file("/bin/shell")
        sys = proc.sys
        stdin, entry = await tty.foreground(sys, 0)
        env = {**env, tty.TTY_ENV: "1"}
        stdout = await sys.copy_rendezvous(1)
        keep, give = await sys.new_rendezvous()
        params = bytearray(b"C-/etc:")
        params += f"m{dev}|/dev/login:X{give}|".encode()
        params += b"A" + b"shell" + b"\0"
        params += b"E" + "\x03".join(f"{k}={v}" for k, v in env.items()).encode() + b"\0"
        params += b"nshell\0Uroot\0"
        from euralios.std.proc import Child

        try:
            pid = await sys.exec(image, stdin, stdout, bytes(params))
        except SyscallError:
            await tty.background(sys, 0, entry)
            raise
        child = Child(proc, pid, keep, None)
        child.tty_entry = entry
        return child

    async def run(self) -> int:
        try:
            return await self.serve()
        except SyscallError as e:
            if e.code == abi.CLOSED:
                return 0  # a hang-up: the console went away (its driver died)
            raise

    async def serve(self) -> int:
        proc = self.proc
        await proc.write(WELCOME + "\n")
        while True:
            await proc.write("login: ")
            line = await self.read_line()
            if line is None:
                return 0
            name = line.strip()
            if not name:
                continue
            if name not in ACCOUNTS:
                await proc.print("Unknown login. Try 'root' or 'user'...")
                continue
            if await self.has_password(name):
                await proc.write("Password: ")
                password = await self.read_line(echo=False)
                if not await self.check(name, password):
                    await proc.sleep(1.0)
                    await proc.print("Login incorrect")
                    continue
            self.user = name
            try:
                self.session = await self.start_shell(name)
            except SyscallError as e:
                await proc.print(f"Error executing shell: {e}")
                continue
            await self.session.wait()
            self.session = None
            await proc.write("\n")


async def main(proc):
    return await Login(proc).run()
