"""The Linux end of bench_tcp's transfers, in a process of its own.

bench_tcp starts it with the listening socket's descriptor (``python -m bench.tcp_peer FD TOTAL
CHUNK``). Per connection the first byte says what the guest does: ``U`` it uploads (this end
times the bytes from the first to the end of the stream and prints the MB/s on a line of its
own), ``D`` it downloads (this end writes TOTAL bytes in CHUNK-byte writes and closes).

Why a process: a peer in the emulator's own process shares its one core and its event loop,
so its sends take CPU from the guest it measures (about 7 % of a virtio download: more of a
fast card's figure than of a slow one's) and its clock starts when the loop gets round to it,
not when the bytes arrive. Here it runs beside the emulator, as iperf beside QEMU.
Blocking sockets: one connection at a time is all the benchmark makes.
"""

from __future__ import annotations

import socket
import sys
import time


def serve(lsock: socket.socket, total: int, chunk: int) -> None:
    payload = bytes(range(256)) * (chunk // 256)
    while True:
        conn, _ = lsock.accept()
        with conn:
            mode = conn.recv(1)
            if mode == b"U":
                got, t0 = 0, 0.0
                while data := conn.recv(1 << 20):
                    if not got:
                        t0 = time.perf_counter()
                    got += len(data)
                if got:
                    print(got / (time.perf_counter() - t0) / 1e6, flush=True)
            elif mode == b"D":
                sent = 0
                while sent < total:
                    conn.sendall(payload)
                    sent += len(payload)


def main(argv: list[str]) -> int:
    try:
        fd, total, chunk = (int(a) for a in argv)
    except ValueError:
        print("usage: python -m bench.tcp_peer FD TOTAL CHUNK", file=sys.stderr)
        return 2
    lsock = socket.socket(fileno=fd)
    lsock.setblocking(True)
    try:
        serve(lsock, total, chunk)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
