"""The seccomp filter: policy.py's rules assembled into classic BPF by hand and loaded with seccomp(2).

Why by hand and not libseccomp (through pyseccomp, the PyPI binding): the filter embeds the worker's
own pid (signals to itself are allowed, to anyone else denied), so each worker needs its own copy;
here the program is assembled once in the zygote and a worker only writes its pid into five
words, where libseccomp would rebuild and re-export it in every fork. pyseccomp (last release
2021) is a thin ctypes layer that would add a dependency on an unmaintained package and on
libseccomp.so.2 being installed, for a program of a few hundred comparisons. What libseccomp
would have done for us is done explicitly and tested (tests/kernel/test_confine_filter.py runs the
program in an interpreter; its numbers are checked against libseccomp's table where installed):
the architecture check (anything but AUDIT_ARCH_X86_64 is killed, so i386 ``int 0x80`` cannot
reach the unfiltered 32-bit table), the x32 check (numbers with bit 30 set are killed), comparing
only the low 32 bits of int arguments (all the kernel reads of them), and a binary search over the
syscall numbers instead of a linear scan.

Why the binary search: the kernel runs a new filter once per syscall number when it is loaded (to
cache the numbers that are always allowed), so a 300-instruction linear scan cost half a
millisecond per worker; as a tree every number is decided in about a dozen instructions.

Layout: a leaf handles a few numbers, each as a self-contained block ending in a return, so the
accumulator (the syscall number) is never reloaded; inner nodes are ``jge`` splits whose jumps
must fit classic BPF's 8-bit offsets, which build() checks.
"""

from __future__ import annotations

import ctypes
import errno
import struct
from dataclasses import dataclass

from merriwig.confine.libc import NR_SECCOMP, syscall
from merriwig.confine.policy import DENY_ERRNO, LAST_REVIEWED, NR, RULES, SELF, AllowOnlyIf, Deny, Rule

# BPF opcodes (linux/filter.h, linux/bpf_common.h)
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGT_K = 0x25  # BPF_JMP | BPF_JGT | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K

# struct seccomp_data offsets
_OFF_NR = 0
_OFF_ARCH = 4
_OFF_ARGS = 16  # args[i] low word at 16 + 8*i on little-endian

AUDIT_ARCH_X86_64 = 0xC000_003E
X32_SYSCALL_BIT = 0x4000_0000

RET_KILL_PROCESS = 0x8000_0000
RET_ERRNO = 0x0005_0000
RET_ALLOW = 0x7FFF_0000

SECCOMP_SET_MODE_FILTER = 1

Insn = tuple[int, int, int, int]  # code, jt, jf, k


def _stmt(code: int, k: int) -> Insn:
    return (code, 0, 0, k)


def _jump(code: int, k: int, jt: int, jf: int) -> Insn:
    return (code, jt, jf, k)


def _deny(err: int = DENY_ERRNO) -> Insn:
    return _stmt(_RET_K, RET_ERRNO | err)


def _block(rule: Rule) -> list[Insn]:
    """Decide the syscall (known by now to be one ``rule`` names) by ``rule``."""
    if isinstance(rule, Deny):
        return [_deny()]
    load = _stmt(_LD_W_ABS, _OFF_ARGS + 8 * rule.arg)
    if isinstance(rule, AllowOnlyIf):
        return [load, _jump(_JEQ_K, rule.value, 0, 1), _stmt(_RET_K, RET_ALLOW), _deny()]
    n = len(rule.values)
    return [load, *(_jump(_JEQ_K, v, n - i, 0) for i, v in enumerate(rule.values)), _stmt(_RET_K, RET_ALLOW), _deny()]


_LEAF = 4  # numbers decided by a linear scan at the bottom of the tree


def _tree(entries: list[tuple[int, Rule]]) -> list[Insn]:
    """Decide the syscall number in the accumulator among the sorted ``entries``; any number not
    among them is allowed."""
    if len(entries) <= _LEAF:
        prog: list[Insn] = []
        for nr, rule in entries:
            block = _block(rule)
            prog += [_jump(_JEQ_K, nr, 0, len(block)), *block]
        return prog + [_stmt(_RET_K, RET_ALLOW)]
    mid = len(entries) // 2
    low, high = _tree(entries[:mid]), _tree(entries[mid:])
    if len(low) > 255:
        raise ValueError("filter too deep for 8-bit jumps")
    return [_jump(_JGE_K, entries[mid][0], len(low), 0), *low, *high]


def build() -> list[Insn]:
    """The filter program, with 0 wherever the worker's own pid goes (see Filter)."""
    entries: dict[int, Rule] = {}
    for rule in RULES:
        for name in rule.names if isinstance(rule, Deny) else (rule.name,):
            entries[NR[name]] = rule
    return [
        _stmt(_LD_W_ABS, _OFF_ARCH),
        _jump(_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        _stmt(_RET_K, RET_KILL_PROCESS),
        _stmt(_LD_W_ABS, _OFF_NR),
        _jump(_JGE_K, X32_SYSCALL_BIT, 0, 1),
        _stmt(_RET_K, RET_KILL_PROCESS),
        _jump(_JGT_K, LAST_REVIEWED, 0, 1),
        _deny(errno.ENOSYS),
        *_tree(sorted(entries.items(), key=lambda item: item[0])),
    ]


_INSN = struct.Struct("=HBBI")  # struct sock_filter


@dataclass(frozen=True)
class Filter:
    """The packed program, assembled once in the zygote; each worker only writes its pid into the
    comparisons that stand for SELF (packing 300 instructions in every fork would cost more than
    everything else a worker does to confine itself)."""

    code: bytes
    pid_slots: tuple[int, ...]  # byte offsets of the k fields that must hold the worker's pid

    @classmethod
    def assemble(cls) -> Filter:
        prog = build()
        slots = tuple(
            i * _INSN.size + 4 for i, (code, _, _, k) in enumerate(prog) if code == _JEQ_K and k == SELF
        )
        prog = [(code, jt, jf, 0 if k == SELF else k) for code, jt, jf, k in prog]
        return cls(b"".join(_INSN.pack(*insn) for insn in prog), slots)

    def __len__(self) -> int:
        return len(self.code) // _INSN.size

    def for_pid(self, pid: int) -> bytes:
        code = bytearray(self.code)
        for offset in self.pid_slots:
            struct.pack_into("=I", code, offset, pid)
        return bytes(code)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(code: bytes) -> None:
    """Load the packed program ``code`` for this (single-threaded, no_new_privs) process; it can
    never be removed."""
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = _SockFprog(len(code) // _INSN.size, ctypes.cast(buf, ctypes.c_void_p))
    syscall(NR_SECCOMP, SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(fprog))
