"""euralios.std.sync: threads of one process sleeping until another wakes them."""

from __future__ import annotations

from typing import Any

from euralios.std.sync import Channel, Condition, Wakeup


async def until(proc: Any, cond: Any) -> None:
    for _ in range(1000):
        if cond():
            return
        await proc.sys.yield_()
    raise AssertionError("never happened")


async def test_wakeup_wakes_sleepers_in_order_and_keeps_no_wake_for_nobody(guest: Any) -> None:
    async def body(proc: Any) -> None:
        w = await Wakeup.new(proc.sys)
        assert not await w.wake()  # nobody asleep: nothing is kept for later
        woken: list[int] = []

        async def sleeper(n: int) -> None:
            await w.sleep()
            woken.append(n)

        for n in (1, 2):
            await proc.spawn_thread(sleeper, n)
            await until(proc, lambda n=n: w.sleeping == n)
        assert await w.wake()
        await until(proc, lambda: woken == [1])
        assert w.sleeping == 1
        assert await w.wake()
        await until(proc, lambda: woken == [1, 2])
        assert w.sleeping == 0 and not await w.wake()

    await guest(body)


async def test_condition_wakes_only_waiters_whose_predicate_holds(guest: Any) -> None:
    async def body(proc: Any) -> None:
        state = {"a": False, "b": False}
        parks: list[float | None] = []

        async def timed_park() -> None:
            parks.append(cond.earliest_deadline())

        cond = Condition(proc.sys, proc.now, timed_park)
        results: dict[str, bool] = {}

        async def waiter(key: str, timeout: float | None) -> None:
            results[key] = await cond.wait_until(lambda: state[key], timeout)

        assert await cond.wait_until(lambda: True)  # already true: no waiting
        await proc.spawn_thread(waiter, "a", None)
        await proc.spawn_thread(waiter, "b", 0.05)
        await until(proc, lambda: len(cond) == 2)
        assert len(parks) == 1 and cond.earliest_deadline() is not None  # only the timed wait
        state["a"] = True
        assert await cond.notify() == 1
        await until(proc, lambda: results == {"a": True})
        await proc.sleep(0.1)
        assert await cond.notify() == 1  # b's deadline has passed
        await until(proc, lambda: results == {"a": True, "b": False})
        assert len(cond) == 0 and cond.earliest_deadline() is None

    await guest(body)


async def test_channel_hands_values_over_in_order_and_ends_with_none(guest: Any) -> None:
    async def body(proc: Any) -> list[int | None]:
        ch = await Channel.new(proc.sys)

        async def producer() -> None:
            for code in (0x1B9B41, 104, 0):
                await ch.put(code)
            await ch.put(None)

        await proc.spawn_thread(producer)
        return [await ch.get() for _ in range(4)]

    assert await guest(body) == [0x1B9B41, 104, 0, None]
