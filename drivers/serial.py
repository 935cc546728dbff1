"""Serial console driver: serves a console on COM1 (the console of `euralios run` and of
`euralios --serial`).

Handle 0 (stdin) is where clients send console requests: Long(WRITE, len, chunk) writes text and
is answered OK; Short(CHAR, code) writes one character with no reply (echo). Bytes typed on the
host arrive on the UART. Until anyone asks for the line as a tty they are sent as Short(CHAR,
code) to handle 1 (stdout), the input rendezvous of the programs run on this console (`euralios
run`). Once a program is put in front of it (FOREGROUND, as init's serial getty does), the line
is a tty like a virtual console (drivers/ttyserve.py): typed keys wait for the reader in front,
lines are edited and echoed here, Ctrl+C goes to the job's controller. Needs I/O privilege.
"""

from drivers.ttyserve import TtyServer
from euralios.std import STDIN, STDOUT, Memory, Message, SyscallError, abi, discard
from euralios.std.fs import take_bytes
from euralios.std.keys import bytes_to_code
from euralios.std.serve import serve

COM1 = 0x3F8
IRQ = 4


LINE = 0  # the one terminal of this driver, in its TtyServer


async def input_thread(proc, ttys: TtyServer, tty_line: bool = False):
    """Received bytes as key codes -- to the tty once it has had a reader in front, else to
    stdout; the UART interrupts when data arrives."""
    sys = proc.sys
    await sys.port_out(COM1 + 1, 1)  # enable the receive interrupt
    pending = bytearray()
    while True:
        await sys.await_interrupt(IRQ)
        while await sys.port_in(COM1 + 5) & 1:
            pending.append(await sys.port_in(COM1))
        while pending:
            try:
                text = pending.decode("utf-8")
                pending.clear()
            except UnicodeDecodeError as e:
                if e.start == 0 and len(pending) < 4:
                    break  # wait for the rest of a multi-byte character
                text = pending[: max(e.start, 1)].decode("utf-8", "replace")
                del pending[: max(e.start, 1)]
            for code in key_codes(text):
                if tty_line or ttys.next_entry > 1:  # a tty (from the start, or now)
                    await ttys.key(LINE, code)
                    continue
                try:
                    await sys.send(STDOUT, Message(abi.CHAR, code, 0))
                except SyscallError:
                    pass  # nobody reads input any more


def key_codes(text):
    """Terminal input -> the keyboard driver's key codes: escape sequences (arrows, Delete...)
    become the same packed codes, DEL (what a terminal's Backspace sends) becomes 8, CR 10."""
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\x1b" and i + 1 < n and text[i + 1] in "[O":
            j = i + 2
            while j < n and not ("\x40" <= text[j] <= "\x7e"):
                j += 1
            yield bytes_to_code(text[i : j + 1].encode())
            i = j + 1
            continue
        yield {0x7F: 8, 0x0D: 10}.get(ord(c), ord(c))
        i += 1


async def output(sys, data):
    for b in data:
        await sys.port_out(COM1, b)


async def request(sys, msg: Message, ttys: TtyServer | None = None) -> Message | None:
    """The reply to one console request (None: nothing to say)."""
    if ttys is not None:
        answer = await ttys.request(LINE, msg)  # FOREGROUND, BACKGROUND
        if answer is not None:
            return answer
    if msg.tag == abi.WRITE and isinstance(msg.d3, Memory):
        data = await take_bytes(sys, msg)
        await output(sys, data)
        return Message(abi.OK, len(data), 0)
    if msg.tag == abi.CHAR and isinstance(msg.d2, int):
        code = msg.d2
        # Any number may arrive here: only real characters are printed.
        await output(sys, chr(code).encode("utf-8", "replace") if 0 <= code <= 0x10FFFF else b"")
        return None
    if msg.tag == abi.CLOSE_TAG:
        return None
    await discard(sys, msg)
    return Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0)


async def main(proc):
    sys = proc.sys

    async def echo(_line: int, data: bytes) -> None:
        await output(sys, data)

    ttys = TtyServer(proc, echo)
    ttys.add(LINE)
    # --tty: the line is a terminal from the start (a login will run on it): keys typed before
    # anyone reads wait in its tty rather than in a send nobody takes.
    await proc.spawn_thread(input_thread, proc, ttys, "--tty" in proc.args)

    async def handle(msg: Message) -> Message | None:
        return await request(sys, msg, ttys)

    await serve(sys, STDIN, handle, owed=Message(abi.ERROR, 0, 0))
    return 0
