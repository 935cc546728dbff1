"""grep: the lines of the input (or of files) that hold a pattern.

    grep [-i] [-v] [-c] [-n] [-F] PATTERN [FILE...]

PATTERN is a regular expression (Python's `re`), or with -F a plain string. -i ignores case,
-v keeps the lines that do not match, -c prints only how many lines matched, -n numbers them.
With no FILE it reads its input: the pipe in front (`ps | grep shell`). Exit status as grep's:
0 some line matched, 1 none did, 2 an error.
"""

from __future__ import annotations

import re

from euralios.std import SyscallError

USAGE = "Usage: grep [-i] [-v] [-c] [-n] [-F] PATTERN [FILE...]"


async def main(proc) -> int:
    args = proc.args[1:]
    flags: set[str] = set()
    while args and args[0].startswith("-") and len(args[0]) > 1:
        opt = args.pop(0)
        if opt == "--":
            break
        if set(opt[1:]) - set("ivcnF"):
            await proc.print(f"grep: unknown option {opt}\n{USAGE}")
            return 2
        flags |= set(opt[1:])
    if not args:
        await proc.print(USAGE)
        return 2
    pattern, paths = args[0], args[1:]
    try:
        rx = re.compile(re.escape(pattern) if "F" in flags else pattern, re.IGNORECASE if "i" in flags else 0)
    except re.error as e:
        await proc.print(f"grep: bad pattern {pattern!r}: {e}")
        return 2
    matched = 0
    status = 0

    async def filter_lines(lines, prefix: str) -> None:  # noqa: ANN001
        nonlocal matched
        number = 0
        async for line in lines:
            number += 1
            if bool(rx.search(line)) == ("v" in flags):
                continue
            matched += 1
            if "c" not in flags:
                await proc.write(prefix + (f"{number}:" if "n" in flags else "") + line + "\n")

    async def stdin_lines():  # noqa: ANN202
        while line := await proc.read_line(echo=False):
            yield line.rstrip("\n")

    async def file_lines(text: str):  # noqa: ANN202
        for line in text.splitlines():
            yield line

    if not paths:
        await filter_lines(stdin_lines(), "")
    for path in paths:
        try:
            text = (await proc.read_file(path)).decode("utf-8", "replace")
        except SyscallError as e:
            await proc.print(f"grep: {path}: {e}")
            status = 2
            continue
        await filter_lines(file_lines(text), f"{path}:" if len(paths) > 1 else "")
    if "c" in flags:
        await proc.print(matched)
    return status or (0 if matched else 1)
