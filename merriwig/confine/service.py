"""Confinement for one kernel: which programs run confined, and the zygote session that starts them.

DESIGN.md 1b: every program exec'd from a file runs its Python in a confined host worker; the
trusted base -- the kernel, the front door's function images (init, host scripting) and the
images the host registered as its own services (the drivers and servers init starts from the
initial RAM disk, and login) when a root process starts them -- stays in-process. Trust is by
content: the image's hash must be one the host registered (`trust`), so a root program that
edits /bin/login or copies a driver's source runs its copy confined like any other file.

The zygote session opens in the background when the kernel starts (booting does not wait for the
zygote's imports); the first confined exec waits for it. When a layer is missing on this host the
zygote's probe says which, and every confined start is refused with that one line -- never run
weaker in silence. `Isolation.NONE` (the user's `--isolation none`) runs everything in-process,
with SECURITY.md's old caveat, and the banner says so.
"""

from __future__ import annotations

import enum
import hashlib
import importlib.util
import os
import pkgutil
from collections.abc import Callable, Sequence
from typing import Any

import trio

from merriwig.confine.client import ConfinementRefused, Worker, ZygoteError, open_zygote
from merriwig.confine.mechanism import Limits

RUNTIME_ENTRY = "merriwig.confine.runtime:main"
WORKER_MEMORY = 256 << 20  # host address space a confined program may add, when its process has no quota
QUOTA_HEADROOM = 64 << 20  # ... and on top of its quota's bytes when it has one
WORKER_CPU_SECONDS = 3600  # the rlimit backstop behind the watchdog (it catches a loop in seconds)
SPARE_LIMITS = Limits(memory_bytes=WORKER_MEMORY, cpu_seconds=WORKER_CPU_SECONDS)  # a spare's, the most any gets


class Isolation(enum.StrEnum):
    HOST = "host"  # programs from files run in confined host workers (the default)
    NONE = "none"  # everything in the kernel's interpreter: no isolation between programs


_WINDOWS_ONLY = frozenset({"encodings.mbcs", "encodings.oem"})


def preload_modules(extra: Sequence[str] = ()) -> list[str]:
    """Every module a confined program may import, by name: the zygote imports them once, since
    nothing can be imported from disk inside a worker. The shared user-space libraries with all
    their submodules (found without importing them here), the drivers' helpers (an image exec'd
    with I/O privilege may import them; the loader still refuses them to any other), the loader's
    pure standard library, the codecs `str.encode` loads lazily, and `extra`."""
    from merriwig import loader, tiers

    names = [*extra]
    for package in (*tiers.USER_LIBRARIES, *tiers.PRIVILEGED_IMAGE_EXTRA, "encodings"):
        names.append(package)
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            names += [m.name for m in pkgutil.walk_packages(spec.submodule_search_locations, package + ".")
                      if m.name not in _WINDOWS_ONLY]
    names += sorted(loader.PURE_STDLIB)
    return list(dict.fromkeys(names))


def worker_limits(quota: int | None) -> Limits:
    """What one confined worker may take of the host: memory from the process' frame quota."""
    memory = min(quota * 4096 + QUOTA_HEADROOM, WORKER_MEMORY) if quota else WORKER_MEMORY
    return Limits(memory_bytes=memory, cpu_seconds=WORKER_CPU_SECONDS)


def _off_the_kernels_cpu(pid: int) -> None:
    """Let the zygote (so its forks, and new workers until they join the kernel's CPU) run on
    the CPUs the kernel's thread is not bound to: starting a program then goes on beside the
    kernel instead of taking turns with it (merriwig/confine/relay.py, Deadlines)."""
    try:
        mine = os.sched_getaffinity(0)
        others = set(range(os.cpu_count() or 1)) - mine
        if len(mine) == 1 and others:
            os.sched_setaffinity(pid, others)
    except OSError:
        pass


def image_key(image: bytes) -> bytes:
    return hashlib.blake2b(image, digest_size=20).digest()


class Confinement:
    """The kernel's confinement service: the trusted set, and workers on demand."""

    def __init__(self, mode: Isolation = Isolation.HOST, preload: Sequence[str] | None = None) -> None:
        self.mode = mode
        self.preload = list(preload if preload is not None else preload_modules())
        self.log: Callable[[str], None] = lambda line: None  # the kernel's log, once it has one
        self.trusted: set[bytes] = set()
        self.refusal: str | None = None  # why confined programs cannot start here, once known
        self.zygote: Any = None
        self._ready = trio.Event()
        # One worker forked and confined ahead of need: an exec takes it at once and a new one
        # is made behind it (forking and confining is most of what starting a program costs).
        self._spare: Worker | None = None
        self._want_spare = trio.Event()
        self._spare_made: trio.Event | None = None  # set when the spare being made is there

    @property
    def enabled(self) -> bool:
        return self.mode is Isolation.HOST

    def trust(self, image: bytes) -> None:
        """Register a host service's image: started by root, it runs in-process."""
        self.trusted.add(image_key(image))

    def confines(self, image: object, *, by_root: bool) -> bool:
        """Does this image run confined? Function images are the host's own code: never."""
        if not self.enabled or not isinstance(image, bytes):
            return False
        return not (by_root and image_key(image) in self.trusted)

    async def run(self) -> None:
        """Hold the zygote session for the kernel's life (a task in the kernel's nursery). The
        kernel's first log line names the isolation mode; this adds a line only to say why
        confined programs cannot start here."""
        if not self.enabled:
            self.log("[kernel] isolation none: every program runs unconfined in the kernel's interpreter")
            return
        try:
            async with open_zygote(self.preload) as zygote:
                _off_the_kernels_cpu(zygote.pid)
                if zygote.probe.ok:
                    self.zygote = zygote
                else:
                    self.refusal = zygote.probe.line()
                    self.log(f"[kernel] {self.refusal} (use --isolation none to run them unconfined)")
                self._ready.set()
                if self.zygote is None:
                    await trio.sleep_forever()
                await self._keep_a_spare(zygote)
        except (ZygoteError, OSError) as e:
            self.refusal = f"confined programs refused: the zygote failed: {e}"
            self.log(f"[kernel] {self.refusal}")
        finally:
            self.zygote = None
            self._ready.set()

    async def _keep_a_spare(self, zygote: Any) -> None:
        """Fork the next worker while nobody waits for it (never more than one spare)."""
        while True:
            await self._want_spare.wait()
            self._want_spare = trio.Event()
            if self._spare is None:
                made = self._spare_made = trio.Event()
                try:
                    with trio.CancelScope(shield=True):
                        self._spare = await zygote.spawn(RUNTIME_ENTRY, SPARE_LIMITS)
                except (ZygoteError, ConfinementRefused) as e:
                    self.log(f"[kernel] no spare confined worker: {e}")
                    await trio.sleep_forever()
                finally:
                    self._spare_made = None
                    made.set()

    async def spawn(self, limits: Limits) -> tuple[Worker, int]:
        """A confined worker running the ring-3 runtime, and by how many bytes it must lower its
        address-space limit to give `limits` (a spare was made with SPARE_LIMITS); raises
        ConfinementRefused with the line."""
        await self._ready.wait()
        zygote = self.zygote
        if zygote is None:
            raise ConfinementRefused(self.refusal or "confined programs refused: the kernel is stopping")
        if self._spare is None and self._spare_made is not None:
            await self._spare_made.wait()  # one is on its way: sooner than a second fork
        self._want_spare.set()
        spare, self._spare = self._spare, None
        if spare is not None:
            if spare.returncode is None and limits.memory_bytes <= SPARE_LIMITS.memory_bytes \
                    and limits.cpu_seconds == SPARE_LIMITS.cpu_seconds and limits.open_files == SPARE_LIMITS.open_files:
                return spare, SPARE_LIMITS.memory_bytes - limits.memory_bytes
            await spare.aclose()
        try:
            with trio.CancelScope(shield=True):  # a worker spawned must be a worker handed over
                worker: Worker = await zygote.spawn(RUNTIME_ENTRY, limits)
        except ZygoteError as e:
            raise ConfinementRefused(f"confined programs refused: {e}") from None
        return worker, 0
