"""``--impair loss=..,delay=..,jitter=..,reorder=..,dup=..,corrupt=..,seed=..``: a bad network, on demand.

A wrapper backend in the spirit of Linux netem, for testing a TCP stack against loss, latency,
reordering, duplication and bit errors without root or tc. Percentages are per frame; delay and
jitter are in milliseconds (each frame waits ``delay ± jitter``, uniformly drawn, so jitter also
reorders); ``reorder`` holds a frame back until the next frame of the same direction has gone out
(or ``hold`` ms pass with none); ``corrupt`` flips one bit at a random position. ``dir=tx`` or
``dir=rx`` restricts it to frames from or to the guest (default both).

Decisions come from ``random.Random`` seeded with the seed and the direction, and every frame
consumes the same number of draws whatever happens to it, so the same seed and the same sequence
of frames always get the same fate, in each direction independently of the other. Only *when*
delayed frames leave depends on the clock: they wait on trio timers (one task sleeping until the
earliest due frame), never by polling.

Impairment is of the wire, so it applies to segments: a 64 KiB TSO frame from the guest is cut
into segments (and checksummed) first, and each segment meets its own fate, as on a real network
where the host's NIC segments before the cable loses anything. The same holds towards the guest:
an impaired receive direction asks the backend for plain frames only (no ``deliver_gso``).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from machine.netdev import Backend, Deliver, DeliverGso, Wrapper
from proto.wire.vnet import VnetHdr

_PERCENT_KEYS = ("loss", "reorder", "dup", "corrupt")
_MS_KEYS = ("delay", "jitter", "hold")


@dataclass(frozen=True)
class Impairment:
    """What to do to frames; percentages 0-100, times in milliseconds."""

    loss: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    reorder: float = 0.0
    dup: float = 0.0
    corrupt: float = 0.0
    seed: int = 0
    directions: str = "both"  # "both", "tx" (guest -> outside) or "rx" (outside -> guest)
    hold: float = 50.0  # longest wait of a reordered frame for a successor

    def applies(self, direction: str) -> bool:
        return self.directions in ("both", direction)


def parse_impair(text: str) -> Impairment:
    """``"loss=10,reorder=5,dup=5,corrupt=2,seed=1"`` -> Impairment; ValueError on bad input."""
    values: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = item.partition("=")
        key, raw = key.strip().lower(), raw.strip().lower()
        if not sep or not raw:
            raise ValueError(f"--impair: expected key=value, got {item!r}")
        try:
            if key in _PERCENT_KEYS:
                number = float(raw.removesuffix("%"))
                if not 0 <= number <= 100:
                    raise ValueError
                values[key] = number
            elif key in _MS_KEYS:
                number = float(raw.removesuffix("ms"))
                if not 0 <= number <= 3_600_000:
                    raise ValueError
                values[key] = number
            elif key == "seed":
                values[key] = int(raw, 0)
            elif key in ("dir", "direction"):
                if raw not in ("both", "tx", "rx"):
                    raise ValueError
                values["directions"] = raw
            else:
                raise KeyError(key)
        except KeyError:
            raise ValueError(f"--impair: unknown setting {key!r} (use loss, delay, jitter, reorder, dup, "
                             "corrupt, seed, dir, hold)") from None
        except ValueError:
            raise ValueError(f"--impair: bad value {raw!r} for {key} (percentages 0-100, times in ms, "
                             "dir=both|tx|rx)") from None
    return Impairment(**values)  # type: ignore[arg-type]


@dataclass
class Decision:
    """The fate of one frame: dropped, or sent as ``copies`` after ``delay`` seconds."""

    drop: bool
    copies: list[bytes]
    delay: float
    reorder: bool
    corrupted: bool


class Decider:
    """The seeded random choices for one direction (pure: no clock, no I/O, easy to test)."""

    def __init__(self, impairment: Impairment, direction: str) -> None:
        self.imp = impairment
        self.rng = random.Random(f"{impairment.seed}:{direction}")

    def decide(self, frame: bytes) -> Decision:
        imp = self.imp
        r = self.rng.random
        # Always seven draws, in this order, so one setting never shifts the others' choices.
        r_loss, r_dup, r_corrupt, r_reorder, r_jitter, r_pos, r_bit = r(), r(), r(), r(), r(), r(), r()
        if r_loss * 100 < imp.loss:
            return Decision(True, [], 0.0, False, False)
        first = frame
        corrupted = bool(frame) and r_corrupt * 100 < imp.corrupt
        if corrupted:
            data = bytearray(frame)
            data[int(r_pos * len(data))] ^= 1 << int(r_bit * 8)
            first = bytes(data)
        copies = [first, frame] if r_dup * 100 < imp.dup else [first]
        delay_ms = max(0.0, imp.delay + (2 * r_jitter - 1) * imp.jitter)
        return Decision(False, copies, delay_ms / 1000, r_reorder * 100 < imp.reorder, corrupted)


@dataclass(order=True)
class _Entry:
    due: float
    seq: int
    lane: _Lane = field(compare=False)
    frame: bytes = field(compare=False)
    held: bool = field(default=False, compare=False)
    done: bool = field(default=False, compare=False)


class _Lane:
    """One direction: its decider, its output, the frames held back for reordering, counters."""

    def __init__(self, owner: ImpairBackend, direction: str) -> None:
        self.owner = owner
        self.decider = Decider(owner.imp, direction)
        self.output: Callable[[bytes], object] | None = None
        self.held: list[_Entry] = []
        self.stats = dict.fromkeys(("frames", "lost", "duplicated", "corrupted", "reordered", "delayed"), 0)

    def push(self, frame: bytes) -> None:
        d = self.decider.decide(frame)
        s = self.stats
        s["frames"] += 1
        if d.drop:
            s["lost"] += 1
            return
        s["duplicated"] += len(d.copies) - 1
        s["corrupted"] += d.corrupted
        owner = self.owner
        if d.reorder:
            s["reordered"] += 1
            for copy in d.copies:
                entry = owner.schedule(self, copy, d.delay + owner.imp.hold / 1000, held=True)
                self.held.append(entry)
        elif d.delay > 0:
            s["delayed"] += 1
            for copy in d.copies:
                owner.schedule(self, copy, d.delay)
        else:
            for copy in d.copies:
                self.emit(_Entry(0.0, next(owner.seq), self, copy))

    def emit(self, entry: _Entry) -> None:
        """Send a frame on, then any held-back frame that came before it (that is the reordering)."""
        entry.done = True
        if self.output is not None:
            self.output(entry.frame)
        if entry.held:
            return
        still: list[_Entry] = []
        for h in self.held:
            if h.done:
                continue
            if h.seq < entry.seq:
                h.done = True
                if self.output is not None:
                    self.output(h.frame)
            else:
                still.append(h)
        self.held = still


class ImpairBackend(Wrapper):
    """Impair the frames between the NIC and ``inner`` as ``impairment`` says."""

    def __init__(self, inner: Backend, impairment: Impairment) -> None:
        super().__init__(inner)
        self.imp = impairment
        self.seq = itertools.count()
        self._heap: list[_Entry] = []
        self._wake = trio.Event()
        self.tx = _Lane(self, "tx") if impairment.applies("tx") else None
        self.rx = _Lane(self, "rx") if impairment.applies("rx") else None
        if self.tx is not None:
            self.tx.output = inner.send

    @property
    def stats(self) -> dict[str, int]:
        out = dict(self.inner.stats)
        for name, lane in (("tx", self.tx), ("rx", self.rx)):
            if lane is not None:
                out.update({f"impair_{name}_{k}": v for k, v in lane.stats.items()})
        return out

    def schedule(self, lane: _Lane, frame: bytes, delay: float, held: bool = False) -> _Entry:
        entry = _Entry(trio.current_time() + delay, next(self.seq), lane, frame, held)
        heapq.heappush(self._heap, entry)
        self._wake.set()
        return entry

    def send(self, frame: bytes) -> None:
        if self.tx is None:
            self.inner.send(frame)
        else:
            self.tx.push(frame)

    def send_gso(self, hdr: VnetHdr, frame: bytes) -> None:
        """Segment first (Backend.send_gso), then impair each segment; untouched with dir=rx."""
        if self.tx is None:
            self.inner.send_gso(hdr, frame)
        else:
            Backend.send_gso(self, hdr, frame)

    async def run(self, deliver: Deliver, deliver_gso: DeliverGso | None = None) -> None:
        if self.rx is not None:
            self.rx.output = deliver
            rx: Deliver = self.rx.push
            deliver_gso = None  # the inner backend segments; each segment is then impaired
        else:
            rx = deliver
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._timer)
            await self.inner.run(rx, deliver_gso)
            nursery.cancel_scope.cancel()

    async def _timer(self) -> None:
        """Send delayed frames when they fall due: sleep until the earliest, or until woken by a
        newly scheduled frame that might be earlier still."""
        heap = self._heap
        while True:
            while heap and heap[0].done:
                heapq.heappop(heap)
            if not heap:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            due = heap[0].due
            if due > trio.current_time():
                with trio.move_on_at(due):
                    await self._wake.wait()
                if self._wake.is_set():
                    self._wake = trio.Event()
                continue
            entry = heapq.heappop(heap)
            if not entry.done:
                if entry.held:
                    entry.lane.held = [h for h in entry.lane.held if h is not entry]
                entry.lane.emit(entry)
