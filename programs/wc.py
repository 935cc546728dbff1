"""wc: count the lines, words and bytes of the input (or of files), as Unix's wc.

    wc [-l] [-w] [-c] [FILE...]

With no FILE it counts its input: the pipe in front (`ls /bin | wc -l`). With several files,
a total line follows.
"""

from __future__ import annotations

from euralios.std import SyscallError


def counts(data: bytes) -> tuple[int, int, int]:
    return data.count(b"\n"), len(data.split()), len(data)


async def main(proc) -> int:
    args = proc.args[1:]
    which = {a[1:] for a in args if a.startswith("-") and len(a) > 1}
    paths = [a for a in args if not (a.startswith("-") and len(a) > 1)]
    if any(set(w) - set("lwc") for w in which):
        await proc.print("Usage: wc [-l] [-w] [-c] [FILE...]")
        return 2
    chosen = set("".join(which)) or set("lwc")

    def row(c: tuple[int, int, int], name: str) -> str:
        cols = [f"{n:>7}" for n, k in zip(c, "lwc", strict=True) if k in chosen]
        return " ".join(cols) + (f" {name}" if name else "")

    status = 0
    if not paths:
        text = []
        while line := await proc.read_line(echo=False):
            text.append(line)
        await proc.print(row(counts("".join(text).encode()), ""))
        return 0
    total = [0, 0, 0]
    for path in paths:
        try:
            c = counts(await proc.read_file(path))
        except SyscallError as e:
            await proc.print(f"wc: {path}: {e}")
            status = 1
            continue
        total = [a + b for a, b in zip(total, c, strict=True)]
        await proc.print(row(c, path))
    if len(paths) > 1:
        await proc.print(row((total[0], total[1], total[2]), "total"))
    return status
