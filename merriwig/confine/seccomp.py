"""The seccomp filter: policy.py's rules assembled into classic BPF by hand and loaded with seccomp(2).

Why by hand and not libseccomp (through pyseccomp, the PyPI binding): the filter embeds the worker's
own pid (signals to itself are allowed, to anyone else denied), so it is built anew in every worker
right after fork, and assembling ~250 instructions from a table here costs tens of microseconds
with no library to load; pyseccomp (last release 2021) is a thin ctypes layer that would add a
dependency on an unmaintained package and on libseccomp.so.2 being installed, for a program that is
one linear list of comparisons. What libseccomp would have done for us is done explicitly and
tested: the architecture check (anything but AUDIT_ARCH_X86_64 is killed, so i386 ``int 0x80``
cannot reach the unfiltered 32-bit table), the x32 check (numbers with bit 30 set are killed) and
comparing only the low 32 bits of int arguments, exactly what the kernel reads of them.

Layout: each rule is a self-contained block ending in a return, so the accumulator never has to
be reloaded and no jump is longer than a few instructions (classic BPF jumps are 8-bit).
"""

from __future__ import annotations

import ctypes
import errno
import struct
from dataclasses import dataclass

from merriwig.confine.libc import NR_SECCOMP, syscall
from merriwig.confine.policy import DENY_ERRNO, LAST_REVIEWED, NR, RULES, SELF, AllowOnlyIf, Deny, DenyIf

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


def build() -> list[Insn]:
    """The filter program, with 0 wherever the worker's own pid goes (see Filter)."""
    prog: list[Insn] = [
        _stmt(_LD_W_ABS, _OFF_ARCH),
        _jump(_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        _stmt(_RET_K, RET_KILL_PROCESS),
        _stmt(_LD_W_ABS, _OFF_NR),
        _jump(_JGE_K, X32_SYSCALL_BIT, 0, 1),
        _stmt(_RET_K, RET_KILL_PROCESS),
        _jump(_JGT_K, LAST_REVIEWED, 0, 1),
        _deny(errno.ENOSYS),
    ]
    for rule in RULES:
        if isinstance(rule, Deny):
            for name in rule.names:
                prog += [_jump(_JEQ_K, NR[name], 0, 1), _deny()]
        elif isinstance(rule, AllowOnlyIf):
            prog += [
                _jump(_JEQ_K, NR[rule.name], 0, 4),
                _stmt(_LD_W_ABS, _OFF_ARGS + 8 * rule.arg),
                _jump(_JEQ_K, rule.value, 0, 1),
                _stmt(_RET_K, RET_ALLOW),
                _deny(),
            ]
        elif isinstance(rule, DenyIf):
            n = len(rule.values)
            prog += [_jump(_JEQ_K, NR[rule.name], 0, n + 3), _stmt(_LD_W_ABS, _OFF_ARGS + 8 * rule.arg)]
            prog += [_jump(_JEQ_K, v, n - i, 0) for i, v in enumerate(rule.values)]
            prog += [_stmt(_RET_K, RET_ALLOW), _deny()]
    prog.append(_stmt(_RET_K, RET_ALLOW))
    return prog


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
