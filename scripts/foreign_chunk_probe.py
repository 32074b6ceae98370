"""Time the request body of a prompt whose chunk comes from a reloaded copy of tinker's
chunk module, with the accelerator off and on, and print the times as JSON.

scripts/matrix.py runs this inside each environment of a pydantic line >= 2.11, where
the stock path formats a union warning per token and so grows quadratically.
"""

from __future__ import annotations

import importlib
import json
import math
import random
import time
import warnings
from typing import Any

from tinker import types

import tinker_accel

SIZES = (250, 500, 1000)


def best_time(call: Any, repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def exponent(sizes: tuple[int, ...], seconds: list[float]) -> float:
    """Return the slope of log(time) over log(n), by least squares."""
    xs = [math.log(size) for size in sizes]
    ys = [math.log(value) for value in seconds]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    numerator = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    return numerator / sum((x - mean_x) ** 2 for x in xs)


def main() -> None:
    import tinker.types.encoded_text_chunk as module

    original = module.EncodedTextChunk
    importlib.reload(module)
    foreign_class = module.EncodedTextChunk
    module.EncodedTextChunk = original  # type: ignore[misc]
    generator = random.Random(11)
    requests = []
    for size in SIZES:
        chunk = foreign_class(tokens=[generator.randrange(150_000) for _ in range(size)])
        requests.append(
            types.SampleRequest(
                prompt=types.ModelInput.model_construct(chunks=[chunk]),
                sampling_params=types.SamplingParams(max_tokens=8),
                num_samples=1,
            )
        )
    warnings.simplefilter("ignore")
    stock = [
        best_time(lambda request=request: tinker_accel.stock_dumps(request, exclude_none=True), 2)
        for request in requests
    ]
    tinker_accel.enable()
    accelerated = [
        best_time(lambda request=request: tinker_accel.request_body(request), 20)
        for request in requests
    ]
    print(
        json.dumps(
            {
                "sizes": list(SIZES),
                "stock_seconds": stock,
                "accelerated_seconds": accelerated,
                "stock_exponent": exponent(SIZES, stock),
                "accelerated_exponent": exponent(SIZES, accelerated),
            }
        )
    )


if __name__ == "__main__":
    main()
