"""The /tcp/ping protocol: what programs/ping.py asks and net/sessions/ping.py answers.

Open /tcp/ping/HOST, then Short(ECHO, seq, timeout_ms) -> DATA(JSON of the reply or the error)."""

from __future__ import annotations

ECHO = 66
