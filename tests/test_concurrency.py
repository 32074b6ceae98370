"""Many concurrent sampling requests through the real client, and a memory soak."""

from __future__ import annotations

import array
import asyncio
import contextlib
import os
import random
import resource

import numpy as np
from tinker import types
from tinker._client import AsyncTinker

import tinker_accel
from tinker_accel import encode_tokens, stock_dumps
from tinker_accel._loopback import FAKE_API_KEY, LoopbackServer

CONCURRENT_REQUESTS = 64
PROMPT_TOKENS = 8192


def make_requests() -> list[types.SampleRequest]:
    generator = random.Random(11)
    return [
        types.SampleRequest(
            prompt=types.ModelInput.from_ints(
                [generator.randrange(200_000) for _ in range(PROMPT_TOKENS)]
            ),
            sampling_params=types.SamplingParams(max_tokens=8, temperature=0.5 + index / 128),
            seq_id=index,
        )
        for index in range(CONCURRENT_REQUESTS)
    ]


async def send_concurrently(server: LoopbackServer, requests: list[types.SampleRequest]) -> None:
    async with AsyncTinker(base_url=server.base_url, api_key=FAKE_API_KEY, max_retries=0) as client:
        await asyncio.gather(*(client.sampling.asample(request=request) for request in requests))


def test_concurrent_accelerated_bodies_equal_stock() -> None:
    requests = make_requests()
    tinker_accel.enable()
    with LoopbackServer() as server:
        asyncio.run(send_concurrently(server, requests))
        received = server.bodies()
    tinker_accel.disable()

    assert len(received) == CONCURRENT_REQUESTS
    expected = {stock_dumps(request, exclude_none=True) for request in requests}
    # Arrival order is up to the event loop, so compare as sets of exact bodies.
    assert set(received) == expected


def test_soak_keeps_memory_flat() -> None:
    # TINKER_ACCEL_SOAK_CALLS raises the count for a longer run; CI uses the default.
    calls = int(os.environ.get("TINKER_ACCEL_SOAK_CALLS", "200000"))
    generator = np.random.default_rng(5)
    inputs: list[object] = [
        generator.integers(0, 151_936, 300).tolist(),
        tuple(generator.integers(0, 151_936, 300).tolist()),
        generator.integers(0, 151_936, 300).astype(np.int32),
        generator.integers(-(2**62), 2**62, 300).astype(">i8")[::-1],
        array.array("H", generator.integers(0, 65_535, 300).tolist()),
        range(1000, 1300),
        [2**70, -(2**70), True],
        # Larger outputs, which take the other output paths: a measured buffer and a
        # list written straight into its bytes object.
        generator.integers(0, 151_936, 40_000),
        generator.integers(0, 151_936, 20_000).tolist(),
    ]
    bad_inputs: list[object] = [[1, 2.5], np.zeros((2, 2), dtype=np.int32), "abc"]

    def run(count: int) -> None:
        for index in range(count):
            encode_tokens(inputs[index % len(inputs)])
            if index % 97 == 0:
                with contextlib.suppress(TypeError, ValueError):
                    encode_tokens(bad_inputs[index % len(bad_inputs)])

    run(calls // 10)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run(calls)
    growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    # A leak of even one byte per call would pass 200 KiB over the default run.
    assert growth_kib < 2048, f"peak RSS grew by {growth_kib} KiB over {calls} calls"
