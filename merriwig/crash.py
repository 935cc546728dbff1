"""What a program that died is told, on its own console: why, and where in its own source.

A crash report is a Python traceback cut down to the program's frames (the loader compiles an
image as `<NAME>`; frames of the libraries it called are left out, unless the error rose in one
of them and none of the program's own is there), each with the line of source from the image
itself, since no file on the host holds it. The same text serves the in-process loader and the
confined worker's runtime; the kernel keeps the first line as the kill reason (one line in the
kernel log) and writes the whole report to the program's stdout (merriwig/kernel.py, reap).
"""

from __future__ import annotations

import traceback

MAX_FRAMES = 12
MAX_REPORT = 4000


def crash_report(exc: BaseException, name: str, source: bytes | None) -> str:
    """`Traceback (most recent call last):` ... `ValueError: message`, for a program `name`."""
    lines = (source or b"").decode("utf-8", "replace").splitlines()
    own = f"<{name}>"
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if f.filename == own]
    shown = mine[-MAX_FRAMES:] if mine else frames[-1:]
    out = ["Traceback (most recent call last):"]
    for f in shown:
        out.append(f'  File "{name}", line {f.lineno}, in {f.name}' if f.filename == own
                   else f'  File "{f.filename}", line {f.lineno}, in {f.name}')
        text = lines[f.lineno - 1].strip() if f.filename == own and f.lineno and 0 < f.lineno <= len(lines) else f.line
        if text:
            out.append(f"    {text}")
    out.append(reason(exc))
    report = "\n".join(out)
    return report if len(report) <= MAX_REPORT else report[:MAX_REPORT] + "..."


def reason(exc: BaseException) -> str:
    """The one line: `ZeroDivisionError: division by zero` (the name alone when no message)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
