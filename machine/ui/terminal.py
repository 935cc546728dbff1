"""The terminal front-end: the VGA text screen in a prompt_toolkit full-screen application.

The emulated PC's monitor and keyboard in a host terminal, as QEMU's curses display is:

* the 80x25 cells of VGA text memory are drawn with the 16 CGA colours, the hardware cursor is
  the terminal's cursor (hidden when the CRTC disables it);
* the screen is redrawn only when VgaText reports a change (text memory or cursor registers),
  never on a timer; terminal resizes come from SIGWINCH (prompt_toolkit's size polling is off);
* every key press becomes a physical key press on the PS/2 controller (letters, digits,
  punctuation, Enter, Backspace, Tab, Escape, F1-F12, arrows, Home/End, PgUp/PgDn, Insert/Delete,
  with Ctrl/Alt/Shift); Alt arrives from terminals as an ESC prefix; Shift+PgUp/PgDn (the
  guest console's scrollback) arrive as prompt_toolkit's s-pageup/s-pagedown, when the host
  terminal passes them on rather than scrolling its own window;
* a status line at the bottom (supplied by the caller) and the "Ctrl-] quits" hint; Ctrl-]
  quits, as in telnet, once nothing follows it for a second (or a key other than c does); when
  the guest stops on its own the UI closes too, and the terminal is restored either way;
* Ctrl-] then c (QEMU's -nographic has Ctrl-a c) toggles between the screen and the monitor, when
  the caller gives one (`monitor`: a command line in, its output out): a "(qemu) " prompt under
  the latest output; Ctrl-] c again returns to the screen;
* `set_machine` shows another machine (a reset boots a fresh one).

The emulator runs on trio, prompt_toolkit on asyncio: trio runs in *guest mode* on
prompt_toolkit's asyncio loop (trio.lowlevel.start_guest_run), so both share the main thread
and there is no polling between them. This module knows only the machine (VGA, PS/2); what the
OS does with keys is the caller's business (`guest`, `on_key`, `status`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import outcome
import trio
from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.data_structures import Point
from prompt_toolkit.filters import Condition
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.keys import Keys
from prompt_toolkit.layout import ConditionalContainer, HSplit, Layout, Window
from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl, UIContent, UIControl
from prompt_toolkit.styles import Style

from machine.ps2 import resolve
from machine.ui.headless import KeyPress
from machine.vga import CGA_PALETTE, COLS, ROWS, decode_cp437

QUIT_KEY = "c-]"
HINT = "Ctrl-] quits "
PREFIX_WAIT = 1.0  # seconds Ctrl-] waits for a c (monitor) before it quits
MONITOR_PROMPT = "(qemu) "
MONITOR_LINES = 2000  # output lines the monitor view keeps

#: prompt_toolkit style for each VGA attribute byte (background << 4 | foreground).
ATTR_STYLES: tuple[str, ...] = tuple(f"fg:{CGA_PALETTE[a & 15]} bg:{CGA_PALETTE[a >> 4]}" for a in range(256))

_SPECIAL = {
    "escape": "Escape", "tab": "Tab", "up": "Up", "down": "Down", "left": "Left", "right": "Right",
    "home": "Home", "end": "End", "pageup": "PageUp", "pagedown": "PageDown",
    "insert": "Insert", "delete": "Delete",
    **{f"f{i}": f"F{i}" for i in range(1, 13)},
    # Many terminals send Shift+F1..F12 as F13..F24.
    **{f"f{i + 12}": f"S-F{i}" for i in range(1, 13)},
}  # fmt: skip
_ALIASES: dict[str, KeyPress] = {
    "c-m": KeyPress("Enter"), "c-j": KeyPress("Enter"), "c-i": KeyPress("Tab"),
    "c-h": KeyPress("Backspace"),  # terminals send DEL (0x7f) or ^H for Backspace
    "s-tab": KeyPress("Tab", shift=True), "c-@": KeyPress(" ", ctrl=True), "s-escape": KeyPress("Escape", shift=True),
}  # fmt: skip


def to_keypress(key: str, data: str = "", alt: bool = False) -> KeyPress | None:
    """A prompt_toolkit key (a Keys value such as "c-a", "s-up", "f5", or a character) -> the
    physical key press a PC keyboard would make, or None for keys it has no equivalent of."""
    k = key.value if isinstance(key, Keys) else str(key)
    alias = _ALIASES.get(k)
    if alias is not None:
        return KeyPress(alias.name, alias.shift, alias.ctrl, alt)
    if len(k) == 1:
        try:
            resolve(k)
        except ValueError:
            return None  # not on a US keyboard (é, £ ...): nothing to press
        return KeyPress(k, alt=alt)
    ctrl = shift = False
    if k.startswith("c-"):
        ctrl, k = True, k[2:]
    if k.startswith("s-"):
        shift, k = True, k[2:]
    name = _SPECIAL.get(k)
    if name is not None:
        if name.startswith("S-"):
            name, shift = name[2:], True
        return KeyPress(name, shift, ctrl, alt)
    if ctrl and len(k) == 1:  # c-\ c-] c-^ c-_ c-1 ...
        try:
            resolve(k)
        except ValueError:
            return None
        return KeyPress(k, shift, True, alt)
    return None


class VgaControl(UIControl):
    """Draws VGA text memory; reports the hardware cursor as the terminal cursor."""

    def __init__(self, vga: Any) -> None:
        self.vga = vga

    def is_focusable(self) -> bool:
        return True  # the focused control's cursor is the one the terminal shows

    def create_content(self, width: int, height: int) -> UIContent:
        raw = self.vga.raw()
        chars = decode_cp437(raw[0::2])
        attrs = raw[1::2]
        lines: list[list[tuple[str, str]]] = []
        for r in range(ROWS):
            start = r * COLS
            frags: list[tuple[str, str]] = []
            run, attr = start, attrs[start]
            for i in range(start + 1, start + COLS):
                if attrs[i] != attr:
                    frags.append((ATTR_STYLES[attr], chars[run:i]))
                    run, attr = i, attrs[i]
            frags.append((ATTR_STYLES[attr], chars[run : start + COLS]))
            lines.append(frags)
        row, col = self.vga.cursor
        visible = self.vga.cursor_visible
        return UIContent(
            get_line=lines.__getitem__,
            line_count=ROWS,
            cursor_position=Point(x=col, y=row) if visible else Point(x=0, y=0),
            show_cursor=visible,
        )


class TerminalUI:
    """The prompt_toolkit application around one machine's screen and keyboard."""

    def __init__(
        self,
        machine: Any,
        on_key: Callable[[KeyPress], None] | None = None,
        status: Callable[[], str] | None = None,
        monitor: Callable[[str], str] | None = None,
    ) -> None:
        self.machine = machine
        self.on_key = on_key or self._press
        self.status = status or (lambda: " EuraliOS")
        self.monitor = monitor
        self.monitor_mode = False
        self.monitor_output: list[str] = []
        self._armed: Any = None  # the pending quit after Ctrl-] (an asyncio TimerHandle)
        self.keys_sent = 0
        self.vga_control = VgaControl(machine.vga)
        self.screen = Window(self.vga_control, width=COLS, height=ROWS, dont_extend_width=True,
                             dont_extend_height=True, always_hide_cursor=False)
        self.monitor_input = Buffer(multiline=False, accept_handler=self._accept)
        self.monitor_line = Window(BufferControl(self.monitor_input), height=1,
                                   get_line_prefix=lambda *_: MONITOR_PROMPT)
        output = Window(FormattedTextControl(self._monitor_text), height=ROWS - 1, wrap_lines=True)
        in_monitor = Condition(lambda: self.monitor_mode)
        bar = Window(FormattedTextControl(self._status_line), height=1, style="class:status")
        self.app: Application[None] = Application(
            layout=Layout(HSplit([ConditionalContainer(self.screen, filter=~in_monitor),
                                  ConditionalContainer(HSplit([output, self.monitor_line]), filter=in_monitor),
                                  bar, Window()]), focused_element=self.screen),
            key_bindings=self._bindings(),
            style=Style.from_dict({"status": "reverse"}),
            full_screen=True,
            mouse_support=False,
            terminal_size_polling_interval=None,  # SIGWINCH tells us; no polling
        )
        self.app.timeoutlen = 0.1  # how long a lone Esc waits to see if it is Alt+key
        self.app.ttimeoutlen = 0.05
        self._unwatch = machine.vga.on_change(self.app.invalidate)

    def set_machine(self, machine: Any) -> None:
        """Show (and type into) another machine from now on: a reset booted a fresh one."""
        self._unwatch()
        self.machine = machine
        self.vga_control.vga = machine.vga
        self._unwatch = machine.vga.on_change(self.app.invalidate)
        self.app.invalidate()

    # ------------------------------------------------------------------ the monitor
    def _monitor_text(self) -> str:
        return "\n".join(self.monitor_output[-(ROWS - 1):])

    def _accept(self, buffer: Buffer) -> bool:
        line = buffer.text
        self.monitor_output.append(MONITOR_PROMPT + line)
        if self.monitor is not None:
            out = self.monitor(line)
            self.monitor_output.extend(out.rstrip("\n").split("\n") if out else [])
        del self.monitor_output[:-MONITOR_LINES]
        return False  # clear the line

    def toggle_monitor(self) -> None:
        """Between the screen and the monitor (nothing without a monitor)."""
        if self.monitor is None:
            return
        self.monitor_mode = not self.monitor_mode
        if self.monitor_mode and not self.monitor_output:
            self.monitor_output.append("EuraliOS monitor - type 'help' for more information")
        self.app.layout.focus(self.monitor_line if self.monitor_mode else self.screen)
        self.app.invalidate()

    def close(self) -> None:
        self._unwatch()

    def _press(self, key: KeyPress) -> None:
        self.machine.keyboard.key(key.name, shift=key.shift, ctrl=key.ctrl, alt=key.alt)

    def _status_line(self) -> list[tuple[str, str]]:
        width = self.app.output.get_size().columns if self.app.is_running else COLS
        left = self.status()
        if self.monitor_mode:
            left = " monitor (Ctrl-] c: back to the screen)"
        pad = max(1, width - len(left) - len(HINT))  # the bar spans the terminal's width
        return [("class:status", f"{left}{' ' * pad}{HINT}")]

    def send(self, key: KeyPress | None) -> None:
        if key is not None:
            self.keys_sent += 1
            self.on_key(key)

    def _disarm(self) -> bool:
        """Whether Ctrl-] was pending (and is no longer)."""
        armed, self._armed = self._armed, None
        if armed is not None:
            armed.cancel()
        return armed is not None

    def _bindings(self) -> KeyBindings:
        kb = KeyBindings()
        screen = Condition(lambda: not self.monitor_mode)
        armed = Condition(lambda: self._armed is not None)

        @kb.add(QUIT_KEY, eager=True)
        def _prefix(event: KeyPressEvent) -> None:
            if self._disarm():  # Ctrl-] twice: quit now
                event.app.exit()
                return
            if self.monitor is None:
                event.app.exit()
                return
            self._armed = asyncio.get_running_loop().call_later(PREFIX_WAIT, event.app.exit)

        @kb.add("c", filter=armed, eager=True)
        def _toggle(event: KeyPressEvent) -> None:
            self._disarm()
            self.toggle_monitor()

        @kb.add(Keys.BracketedPaste, filter=screen)
        def _paste(event: KeyPressEvent) -> None:
            if self._disarm():
                event.app.exit()
                return
            for ch in event.data.replace("\r\n", "\n"):
                self.send(to_keypress({"\n": "c-m", "\r": "c-m", "\t": "c-i"}.get(ch, ch)))

        @kb.add(Keys.Any, filter=screen)
        def _key(event: KeyPressEvent) -> None:
            if self._disarm():
                event.app.exit()
                return
            for kp in event.key_sequence:
                self.send(to_keypress(kp.key, kp.data))

        @kb.add("escape", Keys.Any, filter=screen)
        def _alt(event: KeyPressEvent) -> None:
            if self._disarm():
                event.app.exit()
                return
            second = event.key_sequence[-1]
            if second.key == Keys.Escape:
                self.send(KeyPress("Escape"))
                self.send(KeyPress("Escape"))
            else:
                self.send(to_keypress(second.key, second.data, alt=True))

        return kb


def run_terminal(
    machine: Any,
    guest: Callable[[], Awaitable[str | None]],
    *,
    on_key: Callable[[KeyPress], None] | None = None,
    status: Callable[[], str] | None = None,
    monitor: Callable[[str], str] | None = None,
    on_ui: Callable[[TerminalUI], None] | None = None,
) -> str | None:
    """Show `machine` in the terminal while trio runs `guest()` (which boots and runs the OS).
    `monitor` is offered on Ctrl-] c; `on_ui` is handed the TerminalUI (to call set_machine).

    Returns what `guest()` returned if it ended on its own (the reason the system stopped), or
    None when the user quit with Ctrl-]. Exceptions from the guest are re-raised after the
    terminal is restored."""
    return asyncio.run(_run(machine, guest, on_key, status, monitor, on_ui))


async def _run(
    machine: Any,
    guest: Callable[[], Awaitable[str | None]],
    on_key: Callable[[KeyPress], None] | None,
    status: Callable[[], str] | None,
    monitor: Callable[[str], str] | None = None,
    on_ui: Callable[[TerminalUI], None] | None = None,
) -> str | None:
    loop = asyncio.get_running_loop()
    ui = TerminalUI(machine, on_key, status, monitor)
    if on_ui is not None:
        on_ui(ui)
    app = ui.app
    done: asyncio.Future[outcome.Outcome] = loop.create_future()
    started: dict[str, Any] = {}

    async def trio_main() -> str | None:
        with trio.CancelScope() as scope:
            started["scope"] = scope
            started["token"] = trio.lowlevel.current_trio_token()
            return await guest()
        return None  # cancelled: the user quit

    def trio_done(result: outcome.Outcome) -> None:
        if not done.done():
            done.set_result(result)
        if app.is_running and not app.future.done():  # type: ignore[union-attr]
            app.exit()

    def stop_if_finished() -> None:
        if done.done():  # the guest ended before the UI even started
            loop.call_soon(app.exit)

    trio.lowlevel.start_guest_run(
        trio_main,
        run_sync_soon_threadsafe=loop.call_soon_threadsafe,
        run_sync_soon_not_threadsafe=loop.call_soon,
        done_callback=trio_done,
        host_uses_signal_set_wakeup_fd=True,  # asyncio owns the wakeup fd (SIGWINCH -> resize)
    )
    try:
        await app.run_async(pre_run=stop_if_finished)
    finally:
        ui.close()
        while not done.done():
            if "token" in started:
                started["token"].run_sync_soon(started["scope"].cancel)
                break
            await asyncio.sleep(0)
        result = await done
    return result.unwrap()
