"""The kernel's exceptions, and why it kills a process.

One place for every error the kernel raises inside itself, so a caller (the kernel's own
modules, the front door, tests) imports them from here whatever part of the kernel raises them.
Two families:

* errors that a kernel operation returns to its caller: SyscallFail (an error code for the
  syscall's RAX), LoaderError, and the memory manager's FrameError, OutOfFrames, QuotaExceeded,
  SpaceError;
* unwinding signals, BaseExceptions so that a program's `except Exception` cannot swallow them:
  ThreadExit, ProcessKilled, WatchdogKill.

The CPU's own exceptions (PageFault, GeneralProtection) belong to the hardware: machine/mmu.py.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SyscallFail(Exception):
    """Raised inside the kernel to return an error code from a syscall."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message or f"error {code}")
        self.code = code


class LoaderError(Exception):
    """The image is not a runnable program (syntax error, no main, bad encoding)."""


class FrameError(Exception):
    """A frame was freed that this allocator does not consider handed out (a caller bug)."""


class OutOfFrames(Exception):
    """No free frame (or no run of consecutive free frames) satisfies the request."""


class QuotaExceeded(Exception):
    """The space already holds as many frames as its quota allows."""


class SpaceError(Exception):
    """A request the layout cannot satisfy (no free slot, bad address, overlap)."""


class ThreadExit(BaseException):
    """Raised by exit_thread to unwind the calling thread."""


class ProcessKilled(BaseException):
    """Unwinds a thread whose process the kernel has killed (fault, watchdog, kill request).

    A BaseException so that a program's `except Exception` cannot swallow its own death."""


class WatchdogKill(BaseException):
    """Injected into a thread that ran too long without a syscall."""


class KillCause(enum.Enum):
    """Why the kernel killed a process: the kind; KillReason.detail says the particulars."""

    FAULT = "fault"  # a page fault or general protection fault in user mode
    OUT_OF_MEMORY = "out of memory"  # a user access needed a frame past the quota or the RAM
    WATCHDOG = "watchdog"  # ran the watchdog's limit without a syscall
    BAD_IMAGE = "bad image"  # the program image would not load (LoaderError)
    CRASH = "crash"  # an exception escaped the program
    REQUEST = "request"  # someone asked (kill through /proc, the host, a test)
    INTERRUPT = "interrupt"  # someone interrupted it (Ctrl+C at the shell: /proc/PID/ctl `interrupt`)
    CONFINEMENT = "confinement"  # its confined worker could not be started (a layer is missing)


@dataclass(frozen=True, slots=True)
class KillReason:
    """Process.killed: the cause, and the text the klog line and ProcessKilled carry."""

    cause: KillCause
    detail: str
    report: str = ""  # what the program's own console is told (a crash: its traceback)

    def __str__(self) -> str:
        return self.detail
