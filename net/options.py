"""The /tcp server's command line (after the program name) and its environment.

    --static ADDR/PREFIX[,gw=IP][,dns=IP[+IP]][,mtu=N]   no DHCP
    --fallback ADDR/PREFIX[,...]                          use this when DHCP is silent
    --dhcp-timeout SECONDS                                before the fallback (default 10)
    --hostname NAME                                       sent in DHCP requests
    --rcvbuf BYTES                                        TCP receive buffer/window (default 61320, see RCVBUF)
    --sndbuf BYTES                                        TCP send buffer (default 131072, see SNDBUF)
    --rto-max SECONDS                                     cap on the backed-off retransmission timeout (default 60)
    --retries N                                           retransmissions before "timed out" (default 8)
    --seed N                                              reproducible ISNs, first ephemeral port, ids (tests)

The environment variables NET_STATIC and NET_FALLBACK stand for --static and --fallback (the
command line wins).
"""

from __future__ import annotations

from net.config import ConfigSource, IfConfig, parse_config

# The receive window we advertise. Every byte in flight to us sits in the card's receive ring
# until the driver drains it, and a card cannot push back: a window larger than the ring holds
# loses segments whenever the driver falls behind, and each loss costs the peer a fast
# retransmit or a timeout. drivers/rtl8139 gives the card a 64 KiB ring, which holds 43 full
# frames (1514 bytes + header + CRC, dword-aligned: 1524 bytes each), so 42 full segments
# always fit (measured: no overflow, 31-34 MB/s Linux->guest; with the old 8 KiB ring only
# four fitted and the window was 5840). Lower it with --rcvbuf for a driver started with a
# smaller --ring.
RCVBUF = 42 * 1460
# Beyond 65535 the window is advertised scaled (RFC 7323), for a card whose ring holds more
# (virtio-net's queues); a peer that does not scale still sees at most 65535.
RCVBUF_MAX = 16 << 20
# Bytes a connection buffers for sending (unacknowledged + not yet sent). Twice the largest
# window a peer can offer (no window scaling): a program's 64 KiB write is taken whole while the
# previous one is still in flight, instead of waiting for ACKs half-way (measured 27 -> 34 MB/s
# guest->Linux). It is a bytearray that grows only as far as it is used.
SNDBUF = 128 * 1024


class Options:
    def __init__(self) -> None:
        self.static: IfConfig | None = None
        self.fallback: IfConfig | None = None
        self.dhcp_timeout = 10.0
        self.hostname = "euralios"
        self.rcvbuf = RCVBUF
        self.sndbuf = SNDBUF
        self.rto_max = 60.0  # proto/tcp's defaults: about 100 s of retransmissions before TIMEDOUT
        self.retries = 8
        self.seed: int | None = None  # None: unpredictable (SystemRandom)

    def tcp_options(self) -> dict[str, float]:
        """The TcpConnection settings these options make."""
        return {"rcv_buf": self.rcvbuf, "snd_buf": self.sndbuf, "rto_max": self.rto_max,
                "max_retries": self.retries}


def parse_args(args: list[str], env: dict[str, str]) -> Options:
    """The command line (after the program name); ValueError with a one-line message."""
    opts = Options()
    if env.get("NET_STATIC"):
        opts.static = parse_config(env["NET_STATIC"], ConfigSource.STATIC)
    if env.get("NET_FALLBACK"):
        opts.fallback = parse_config(env["NET_FALLBACK"], ConfigSource.FALLBACK)
    it = iter(args)
    for arg in it:
        key, eq, value = arg.partition("=")
        if key not in ("--static", "--fallback", "--dhcp-timeout", "--hostname", "--rcvbuf", "--sndbuf",
                       "--rto-max", "--retries", "--seed"):
            raise ValueError(f"unknown option {arg!r} (use --static, --fallback, --dhcp-timeout, --hostname, "
                             "--rcvbuf, --sndbuf, --rto-max, --retries, --seed)")
        if not eq:
            value = next(it, "")
            if not value:
                raise ValueError(f"{key} needs a value")
        if key == "--static":
            opts.static = parse_config(value, ConfigSource.STATIC)
        elif key == "--fallback":
            opts.fallback = parse_config(value, ConfigSource.FALLBACK)
        elif key == "--dhcp-timeout":
            try:
                opts.dhcp_timeout = float(value)
            except ValueError:
                raise ValueError(f"--dhcp-timeout {value!r}: not a number of seconds") from None
            if opts.dhcp_timeout <= 0:
                raise ValueError("--dhcp-timeout must be positive")
        elif key == "--rcvbuf":
            if not value.isdigit() or not 1460 <= int(value) <= RCVBUF_MAX:
                raise ValueError(f"--rcvbuf {value!r}: a number of bytes from 1460 to {RCVBUF_MAX}")
            opts.rcvbuf = int(value)
        elif key == "--sndbuf":
            if not value.isdigit() or not 1460 <= int(value) <= 1 << 20:
                raise ValueError(f"--sndbuf {value!r}: a number of bytes from 1460 to 1048576")
            opts.sndbuf = int(value)
        elif key == "--rto-max":
            try:
                opts.rto_max = float(value)
            except ValueError:
                raise ValueError(f"--rto-max {value!r}: not a number of seconds") from None
            if not 0.2 <= opts.rto_max <= 120.0:
                raise ValueError("--rto-max must be from 0.2 (the minimum RTO) to 120 seconds")
        elif key == "--retries":
            if not value.isdigit() or not 1 <= int(value) <= 30:
                raise ValueError(f"--retries {value!r}: a count from 1 to 30")
            opts.retries = int(value)
        elif key == "--seed":
            if not value.isdigit():
                raise ValueError(f"--seed {value!r}: a non-negative integer")
            opts.seed = int(value)
        else:
            opts.hostname = value
    return opts
