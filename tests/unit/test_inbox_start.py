"""core.net.inbox.start/finish: an eager first step, then the rest driven like a Task."""
from __future__ import annotations

import asyncio

import pytest

from core.net.inbox import finish, start


async def test_a_coroutine_without_a_wait_finishes_in_its_first_step():
    seen = []

    async def quick():
        seen.append("ran")

    assert start(quick()) is None and seen == ["ran"]


async def test_the_rest_runs_after_what_it_waits_on_with_results_and_errors():
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    seen = []

    async def two_waits():
        seen.append("first step")
        seen.append(await first)
        try:
            await second
        except KeyError as exc:
            seen.append(f"error {exc}")

    started = start(two_waits())
    assert started is not None and seen == ["first step"]
    driver = asyncio.ensure_future(finish(*started))
    first.set_result("result")
    await asyncio.sleep(0)
    second.set_exception(KeyError("x"))
    await asyncio.wait_for(driver, 5)
    assert seen == ["first step", "result", "error 'x'"]


async def test_cancelling_the_driver_cancels_the_coroutine():
    never = asyncio.get_running_loop().create_future()
    seen = []

    async def waits_forever():
        try:
            await never
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    driver = asyncio.ensure_future(finish(*start(waits_forever())))
    await asyncio.sleep(0)
    driver.cancel()
    with pytest.raises(asyncio.CancelledError):
        await driver
    assert seen == ["cancelled"]
