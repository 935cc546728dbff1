"""Host-OS confinement for ring-3 programs: each runs in a worker process holding only a channel.

Python cannot confine Python inside one interpreter, so a program exec'd from a file runs in a
host process forked from a pre-imported zygote and shut in by the host kernel, every layer
applied and verified before any of its code runs (DESIGN.md 1b; the layers are Mechanism's
members, in order). The public surface:

- open_zygote(preload, import_path) -> Zygote: start the zygote (an async context manager, trio)
- Zygote.spawn(entry, Limits, ...) -> Worker: a confined worker running entry(channel)
- Zygote.probe / probe(): which layers this host offers; Probe.line() for the one-line refusal
- Worker.channel, .kill() (SIGKILL via pidfd), .wait(), .aclose(); ConfinementRefused, ZygoteError
"""

from merriwig.confine.client import ConfinementRefused, Worker, Zygote, ZygoteError, open_zygote
from merriwig.confine.mechanism import Limits, Mechanism
from merriwig.confine.probe import Probe, probe
from merriwig.confine.worker import Exit

__all__ = [
    "ConfinementRefused",
    "Exit",
    "Limits",
    "Mechanism",
    "Probe",
    "Worker",
    "Zygote",
    "ZygoteError",
    "open_zygote",
    "probe",
]
