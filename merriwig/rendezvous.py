"""Rendezvous IPC: synchronous, unbuffered message passing between threads (spec §3).

A rendezvous has no ends: every handle to it can send and receive. A send completes only when
a receiver takes the message (nothing is buffered except a message the kernel itself parks).
`send_receive` is a remote procedure call: the thread that receives the request owes the caller
a reply, and the caller's reply can come *only* from that thread (replies are routed by thread
id, so two client threads calling one server each get their own answer).

The seed's four states (Empty, Sending, Receiving, SendReceiving) become, with the improvement
DESIGN.md §4 asks for, three collections: a FIFO of blocked senders (each remembering whether it
wants a reply), a FIFO of blocked receivers, and the table of owed replies (replier tid -> caller).
A second sender or receiver therefore queues instead of getting SEND_BLOCKING/RECV_BLOCKING and
spinning. Blocking uses trio's low-level park/reschedule, so a blocked thread costs nothing and
a killed thread's abort callback takes it (and its message) out cleanly.

The closed rule (spec §3.4): a rendezvous that only one reference still reaches has nobody on
the other side. Operations then fail with CLOSED, and every thread waiting inside is woken with
CLOSED (a waiting sender gets its message back). Unlike the seed, this also happens when a
process dies, and a receive on an orphaned rendezvous fails instead of blocking forever.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import outcome
import trio

from merriwig import abi
from merriwig.message import KMessage, deliver, release

if TYPE_CHECKING:
    from merriwig.process import Thread

Regs = tuple[int, int, int, int]
CLOSED_REGS: Regs = (abi.CLOSED, 0, 0, 0)
OK_REGS: Regs = (0, 0, 0, 0)
_reschedule = trio.lowlevel.reschedule
_current_task = trio.lowlevel.current_task
_wait = trio.lowlevel.wait_task_rescheduled
_SUCCEEDED = trio.lowlevel.Abort.SUCCEEDED
_Value = outcome.Value
_REPLY = abi.REPLY_EXPECTED


class Waiter:
    """A thread parked in a rendezvous, with what it is waiting for."""

    __slots__ = ("thread", "task", "msg", "want_reply", "where", "key")

    def __init__(self, thread: Thread | None, msg: KMessage | None = None, want_reply: bool = False):
        self.thread = thread
        self.task: Any = None
        self.msg = msg
        self.want_reply = want_reply
        self.where = ""  # "send", "recv" or "reply"
        self.key = 0  # for "reply": the tid that owes this waiter its reply


class Rendezvous:
    """One rendezvous object; handles in handle tables and mounts refer to it."""

    __slots__ = ("kernel", "id", "refs", "senders", "receivers", "replies", "server_pid", "orphaned", "__weakref__")

    def __init__(self, kernel: Any, refs: int = 0) -> None:
        self.kernel = kernel
        self.id = kernel.next_rendezvous_id()
        self.refs = refs
        self.senders: deque[Waiter] = deque()
        self.receivers: deque[Waiter] = deque()
        self.replies: dict[int, Waiter | None] = {}
        self.server_pid = 0  # the process that last received here: the one serving it
        self.orphaned = False  # that server died and nobody has received since
        kernel.rendezvous_live += 1

    def __repr__(self) -> str:
        return (
            f"<Rendezvous {self.id} refs={self.refs} senders={len(self.senders)} "
            f"receivers={len(self.receivers)} replies={len(self.replies)}>"
        )

    # ------------------------------------------------------------------ references
    def incref(self) -> None:
        self.refs += 1

    def decref(self) -> None:
        self.refs -= 1
        if self.refs <= 1:
            self._close_waiters()
        if self.refs == 0:
            self.kernel.rendezvous_live -= 1

    def _close_waiters(self) -> None:
        """Nobody is left on the other side: wake every waiter with CLOSED."""
        ctx = self.kernel.memctx
        kept: deque[Waiter] = deque()
        while self.senders:
            w = self.senders.popleft()
            assert w.msg is not None
            if w.thread is None:
                # A kernel-parked message (an exit notice) stays for the last holder to read.
                if self.refs > 0:
                    kept.append(w)
                else:
                    release(w.msg, ctx)
                continue
            _reschedule(w.task, _Value(deliver(w.thread.process, w.msg, abi.CLOSED)))
        self.senders = kept
        while self.receivers:
            _reschedule(self.receivers.popleft().task, _Value(CLOSED_REGS))
        replies = self.replies
        self.replies = {}
        for tid, caller in replies.items():
            owner = self.kernel.threads.get(tid)
            if owner is not None:
                owner.owes.discard(self)
            if caller is not None:
                _reschedule(caller.task, _Value(CLOSED_REGS))

    # ------------------------------------------------------------------ blocking
    async def _block(self, w: Waiter) -> Regs:
        w.task = _current_task()

        def abort(_raise_cancel: Any) -> Any:
            self._abort(w)
            return _SUCCEEDED

        regs: Regs = await _wait(abort)
        return regs

    def _abort(self, w: Waiter) -> None:
        """A waiting thread is being killed: take it (and its message) out."""
        if w.where == "send":
            try:
                self.senders.remove(w)
            except ValueError:
                pass
            if w.msg is not None:
                release(w.msg, self.kernel.memctx)
        elif w.where == "recv":
            try:
                self.receivers.remove(w)
            except ValueError:
                pass
        elif w.where == "reply" and self.replies.get(w.key) is w:
            self.replies[w.key] = None  # the replier's answer will be dropped

    def _served_by(self, t: Thread) -> None:
        """t's process took a message here: it is (now) the one serving this rendezvous. Only
        delivered messages count — a process that merely waited in receive serves nothing."""
        self.server_pid = t.process.pid
        self.orphaned = False

    def _owe(self, replier: Thread, client: Waiter) -> None:
        client.where = "reply"
        client.key = replier.tid
        self.replies[replier.tid] = client
        replier.owes.add(self)

    # ------------------------------------------------------------------ operations
    async def send(self, t: Thread, msg: KMessage, want_reply: bool) -> Regs:
        """send (want_reply False) or send_receive (True) from thread t."""
        if self.refs <= 1 or (self.orphaned and not self.receivers):
            return deliver(t.process, msg, abi.CLOSED)
        replies = self.replies
        if replies and t.tid in replies:
            # t owes a reply here: this message is it.
            client = replies.pop(t.tid)
            t.owes.discard(self)
            if client is None:  # the caller died while waiting
                release(msg, self.kernel.memctx)
                return CLOSED_REGS if want_reply else OK_REGS
            regs = deliver(client.thread.process, msg)  # type: ignore[union-attr]
            client.thread.last_sender = t  # type: ignore[union-attr]
            if want_reply:
                w = Waiter(t, None, True)
                self._owe(client.thread, w)  # type: ignore[arg-type]
                _reschedule(client.task, _Value((regs[0] | _REPLY, regs[1], regs[2], regs[3])))
                return await self._block(w)
            _reschedule(client.task, _Value(regs))
            return OK_REGS
        if self.receivers:
            r = self.receivers.popleft()
            self._served_by(r.thread)  # type: ignore[arg-type]
            regs = deliver(r.thread.process, msg)  # type: ignore[union-attr]
            r.thread.last_sender = t  # type: ignore[union-attr]
            if want_reply:
                w = Waiter(t, None, True)
                self._owe(r.thread, w)  # type: ignore[arg-type]
                _reschedule(r.task, _Value((regs[0] | _REPLY, regs[1], regs[2], regs[3])))
                return await self._block(w)
            _reschedule(r.task, _Value(regs))
            return OK_REGS
        w = Waiter(t, msg, want_reply)
        w.where = "send"
        self.senders.append(w)
        return await self._block(w)

    async def receive(self, t: Thread) -> Regs:
        """receive from thread t."""
        if self.replies and t.tid in self.replies:
            # t received a request and has not answered it: the protocol error the seed's
            # server framework detects (it then sends an ERROR reply to rescue the caller).
            return (abi.RECV_BLOCKING, 0, 0, 0)
        if self.senders:
            w = self.senders.popleft()
            assert w.msg is not None
            self._served_by(t)
            regs = deliver(t.process, w.msg)
            t.last_sender = w.thread
            w.msg = None
            if w.thread is not None:
                if w.want_reply:
                    self._owe(t, w)
                    return regs[0] | _REPLY, regs[1], regs[2], regs[3]
                _reschedule(w.task, _Value(OK_REGS))
            return regs
        if self.refs <= 1:
            return CLOSED_REGS
        w = Waiter(t)
        w.where = "recv"
        self.receivers.append(w)
        return await self._block(w)

    def kernel_send(self, msg: KMessage) -> None:
        """A message from the kernel itself (no sending thread): delivered or parked."""
        if self.receivers:
            r = self.receivers.popleft()
            r.thread.last_sender = None  # type: ignore[union-attr]
            _reschedule(r.task, _Value(deliver(r.thread.process, msg)))  # type: ignore[union-attr]
            return
        if self.refs == 0:
            release(msg, self.kernel.memctx)
            return
        w = Waiter(None, msg)
        w.where = "send"
        self.senders.append(w)

    def server_died(self) -> None:
        """The process serving this rendezvous died. Its mount (or another holder) may keep it
        referenced, so the closed rule would never fire: callers waiting for a receiver, and
        later callers until a new server receives here, get CLOSED instead of waiting forever."""
        self.orphaned = True
        kept: deque[Waiter] = deque()
        while self.senders:
            w = self.senders.popleft()
            if w.thread is None:
                kept.append(w)
                continue
            assert w.msg is not None
            _reschedule(w.task, _Value(deliver(w.thread.process, w.msg, abi.CLOSED)))
        self.senders = kept

    def replier_gone(self, tid: int) -> None:
        """Thread `tid` exits while owing a reply here: its caller gets CLOSED."""
        w = self.replies.pop(tid, None)
        if w is not None:
            _reschedule(w.task, _Value(CLOSED_REGS))

    @property
    def waiters(self) -> int:
        return len(self.senders) + len(self.receivers) + sum(1 for w in self.replies.values() if w)
