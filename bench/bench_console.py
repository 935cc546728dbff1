"""Console benchmarks on a fully booted system: keystroke latency, scrolling speed, idle CPU.

* console.keystroke_latency: a host key event (a PS/2 press) until VGA text memory shows the
  echoed character — through the keyboard driver, init, the echo program's read_line and the
  console driver. Median of 200 keys, against trio_event_roundtrip (two trio tasks waking each
  other once: the cheapest possible "something reacted" in this process).
  The echo program reads with read_line, so the console (a tty, drivers/tty.py) echoes.
* console.shell_keystroke_latency: the same at root's shell prompt, whose line editor reads key
  by key (READ_KEY) in a confined worker and echoes itself: the path a raw-mode program takes.
* console.scroll_fps: screens of scrolling text per second that a program writing 25 full lines
  per WRITE gets into VGA memory, against rendering the same text with the sans-IO TextConsole
  plus one 4000-byte copy (what the driver would cost with no IPC, syscalls or memory mapping).
* system.idle_cpu_5s: percent of one core the idle booted system uses over 5 s, against the bare
  machine (its timer ticking, no kernel); target < 1 %.

Run: ``.venv/bin/python -m bench.bench_console``
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import trio

from bench.common import record
from drivers.vt import TextConsole
from euralios.std import Handle, abi
from euralios.system_boot import FullSystem, boot_full
from machine.board import Machine

KEYS = 200
SCREENS = 200
LINE = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!@#$%^&*()-=+[]{};"[:79]
IDLE_SECONDS = 5.0


async def trio_event_roundtrip(n: int = KEYS) -> float:
    """Median microseconds for task A to wake task B and B to wake A back."""
    times: list[float] = []
    ping, pong = trio.Event(), trio.Event()

    async def responder() -> None:
        nonlocal ping, pong
        for _ in range(n):
            await ping.wait()
            ping = trio.Event()
            pong.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(responder)
        await trio.sleep(0)
        for _ in range(n):
            t0 = time.perf_counter()
            ping.set()
            await pong.wait()
            times.append(time.perf_counter() - t0)
            pong = trio.Event()
    return statistics.median(times) * 1e6


async def keystroke_latency(system: FullSystem, n: int = KEYS) -> float:
    """Median microseconds from a key press to the echo landing in VGA memory."""
    vga = system.machine.vga
    kbd = system.machine.keyboard
    state: dict[str, Any] = {"t": 0.0, "event": trio.Event()}

    def on_change() -> None:
        if not state["t"]:
            state["t"] = time.perf_counter()
            state["event"].set()

    remove = vga.on_change(on_change)
    times: list[float] = []
    try:
        row, col = vga.cursor
        for i in range(n):
            key, want = ("a", col + 1) if i % 2 == 0 else ("Backspace", col)
            await system.settle(0.002, 1.0)
            state["t"], state["event"] = 0.0, trio.Event()
            t0 = time.perf_counter()
            kbd.key(key)
            with trio.fail_after(5):
                await state["event"].wait()
            times.append(state["t"] - t0)
            with trio.fail_after(5):
                while vga.cursor != (row, want):  # wait for the whole echo (cursor last)
                    await system.settle(0.001, 0.05)
    finally:
        remove()
    return statistics.median(times) * 1e6


async def scroll_fps(system: FullSystem, screens: int = SCREENS) -> float:
    """Screens of scrolling text per second through a console writer into VGA memory."""
    texts = [screen_text(i) for i in range(screens + 1)]
    result: dict[str, float] = {}

    async def scroller(proc: Any) -> int:
        reply = await proc.sys.rcall(1, abi.OPEN_READWRITE)
        assert isinstance(reply.d2, Handle)
        writer = reply.d2.number
        await proc.sys.rcall(1, abi.WRITE, reply.d3, 0)  # show it
        await proc.write(texts[-1], writer)  # warm up
        t0 = time.perf_counter()
        for text in texts[:screens]:
            await proc.write(text, writer)
        result["elapsed"] = time.perf_counter() - t0
        return 0

    writes0 = system.machine.vga.version
    status = await system.run(scroller, stdout=system.console_driver_handle())
    assert status == 0, system.klog()
    assert system.machine.vga.version - writes0 >= screens, "the screen was not updated per write"
    return screens / result["elapsed"]


def screen_text(i: int) -> str:
    """25 full lines, different on every screen (identical screens would cost no VGA write)."""
    return "".join(f"{i:05} {j:02} {LINE[:70]}\n" for j in range(25))


def sans_io_fps(screens: int = SCREENS) -> float:
    """The same text rendered by TextConsole and copied once per screen, in-process."""
    texts = [screen_text(i).encode() for i in range(screens)]
    con = TextConsole()
    video = bytearray(4000)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for text in texts:
            con.write(text)
            video[:] = con.cells
        best = min(best, time.perf_counter() - t0)
    return screens / best


async def idle_cpu(seconds: float) -> float:
    c0, w0 = time.process_time(), time.perf_counter()
    await trio.sleep(seconds)
    return 100 * (time.process_time() - c0) / (time.perf_counter() - w0)


async def machine_idle_cpu(seconds: float) -> float:
    """The bare machine with its timer programmed as the kernel does, and nothing else."""
    machine = Machine("64M")
    machine.irq.set_handler(lambda line: machine.irq.acknowledge(line))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(machine.run)
        for port, value in ((0x43, 0x34), (0x40, 0), (0x40, 0)):
            machine.ports.write(port, 1, value)
        pct = await idle_cpu(seconds)
        nursery.cancel_scope.cancel()
    return pct


async def main() -> None:
    baseline_us = await trio_event_roundtrip()
    async with boot_full(console_program="/bin/echo") as system:
        await system.wait_for_screen(r"^> ", 10)
        latency = await keystroke_latency(system)
        record("console.keystroke_latency", latency, "us", "trio_event_roundtrip", baseline_us,
               latency / baseline_us, "<= 12x (issue 15)", latency / baseline_us <= 12)
        fps = scroll_fps_value = await scroll_fps(system)
        base_fps = sans_io_fps()
        record("console.scroll_fps", scroll_fps_value, "screens/s", "textconsole_sans_io", base_fps,
               fps / base_fps, "")
        await system.type("{F2}")
        await system.settle(0.3, 3)
        pct = await idle_cpu(IDLE_SECONDS)
    async with boot_full() as system:
        await system.wait_for_screen(r"login: *$", 10)
        await system.type("root\n")
        await system.wait_for_screen(r"(?m)^[$#] *$", 10)
        shell_latency = await keystroke_latency(system, KEYS // 2)
        record("console.shell_keystroke_latency", shell_latency, "us", "trio_event_roundtrip", baseline_us,
               shell_latency / baseline_us, "")
    base_pct = await machine_idle_cpu(IDLE_SECONDS)
    record("system.idle_cpu_5s", pct, "%", "machine_timer_only", base_pct, pct / max(base_pct, 0.01),
           "< 1%", pct < 1.0)


if __name__ == "__main__":
    trio.run(main)
