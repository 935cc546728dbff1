"""A worker's life after the zygote forks it: confine, say so on the channel, run the entry, exit.

The first message on the channel is the verdict: ``ready <json {mechanism: detail}>`` once every
layer is applied and verified, or ``refused <mechanism>: <detail>`` (one line) and exit status
Exit.REFUSED. Only then, and only with the channel, does the entry function run. The worker leaves
with os._exit whatever happens: it must never run the zygote's atexit handlers, flush the zygote's
buffers, or return into the zygote's loop.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from enum import IntEnum
from typing import NoReturn

from merriwig.confine.mechanism import Mechanism, MechanismMissing
from merriwig.confine.steps import CHANNEL_FD, Setup, place_fds, run_steps

READY = b"ready "
REFUSED = b"refused "

Entry = Callable[[socket.socket], object]


class Exit(IntEnum):
    """A worker's exit status (a SIGKILLed one has none: its returncode is -9)."""

    DONE = 0  # the entry returned
    RAISED = 1  # the entry raised
    REFUSED = 2  # a mechanism was missing; the entry never ran


def run(setup: Setup, entry: Entry, without: frozenset[Mechanism] = frozenset()) -> NoReturn:
    """Confine this (just forked) process, then hand the channel to ``entry``. Never returns."""
    code = Exit.RAISED
    channel_fd = setup.channel_fd
    try:
        try:
            try:
                place_fds(setup)
            except OSError as e:
                raise MechanismMissing(Mechanism.FDS, f"placing the channel: {e}") from None
            channel_fd = CHANNEL_FD
            done = run_steps(setup, without)
        except MechanismMissing as e:
            code = Exit.REFUSED
            os.write(channel_fd, REFUSED + str(e).encode())
        else:
            channel = socket.socket(fileno=CHANNEL_FD)
            channel.send(READY + json.dumps({m.value: detail for m, (_, detail) in done.items()}).encode())
            entry(channel)
            code = Exit.DONE
    finally:
        os._exit(code)
