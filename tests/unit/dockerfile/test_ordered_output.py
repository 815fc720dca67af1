"""The classic build stream of stages that run at once: in stage order, and held output kept off the heap."""
from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

from pyd.daemon.build.ordered import OrderedOutput


def run(coro):
    return asyncio.run(coro)


def test_a_later_stage_waits_for_the_earlier_and_nothing_is_lost(tmp_path: Path) -> None:
    out: list[dict] = []

    async def emit(m: dict) -> None:
        out.append(m)

    async def go() -> None:
        o = OrderedOutput(emit, str(tmp_path))
        for stage in (0, 1, 2):
            o.add(stage)
        await o.send(2, {"stream": "c1"})
        await o.send(0, {"stream": "a1"})
        await o.send(1, {"stream": "b1"})
        await o.send(None, {"aux": "build"})
        await o.finished(2)
        await o.send(0, {"stream": "a2"})
        await o.finished(0)               # stage 1's held output goes out, then it streams live
        await o.send(1, {"stream": "b2"})
        await o.finished(1)
    run(go())
    assert out == [{"stream": "a1"}, {"aux": "build"}, {"stream": "a2"}, {"stream": "b1"}, {"stream": "b2"},
                   {"stream": "c1"}]


def test_held_output_of_many_megabytes_goes_to_a_file(tmp_path: Path) -> None:
    line = "x" * 4000
    count = 0

    async def emit(m: dict) -> None:
        nonlocal count
        assert m == {"stream": line}
        count += 1

    async def go() -> int:
        o = OrderedOutput(emit, str(tmp_path))
        o.add(0)
        o.add(1)
        tracemalloc.start()
        for _ in range(4000):            # 16 MB held by stage 1 while stage 0 runs
            await o.send(1, {"stream": line})
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        await o.finished(0)
        await o.finished(1)
        return peak
    peak = run(go())
    assert count == 4000
    assert peak < 4 << 20, peak
