"""The seccomp filter as a program: run it on synthetic seccomp_data with a tiny classic-BPF
interpreter (only the opcodes seccomp.py emits) and check each rule's verdict, plus the policy
table's numbers against libseccomp's own when the library is on the host.

These need no namespaces or privileges; test_confine.py proves the same filter inside a worker.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import struct

import pytest

from merriwig.confine import policy, seccomp

PID = 4242
FILTER = seccomp.Filter.assemble()
CODE = FILTER.for_pid(PID)


def run(nr: int, *args: int, arch: int = seccomp.AUDIT_ARCH_X86_64) -> int:
    """The filter's return value for syscall ``nr`` with ``args`` (as 64-bit values)."""
    full = list(args) + [0] * (6 - len(args))
    data = struct.pack("=iIQ6Q", nr, arch, 0, *[a & (2**64 - 1) for a in full])
    insns = [struct.unpack_from("=HBBI", CODE, i) for i in range(0, len(CODE), 8)]
    pc = acc = 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            (acc,) = struct.unpack_from("=I", data, k)
            pc += 1
        elif code == 0x06:
            return k
        else:
            taken = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k}[code]
            pc += 1 + (jt if taken else jf)


def eperm(value: int) -> bool:
    return value == seccomp.RET_ERRNO | errno.EPERM


ALLOW = seccomp.RET_ALLOW
NR = policy.NR


def test_foreign_arch_and_x32_are_killed():
    assert run(0, arch=0x4000_0003) == seccomp.RET_KILL_PROCESS  # AUDIT_ARCH_I386
    assert run(seccomp.X32_SYSCALL_BIT | 39) == seccomp.RET_KILL_PROCESS
    assert run(-1) == seccomp.RET_KILL_PROCESS


def test_ordinary_calls_pass():
    for nr in (0, 1, 3, 9, 11, 39, 60, 228, 231, 232, 281, 318):  # read write close mmap munmap getpid ...
        assert run(nr) == ALLOW, nr


@pytest.mark.parametrize("name", sorted({n for r in policy.RULES if isinstance(r, policy.Deny) for n in r.names}))
def test_denied_whatever_the_arguments(name):
    assert eperm(run(NR[name]))
    assert eperm(run(NR[name], PID, 1, 2, 3))


def test_calls_newer_than_reviewed_are_enosys():
    assert run(policy.LAST_REVIEWED + 1) == seccomp.RET_ERRNO | errno.ENOSYS
    assert run(1000) == seccomp.RET_ERRNO | errno.ENOSYS


@pytest.mark.parametrize("name", ["kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"])
def test_signals_only_to_itself(name):
    assert run(NR[name], PID, 0) == ALLOW
    assert run(NR[name], PID | 1 << 32, 0) == ALLOW  # the kernel reads only the low 32 bits: still itself
    for other in (1, PID + 1, 0, -1, -PID):
        assert eperm(run(NR[name], other, 9)), other


def test_socketpair_only_unix_and_prlimit_only_self():
    assert run(NR["socketpair"], 1, 1, 0) == ALLOW
    assert eperm(run(NR["socketpair"], 2, 1, 0))
    assert run(NR["prlimit64"], 0, 7, 0, 0) == ALLOW
    assert eperm(run(NR["prlimit64"], 1, 7, 1, 0))


def test_sigio_owner_and_tiocsti_denied():
    assert eperm(run(NR["fcntl"], 3, policy.F_SETOWN, 1))
    assert eperm(run(NR["fcntl"], 3, policy.F_SETOWN_EX, 1))
    for cmd in (1, 2, 3, 4, 1030):  # F_GETFD F_SETFD F_GETFL F_SETFL F_DUPFD_CLOEXEC
        assert run(NR["fcntl"], 3, cmd, 0) == ALLOW
    for cmd in (policy.FIOSETOWN, policy.SIOCSPGRP, policy.TIOCSTI):
        assert eperm(run(NR["ioctl"], 3, cmd, 0))
    assert run(NR["ioctl"], 3, 0x541B, 0) == ALLOW  # FIONREAD


def test_pid_slots_hold_the_pid():
    assert len(FILTER.pid_slots) == 5
    for offset in FILTER.pid_slots:
        assert struct.unpack_from("=I", CODE, offset) == (PID,)


def test_every_number_is_named_by_a_rule_and_every_rule_has_a_number():
    named = set()
    for rule in policy.RULES:
        named.update(rule.names if isinstance(rule, policy.Deny) else (rule.name,))
    assert named == set(NR)
    assert len(set(NR.values())) == len(NR)
    assert max(NR.values()) <= policy.LAST_REVIEWED


def test_numbers_agree_with_libseccomp():
    path = ctypes.util.find_library("seccomp")
    if path is None:
        pytest.skip("libseccomp not installed: nothing to cross-check the table against")
    lib = ctypes.CDLL(path)
    lib.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    for name, nr in NR.items():
        assert lib.seccomp_syscall_resolve_name_arch(seccomp.AUDIT_ARCH_X86_64, name.encode()) == nr, name
