"""The /tcp/mux protocol: many sockets on one session (served by net/sessions/mux.py, spoken by
euralios.std.net.Mux).

A request on a socket names it in the tag's upper bits: ``op | id << ID_SHIFT`` (op one of the
tags below or the file protocol's READ, WRITE, ACCEPT, CLOSE); requests on the session itself
have id 0. POLL answers DATA whose bytes are EVENT records, (u32 id, u32 events), the events a
bit set of READABLE, WRITABLE, ACCEPTABLE, ERROR. The requests and their answers are listed in
net/sessions/mux.py.
"""

from __future__ import annotations

import struct

CONNECT = 80  # Long(CONNECT, n, "HOST:PORT") -> OK(id)
LISTEN = 81  # Short(LISTEN, port, backlog) -> OK(id)
POLL = 82  # Short(POLL, timeout_ms, 0) -> DATA(EVENT records) or EMPTY at the timeout
WATCH = 83  # Short(WATCH | id << ID_SHIFT, events) -> OK

ID_SHIFT = 16
ID_MASK = (1 << ID_SHIFT) - 1

# Events, level-triggered: what POLL reports of a socket.
READABLE, WRITABLE, ACCEPTABLE, ERROR = 1, 2, 4, 8
ALL_EVENTS = READABLE | WRITABLE | ACCEPTABLE | ERROR

EVENT = struct.Struct("<II")  # a POLL record: socket id, events
