"""echo: the placeholder user-console program until login and the shell arrive.

init runs one on each user console (F2-F5): stdout is the console's writer, stdin the
rendezvous init forwards that console's keys into. It prints a welcome and a `> ` prompt, reads
a line (typed characters are echoed as they come, Backspace erases), and prints the line back.
At end of input (init closed our stdin) it exits, and init starts a fresh one.
"""

from __future__ import annotations

WELCOME = (
    "\x1b[1;34mWelcome to EuraliOS!\x1b[0m\n"
    "\n"
    "  [F1] switches to the system console\n"
    "  [F2]..[F5] switch between user consoles\n"
    "\n"
    "This console runs \x1b[1mecho\x1b[0m: type a line and press Enter.\n"
)
PROMPT = "> "


async def main(proc) -> int:
    await proc.write(WELCOME)
    while True:
        await proc.write(PROMPT)
        line = await proc.read_line()
        if not line:
            return 0
        await proc.write(line if line.endswith("\n") else line + "\n")
