"""Host-OS confinement for ring-3 programs: each runs in a worker process holding only a channel.

Python cannot confine Python inside one interpreter, so a program exec'd from a file runs in a
host process forked from a pre-imported zygote and shut in by the host kernel, every layer
applied and verified before any of its code runs (DESIGN.md 1b). The public surface, by module
(this file imports none of them: the zygote runs ``python -m merriwig.confine.zygote`` and must
not pay for the kernel side's trio):

- client: open_zygote(preload, import_path) -> Zygote (a session with the host process' one zygote
  per preload, kept across trio runs); Zygote.spawn(entry, Limits) -> Worker; Zygote.probe;
  Worker.channel/.kill()/.wait()/.aclose(); ConfinementRefused, ZygoteError
- mechanism: Mechanism (the layers, in the order applied), Limits, MechanismMissing
- probe: probe() and Probe (what a host offers; Probe.line() is the one-line refusal)
- worker: Exit (a worker's exit statuses), READY/REFUSED (the channel's first message)
- policy, seccomp, landlock, steps, libc, wire, zygote: how it is done
"""
