"""Console driver: VGA text memory and virtual consoles (the seed's vga_driver, spec §11.5).

Every console is a drivers.vt.TextConsole (an 80x25 cell buffer with an ANSI parser), always
kept up to date; the *active* one is also copied into VGA text memory, and its cursor into the
CRTC cursor registers. Switching consoles therefore shows each console exactly as its programs
left it, and a console's programs never wait for the screen.

Startup: the first message on handle 0 must be Long(VIDEO_MEMORY, Value(n), Memory(chunk)), the
device memory the kernel parked for init and init forwarded here. Text memory is found from the
chunk's physical address (chunk_info): 0xB8000 itself, or the seed's 0xA0000 window with text at
offset 0x18000.

Handle 0 (the driver's main handle, normally only init holds it):

| Message | Action |
|---|---|
| OPEN_READWRITE (Short or Long) | new console (id = creation order), a writer thread on a new rendezvous; reply Long(COMM_HANDLE, Handle(client end), Value(id)), or ERROR(code) when no thread or rendezvous can be had. Short(OPEN_READWRITE, lines): keep `lines` rows of scrollback (at most drivers.vt.MAX_SCROLLBACK, 10000); 0 or Long: drivers.vt.SCROLLBACK (1000) |
| Short(WRITE, id, 0) | activate console id; reply OK, or ERROR if id is unknown (the active console stays) |
| Short(CHAR, code) | a key typed while the active console is on screen: its tty's (init sends them) |
| Short(SCROLL, id, delta) | scroll console id's view `delta` rows back into its scrollback (negative, as a signed or two's complement word: forward; 0: back to the live screen), clamped; reply OK(offset: rows now scrolled back), or ERROR(PARAM) if id is unknown. Shift+PgUp/PgDn typed on the console do the same here (half a screen), and the next other key returns to the bottom |
| QUERY | reply Long(JSON, n, chunk): {"consoles": n, "active": id or null} |
| anything else | reply ERROR_UNKNOWN_MESSAGE |

Writer handles (one per console, shared by every program printing there):

| Message | Action |
|---|---|
| Long(WRITE, Value(n), Memory) | render the n bytes; reply OK (if the sender waits) |
| Short(CHAR, code) | render the key code as a terminal would send it (no reply unless awaited) |
| QUERY | reply Long(JSON, n, chunk): id, active, rows, cols, cursor, cursor_visible, wrap_pending (the cursor waits in column 80, see drivers.vt), scrollback (rows of history held), scrolled (rows the view is scrolled back); readers, typeahead, dropped (its tty) |
| FOREGROUND, BACKGROUND | a console is a tty: foreground readers (drivers/ttyserve.py has the protocol) |
| CLOSE | the writer thread ends (the console keeps its last screen) |
| anything else | reply ERROR_UNKNOWN_MESSAGE |

Fixed from the seed: replies go only to senders that wait for one (a plain send is never
answered, so nobody is left with an unexpected message), an unknown console id leaves the active
console in place, every received chunk is freed and every received handle closed, and the cursor
register gets 80*row + col (the seed swapped them).

Scrollback (drivers.vt): what is copied to the screen is the console's *view*, the live screen
or, scrolled back, rows of its history; the cursor is hidden while scrolled back. Output to a
scrolled-back console keeps its view where it is (the Linux console returns to the bottom only
when a key is typed, and so does this driver).

Only the rows that changed since the last copy are written (one contiguous span, one memory
write), which keeps typing cheap and lets front-ends redraw only when something happened.
"""

from __future__ import annotations

import json

from drivers.ttyserve import TtyServer
from drivers.vt import COLS, MAX_SCROLLBACK, ROWS, SCROLLBACK, SIZE, TextConsole
from euralios.std import STDIN, Chunk, Handle, Memory, Message, SyscallError, abi, discard
from euralios.std.fs import send_bytes
from euralios.std.keys import F_KEYS, KEY_SHIFT_PGDN, KEY_SHIFT_PGUP, code_to_bytes
from euralios.std.serve import Last, OnError, Requests, serve

CRTC_INDEX = 0x3D4
CURSOR_START = 0x0A
CURSOR_HIGH = 0x0E
CURSOR_LOW = 0x0F
CURSOR_START_LINE = 0x0E  # BIOS underline cursor: scan lines 14-15
CURSOR_DISABLE = 0x20
SEED_VIDEO_SIZE = 0x20000  # the seed maps 0xA0000..0xC0000; text memory is 0x18000 into it
SEED_TEXT_OFFSET = 0x18000
SWITCH_KEYS = frozenset(F_KEYS[:5])  # F1 (the system console) and F2-F5 (user consoles): init's
SCROLL_LINES = 12  # Shift+PgUp/PgDn: half of the 25-row screen, as the Linux console
MAX_WRITE = 1 << 20  # longest WRITE rendered at once (bounds the time one request can take)
ROW_BYTES = COLS * 2
WORD = 1 << 64


class Screen:
    """The video hardware as the driver owns it: text memory (through the chunk) and cursor."""

    def __init__(self, proc, chunk: Chunk, offset: int) -> None:
        self.proc = proc
        self.sys = proc.sys
        self.chunk = chunk
        self.offset = offset
        self.shadow: bytearray | None = None  # what video memory holds now (None: unknown)
        self.shown: TextConsole | None = None  # whose live screen shadow holds (None: unsure)
        self.cursor: tuple[int, bool] | None = None  # (offset, visible) last programmed
        self.want: tuple[int, bool] | None = None  # (offset, visible) most recently asked for
        self._programming = False

    async def show(self, con: TextConsole) -> None:
        """Copy the changed rows of `con`'s view to video memory and program its cursor.

        When video memory already shows `con`'s live screen, only the rows it wrote since are
        copied (its damage range): comparing all 25 rows was the largest cost of echoing a key.
        Another console, or a scrolled view, is compared row by row against what is shown."""
        lo, hi = con.take_damage()
        shadow = self.shadow
        cells = con.view()
        if shadow is not None and self.shown is con and not con.offset:
            first, last = (lo // ROW_BYTES, (hi - 1) // ROW_BYTES) if lo < hi else (-1, -1)
        elif shadow is None:
            first, last = 0, ROWS - 1
        elif cells == shadow:
            first = last = -1
        else:
            first = 0
            while cells[first * ROW_BYTES : (first + 1) * ROW_BYTES] == shadow[first * ROW_BYTES : (first + 1) * ROW_BYTES]:
                first += 1
            last = ROWS - 1
            while cells[last * ROW_BYTES : (last + 1) * ROW_BYTES] == shadow[last * ROW_BYTES : (last + 1) * ROW_BYTES]:
                last -= 1
        self.shown = con if not con.offset else None
        if first >= 0:
            lo, hi = first * ROW_BYTES, (last + 1) * ROW_BYTES
            self.chunk.write(self.offset + lo, cells[lo:hi])
            if shadow is None:
                self.shadow = bytearray(cells)
            else:
                shadow[lo:hi] = cells[lo:hi]
        con.dirty = False
        await self.set_cursor(con.cursor_row * COLS + con.cursor_col, con.shown_cursor_visible)

    async def set_cursor(self, offset: int, visible: bool) -> None:
        """Program the CRTC cursor registers, touching only those that change. One 16-bit
        `out` to the index port writes index and data together (the `out dx, ax` idiom).

        Port writes are syscalls, so another thread may ask for a newer cursor meanwhile: the
        thread already programming picks the newest wish up before it stops, so the registers
        always end at the last position asked for."""
        self.want = (offset, visible)
        if self._programming:
            return
        self._programming = True
        try:
            while self.cursor != self.want:
                offset, visible = want = self.want
                old = self.cursor
                if old is None or old[1] != visible:
                    start = CURSOR_START_LINE | (0 if visible else CURSOR_DISABLE)
                    await self.sys.port_out(CRTC_INDEX, CURSOR_START | (start << 8), 2)
                if old is None or old[0] != offset:
                    if old is None or old[0] >> 8 != offset >> 8:
                        await self.sys.port_out(CRTC_INDEX, CURSOR_HIGH | ((offset >> 8) << 8), 2)
                    await self.sys.port_out(CRTC_INDEX, CURSOR_LOW | ((offset & 0xFF) << 8), 2)
                self.cursor = want
        finally:
            self._programming = False


class Driver:
    """The consoles and which one is on screen; shared by the main thread and the writers
    (threads of one process run one at a time between syscalls, so no locking is needed)."""

    def __init__(self, proc, screen: Screen) -> None:
        self.proc = proc
        self.sys = proc.sys
        self.screen = screen
        self.consoles: list[TextConsole] = []
        self.upstream: int | None = None  # init's key input, for the console-switching keys
        self.held: list[int] | None = None  # keys typed after an F-key init has not acted on yet
        self.ttys = TtyServer(proc, self.echo)  # each console's input (drivers/tty.py, ttyserve.py)
        self.active: int | None = None

    async def refresh(self, cid: int) -> None:
        """After console `cid` changed: put it on screen if it is the active one."""
        if cid == self.active:
            con = self.consoles[cid]
            if con.dirty:
                await self.screen.show(con)

    async def activate(self, cid: int) -> None:
        self.active = cid
        await self.screen.show(self.consoles[cid])

    # ------------------------------------------------------------------ messages
    async def json_reply(self, value: object) -> Message:
        """The JSON answer to a QUERY; ERROR(MEMORY) when no chunk can be had for it."""
        data = json.dumps(value).encode()
        try:
            mem = await send_bytes(self.sys, data)
        except SyscallError:
            return Message(abi.ERROR, abi.MEMORY, 0)
        return Message(abi.JSON, len(data), mem)

    async def serve_main(self) -> int:
        await serve(self.sys, STDIN, self.main_request, on_error=OnError.RAISE)
        return 0  # init is gone: the writers keep serving their programs

    async def main_request(self, msg: Message) -> Message | None:
        """The reply to a request on handle 0 (None: nothing to say)."""
        sys = self.sys
        tag = msg.tag
        if tag == abi.OPEN_READWRITE:
            await discard(sys, msg)
            if not msg.reply:
                return None  # nobody to hand the console to
            lines = msg.d2 if not msg.is_long and isinstance(msg.d2, int) else 0
            lines = min(lines, MAX_SCROLLBACK) if 0 < lines < WORD else SCROLLBACK
            cid = len(self.consoles)
            self.consoles.append(TextConsole(lines))
            self.ttys.add(cid)
            try:
                mine, theirs = await sys.new_rendezvous()
            except SyscallError as e:
                self.consoles.pop()
                self.ttys.remove(cid)
                return Message(abi.ERROR, e.code, 0)
            try:
                await self.proc.spawn_thread(self.serve_writer, cid, mine)
            except SyscallError as e:
                # Out of threads (64 per process): one client asking for too many consoles
                # gets an error; it does not get to kill the driver of every screen.
                self.consoles.pop()
                self.ttys.remove(cid)
                for h in (mine, theirs):
                    await sys.close(h)
                return Message(abi.ERROR, e.code, 0)
            return Message(abi.COMM_HANDLE, Handle(theirs), cid)
        if tag == abi.CHAR and not msg.is_long:
            if isinstance(msg.d2, int):
                await self.typed(msg.d2)
            return Message(abi.OK, 0, 0) if msg.reply else None
        if tag == abi.COMM_HANDLE and isinstance(msg.d2, Handle):
            # init's key input: where the console-switching keys go (see typed()).
            if self.upstream is not None:
                await sys.close(self.upstream)
            self.upstream = msg.d2.number
            return Message(abi.OK, 0, 0) if msg.reply else None
        if tag == abi.WRITE and not msg.is_long:
            cid = msg.d2
            ok = isinstance(cid, int) and 0 <= cid < len(self.consoles)
            if ok:
                await self.activate(cid)
            await self.release_held()  # init has decided where a forwarded F-key switched to
            return Message(abi.OK if ok else abi.ERROR, 0 if ok else abi.PARAM, 0)
        if tag == abi.SCROLL and not msg.is_long:
            return await self.scroll(msg.d2, msg.d3)
        await discard(sys, msg)
        if tag == abi.QUERY and msg.reply:
            return await self.json_reply({"consoles": len(self.consoles), "active": self.active})
        return Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0)

    async def typed(self, code: int) -> None:
        """A key, straight from the keyboard driver (or from init): the console on screen's
        tty gets it. Shift+PgUp/PgDn scroll here; an F-key that switches consoles goes to init
        (it creates consoles and starts their logins), and the keys typed after it wait until
        init has switched, so they land where the typist meant."""
        if self.held is not None:
            self.held.append(code)
            return
        cid = self.active
        if code in SWITCH_KEYS and self.upstream is not None:
            self.held = []
            try:
                await self.proc.spawn_thread(self.forward, code)
            except SyscallError:
                self.held = None
            return
        if cid is None:
            return
        con = self.consoles[cid]
        if code in (KEY_SHIFT_PGUP, KEY_SHIFT_PGDN):
            con.scroll(SCROLL_LINES if code == KEY_SHIFT_PGUP else -SCROLL_LINES)
            await self.refresh(cid)
            return
        if con.offset:
            con.scroll_to_bottom()  # typing returns to the bottom, as on Linux
            await self.refresh(cid)
        await self.ttys.key(cid, code)

    async def forward(self, code: int) -> None:
        """A thread: a console-switching key to init (it answers with WRITE, activate)."""
        assert self.upstream is not None
        try:
            await self.sys.send(self.upstream, Message(abi.CHAR, code, 0))
        except SyscallError:
            await self.release_held()  # init is not listening: nobody will switch

    async def release_held(self) -> None:
        held, self.held = self.held, None
        for code in held or ():
            await self.typed(code)

    async def scroll(self, cid: object, delta: object) -> Message:
        """SCROLL: move console `cid`'s view `delta` rows back (0: to the bottom)."""
        if not (isinstance(cid, int) and 0 <= cid < len(self.consoles) and isinstance(delta, int)):
            return Message(abi.ERROR, abi.PARAM, 0)
        if delta >= WORD >> 1:
            delta -= WORD  # a two's complement word: backwards
        con = self.consoles[cid]
        if delta:
            con.scroll(delta)
        else:
            con.scroll_to_bottom()
        await self.refresh(cid)
        return Message(abi.OK, con.offset, 0)

    async def serve_writer(self, cid: int, handle: int) -> None:
        """One console's writer: render what its programs send, until every program holding
        this console has gone (or one sends CLOSE)."""

        async def request(msg: Message) -> Message | Last | None:
            return await self.writer_request(cid, msg)

        await serve(self.sys, handle, request, on_error=OnError.RAISE)
        await self.sys.close(handle)

    async def writer_request(self, cid: int, msg: Message) -> Message | Last | None:
        """The reply to a request on console `cid`'s writer handle."""
        sys = self.sys
        con = self.consoles[cid]
        tag = msg.tag
        if tag == abi.WRITE and isinstance(msg.d3, Memory) and isinstance(msg.d2, int):
            try:
                # Never trust the length: reading past the chunk would kill the driver.
                chunk = await Chunk.received(sys, msg.d3)
                n = max(0, min(msg.d2, chunk.size, MAX_WRITE))
                data = chunk.read(0, n) if n else b""
            finally:
                await sys.free(msg.d3.vaddr)
            con.write(data)
            await self.refresh(cid)
            return Message(abi.OK, n, 0)
        if tag == abi.CHAR and not msg.is_long:
            try:
                con.write(code_to_bytes(msg.d2))
            except ValueError:
                pass  # not a key code: nothing to show
            await self.refresh(cid)
            return Message(abi.OK, 0, 0)
        answer = await self.ttys.request(cid, msg)  # FOREGROUND, BACKGROUND
        if answer is not None:
            return answer
        await discard(sys, msg)
        if tag == abi.QUERY and msg.reply:
            return await self.json_reply({
                "id": cid, "active": cid == self.active, "rows": ROWS, "cols": COLS,
                "cursor": [con.cursor_row, con.cursor_col], "cursor_visible": con.cursor_visible,
                "wrap_pending": con.wrap_pending, "scrollback": len(con.history), "scrolled": con.offset,
                **self.ttys.status(cid),
            })
        if tag == abi.CLOSE_TAG:
            return Last(Message(abi.OK, 0, 0))
        return Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0)


    async def echo(self, cid: int, data: bytes) -> None:
        """What the line discipline echoes, shown as if a program had written it."""
        self.consoles[cid].write(data)
        await self.refresh(cid)


async def receive_video_memory(proc) -> tuple[Chunk, int] | None:
    """Wait for VIDEO_MEMORY on handle 0: (the chunk, the length it claims). Anything else that
    arrives first is refused (ERROR to a waiting sender) rather than taken for a screen."""
    sys = proc.sys
    requests = Requests(sys, STDIN, on_error=OnError.RAISE)
    async for msg in requests:
        if msg.tag == abi.VIDEO_MEMORY and isinstance(msg.d3, Memory) and isinstance(msg.d2, int):
            if msg.d2 >= SIZE:
                await requests.reply(msg, Message(abi.OK, 0, 0))
                return await Chunk.received(sys, msg.d3), msg.d2
            await sys.debug_write(f"[console] VIDEO_MEMORY of {msg.d2} bytes is too small for 80x25 text")
        await discard(sys, msg)
        await requests.reply(msg, Message(abi.ERROR, abi.PARAM, 0))
    return None


async def main(proc) -> int:
    video = await receive_video_memory(proc)
    if video is None:
        return 1
    chunk, length = video
    phys = chunk.phys
    if phys and phys <= abi.VGA_TEXT < phys + chunk.size:
        offset = abi.VGA_TEXT - phys
    else:
        offset = SEED_TEXT_OFFSET if length >= SEED_VIDEO_SIZE else 0
    if offset + SIZE > chunk.size:
        await proc.sys.debug_write(f"[console] video memory chunk of {chunk.size} bytes does not hold text memory")
        return 1
    screen = Screen(proc, chunk, offset)
    await screen.set_cursor(0, False)  # no console yet: no cursor
    await proc.sys.debug_write(f"[console] VGA text memory mapped ({length} bytes); serving consoles")
    return await Driver(proc, screen).serve_main()
