"""Front-ends for a full boot: the headless runner and the prompt_toolkit terminal UI.

`euralios --headless --type KEYS --expect REGEX ...` boots, performs the steps in order (typing
is queued at once; an expect waits, event-driven, until the screen matches), lets the screen
settle (nothing drawn for 0.15 s), prints the final 80x25 screen (trailing blanks removed) and
exits 0. A step that times out prints the screen, then
`euralios: timed out waiting for REGEX` on stderr, and exits 1. Bad input (an unknown key name,
a bad regex, an unsupported --net) is one line on stderr and exit status 2, before booting.

Without --headless the terminal UI (machine/ui/terminal.py) shows the VGA screen in the host
terminal and feeds it every key; Ctrl-] quits.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import deque
from typing import Any

import trio

NET_BACKENDS = ("user", "none")  # accepted now; the network itself arrives later


def _error(text: str) -> int:
    print(f"euralios: {text}", file=sys.stderr)
    return 2


def _check(opts: argparse.Namespace) -> str | None:
    """Everything that can be wrong with the options, found before booting."""
    from machine.ui.headless import KeySpecError, parse_keys

    if opts.net not in NET_BACKENDS:
        return f"--net {opts.net}: not available yet (use {' or '.join(NET_BACKENDS)})"
    for kind, arg in opts.steps:
        if kind == "type":
            try:
                parse_keys(arg, escapes=True)
            except KeySpecError as e:
                return f"--type {arg!r}: {e}"
        else:
            try:
                re.compile(arg, re.MULTILINE)
            except re.error as e:
                return f"--expect {arg!r}: bad regular expression: {e}"
    if opts.steps and not opts.headless:
        return "--type and --expect need --headless"
    if opts.timeout <= 0:
        return "--timeout must be positive"
    return None


def _boot_options(opts: argparse.Namespace) -> dict[str, Any]:
    return {"quota": opts.quota, "watchdog": opts.watchdog, "trace": opts.trace}


def main(opts: argparse.Namespace) -> int:
    problem = _check(opts)
    if problem is not None:
        return _error(problem)
    if opts.headless:
        return trio.run(_headless, opts)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return _error("the terminal UI needs a terminal (use --headless for scripts)")
    return _terminal(opts)


async def _headless(opts: argparse.Namespace) -> int:
    from euralios.system_boot import boot_full

    def on_klog(line: str) -> None:
        if opts.verbose or " killed: " in line:
            print(line, file=sys.stderr, flush=True)

    async with boot_full(opts.mem, on_klog=on_klog, **_boot_options(opts)) as system:
        for kind, arg in opts.steps:
            if kind == "type":
                await system.type(arg, escapes=True)
                continue
            try:
                await system.wait_for_screen(arg, opts.timeout)
            except trio.TooSlowError:
                _print_screen(system.screen.render())
                print(f"euralios: timed out waiting for {arg}", file=sys.stderr, flush=True)
                return 1
        # Let what the last steps started finish drawing (typed keys, the rest of a line).
        await system.settle(quiet=0.15, limit=min(opts.timeout, 2.0))
        _print_screen(system.screen.render())
    return 0


def _print_screen(text: str) -> None:
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `euralios --headless ... | head`: the reader has had enough
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _terminal(opts: argparse.Namespace) -> int:
    from euralios.system_boot import FullSystem, boot_full
    from machine.board import Machine
    from machine.ui.headless import KeyPress
    from machine.ui.terminal import run_terminal

    machine = Machine(opts.mem)
    holder: dict[str, FullSystem] = {}
    klog: deque[str] = deque(maxlen=2000)  # the UI owns the terminal: --verbose prints it afterwards

    async def guest() -> str:
        async with boot_full(machine=machine, on_klog=klog.append, **_boot_options(opts)) as system:
            holder["system"] = system
            assert system.init is not None
            with trio.CancelScope() as scope:
                async def halted() -> None:
                    await machine.halted.wait()
                    scope.cancel()

                system.nursery.start_soon(halted)
                await system.init.ended.wait()
                return f"init exited with status {system.init.status}"
            return "the machine halted"

    def on_key(key: KeyPress) -> None:
        system = holder.get("system")
        if system is not None:
            system.press([key])
        else:
            machine.keyboard.key(key.name, shift=key.shift, ctrl=key.ctrl, alt=key.alt)

    def status() -> str:
        system = holder.get("system")
        console = f"F{system.active_console}" if system is not None else "booting"
        return f" EuraliOS  console {console}  net {opts.net}  {opts.mem} RAM"

    reason = run_terminal(machine, guest, on_key=on_key, status=status)
    if opts.verbose:
        print("\n".join(klog), file=sys.stderr)
    if reason:  # the system stopped by itself, not by Ctrl-]
        print(f"euralios: {reason}", file=sys.stderr)
        return 1
    return 0
