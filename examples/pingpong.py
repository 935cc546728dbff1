"""Two processes exchange 10 000 messages over a rendezvous and print the rate.

`euralios run examples/pingpong.py [COUNT]`. The parent makes a rendezvous, starts a child
process with one end as the child's stdin, and calls it with send_receive; the child answers
each call. Every round trip is two context switches through the kernel.
"""

from euralios.std import Message

PING = 200
STOP = 201


async def ponger(proc):
    """The child: answer each PING with its number plus one, until STOP."""
    while True:
        msg = await proc.sys.receive(0)
        if msg.tag == STOP:
            await proc.sys.send(0, Message(STOP))
            return 0
        await proc.sys.send(0, Message(PING, msg.d2 + 1))


async def main(proc):
    count = int(proc.args[1]) if len(proc.args) > 1 else 10_000
    mine, theirs = await proc.sys.new_rendezvous()
    child = await proc.exec(ponger, args=["ponger"], stdin=theirs)
    t0 = proc.now()
    value = 0
    for _ in range(count):
        reply = await proc.sys.send_receive(mine, Message(PING, value))
        value = reply.d2
    await proc.sys.send_receive(mine, Message(STOP))
    elapsed = proc.now() - t0
    status = await child.wait()
    assert value == count, value
    await proc.print(f"{count} round trips in {elapsed:.3f} s: {count / elapsed:,.0f} round trips/s "
                     f"({elapsed / count * 1e6:.1f} us each); child exited {status}")
    return 0
