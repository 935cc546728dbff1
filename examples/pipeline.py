"""Three processes pass one memory chunk along: its pages move, nothing is copied.

`euralios run examples/pipeline.py`. The first stage writes into a chunk and sends it; each
sender then asks the kernel about its old address: the chunk is no longer in its address space
(freeing it gives DOUBLEFREE; touching it would be a page fault that kills the sender).
"""

from euralios.std import Handle, Memory, Message, SyscallError, abi

DATA = 2
HANDLE = 6


async def middle(proc):
    onward = (await proc.sys.receive(0)).d2.number  # the handle to the last stage
    msg = await proc.sys.receive(0)
    chunk = await proc.received(msg.d3)  # sized by the kernel, not by the sender
    text = chunk.read(0, msg.d2).decode() + f" -> middle(pid {proc.pid})"
    chunk.write(0, text.encode())
    await proc.sys.send(onward, Message(DATA, len(text), Memory(chunk.vaddr)))
    await report_gone(proc, chunk.vaddr, "middle")
    return 0


async def last(proc):
    msg = await proc.sys.receive(0)
    chunk = await proc.received(msg.d3)  # sized by the kernel, not by the sender
    text = chunk.read(0, msg.d2).decode() + f" -> last(pid {proc.pid})"
    await proc.print(f"last stage holds the chunk at {chunk.vaddr:#x}: {text}")
    await chunk.free()
    return 0


async def report_gone(proc, vaddr, who):
    try:
        await proc.sys.free(vaddr)
        await proc.print(f"{who}: the chunk is still here?!")
    except SyscallError as e:
        gone = "gone" if e.code == abi.DOUBLEFREE else f"error {e.code}"
        await proc.print(f"{who}: after sending, {vaddr:#x} is {gone} from my address space")


async def main(proc):
    a1, a2 = await proc.sys.new_rendezvous()  # first -> middle
    b1, b2 = await proc.sys.new_rendezvous()  # middle -> last
    c_last = await proc.exec(last, args=["last"], stdin=b2)
    c_mid = await proc.exec(middle, args=["middle"], stdin=a2)
    await proc.sys.send(a1, Message(HANDLE, Handle(b1)))
    chunk = await proc.malloc(4096)
    text = f"first(pid {proc.pid})"
    chunk.write(0, text.encode())
    await proc.sys.send(a1, Message(DATA, len(text), Memory(chunk.vaddr)))
    await report_gone(proc, chunk.vaddr, "first")
    await c_mid.wait()
    await c_last.wait()
    return 0
