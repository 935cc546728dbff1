"""A tiny Gopher server (RFC 1436) for the host, to browse from inside EuraliOS.

    python examples/gopher_server.py [--port 7070] [--host NAME] [DIR]

Without DIR it serves a small demo: an information line, a text document, a submenu, a search
and a binary file (one of each kind of item the browser knows). With DIR it serves that
directory instead: directories as menus, files as they are, file-name search, nothing outside DIR.

Then, inside EuraliOS (booted with the default user network):

    $ gopher 10.0.2.2 7070

10.0.2.2 is the host as the guest's user network sees it (as with QEMU), and the default --host:
it is the name the menus give for this server, so the links in them must be reachable by the
browser. For a browser on the host itself (`curl gopher://localhost:7070/`, lynx), pass
--host localhost.

Only the Python standard library is used (asyncio), so this file is also a short, complete
example of the protocol: read one line (the selector, TAB and a query for searches), answer,
close the connection.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from pathlib import Path

ABOUT = """\
About Gopher
============

Gopher (RFC 1436, 1993) is a way to publish documents in menus. A client
connects to port 70, sends a selector (a path) and a line end, and reads
the answer until the server closes the connection. A menu is a list of
lines: item type, display text, selector, host and port, separated by tabs.

Types: 0 text, 1 menu, 7 search, 9 binary, i information, 3 error.
"""

POEM = """\
A gopher hole, dug deep and wide,
with menus stacked on every side:
press Enter here, go back with Left,
no scripts, no ads, just text and heft.
"""

BLOB = bytes(range(256))


class Server:
    def __init__(self, host: str, port: int, root: Path | None) -> None:
        self.host = host
        self.port = port
        self.root = root.resolve() if root is not None else None

    # ------------------------------------------------------------------ helpers
    def item(self, kind: str, display: str, selector: str) -> str:
        return f"{kind}{display}\t{selector}\t{self.host}\t{self.port}\r\n"

    @staticmethod
    def info(text: str) -> str:
        return f"i{text}\tfake\terror.host\t1\r\n"

    @staticmethod
    def menu(lines: list[str]) -> bytes:
        return ("".join(lines) + ".\r\n").encode()

    @staticmethod
    def error(text: str) -> bytes:
        return f"3{text}\t\terror.host\t1\r\n.\r\n".encode()

    @staticmethod
    def text(data: bytes) -> bytes:
        """Files go raw, unless the last line is a lone "." (which would read as the end of the
        document): then lines starting with "." are doubled and the "." line added (RFC 1436)."""
        if data in (b".\n", b".\r\n") or data.endswith((b"\n.\n", b"\n.\r\n")):
            return re.sub(rb"(^|\n)\.", rb"\1..", data) + b".\r\n"
        return data

    # ------------------------------------------------------------------ the demo
    def demo(self, selector: str, query: str | None) -> bytes:
        if selector in ("", "/"):
            return self.menu([
                self.info("Welcome to the EuraliOS-py demo gopher server."),
                self.info("(examples/gopher_server.py, running on the host)"),
                self.info(""),
                self.item("0", "About Gopher", "/about.txt"),
                self.item("1", "More things (a submenu)", "/more"),
                self.item("7", "Search this server", "/search"),
                self.item("9", "A small binary file (256 bytes)", "/blob.bin"),
            ])
        if selector == "/about.txt":
            return self.text(ABOUT.encode())
        if selector == "/more":
            return self.menu([
                self.info("A submenu. Backspace goes back."),
                self.item("0", "A poem", "/more/poem.txt"),
                self.item("1", "The top menu", "/"),
            ])
        if selector == "/more/poem.txt":
            return self.text(POEM.encode())
        if selector == "/blob.bin":
            return BLOB
        if selector == "/search":
            words = (query or "").casefold().split()
            docs = {"/about.txt": ("About Gopher", ABOUT), "/more/poem.txt": ("A poem", POEM)}
            hits = [self.item("0", title, sel) for sel, (title, body) in docs.items()
                    if words and all(w in body.casefold() for w in words)]
            head = self.info(f"{len(hits)} document(s) contain {query!r}")
            return self.menu([head, *hits])
        return self.error(f"Not found: {selector}")

    # ------------------------------------------------------------------ a directory
    def directory(self, selector: str, query: str | None) -> bytes:
        assert self.root is not None
        parts = [p for p in selector.split("/") if p not in ("", ".")]
        if ".." in parts:
            return self.error("Not allowed")
        path = self.root.joinpath(*parts)
        if not path.resolve().is_relative_to(self.root):  # a symbolic link pointing out
            return self.error("Not allowed")
        if path.is_file():
            data = path.read_bytes()
            return self.text(data) if path.suffix in (".txt", ".md", ".py", "") else data
        if not path.is_dir():
            return self.error(f"Not found: {selector}")

        def entry(p: Path) -> str:
            sel = "/" + p.relative_to(self.root).as_posix()
            name = p.relative_to(path).as_posix()
            if p.is_dir():
                return self.item("1", name + "/", sel)
            return self.item("0" if p.suffix in (".txt", ".md", ".py", "") else "9", name, sel)

        if query is not None:
            words = query.casefold().split()
            found = [p for p in sorted(path.rglob("*")) if words and all(w in p.name.casefold() for w in words)]
            return self.menu([self.info(f"{len(found)} name(s) match {query!r}"), *map(entry, found[:200])])
        lines = [self.item("7", "Search file names", selector or "/")] if not parts else []
        children = sorted(path.iterdir(), key=lambda p: (not p.is_dir(), p.name))
        lines += [entry(p) for p in children if not p.name.startswith(".")]
        return self.menu(lines)

    # ------------------------------------------------------------------ connections
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 30)
            text = line.rstrip(b"\r\n").decode("utf-8", "replace")
            selector, tab, rest = text.partition("\t")
            query = rest.split("\t")[0] if tab else None
            answer = self.directory(selector, query) if self.root else self.demo(selector, query)
            writer.write(answer)
            await writer.drain()
            print(f"[gopher_server] {selector!r}" + (f" search {query!r}" if query is not None else "")
                  + f" -> {len(answer)} bytes", flush=True)
        except (TimeoutError, OSError, ValueError) as e:
            print(f"[gopher_server] connection dropped: {e!r}", flush=True)
        finally:
            writer.close()

    async def serve(self) -> None:
        server = await asyncio.start_server(self.handle, "0.0.0.0", self.port)
        what = self.root or "the demo menu"
        print(f"[gopher_server] serving {what} on port {self.port}; menus name this host {self.host}", flush=True)
        async with server:
            await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description="A tiny Gopher server to browse from EuraliOS.")
    ap.add_argument("--port", type=int, default=7070)
    ap.add_argument("--host", default="10.0.2.2", help="the name menus give for this server")
    ap.add_argument("dir", nargs="?", type=Path, help="serve this directory instead of the demo")
    args = ap.parse_args()
    try:
        asyncio.run(Server(args.host, args.port, args.dir).serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
