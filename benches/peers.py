"""Compare tinker-accel with other JSON encoders and with stock pydantic and tinker.

One run measures every section, prints a table per section to stdout and saves the
results, versions and machine details as JSON (``benches/results/latest.json`` unless
``--out`` names another file). ``benches/report.py`` turns that file into the README
tables and a plot. ``--quick`` runs tiny sizes with 3 samples per cell, so CI can check
that the benchmark still runs. Its numbers are too noisy to compare.

Every time is the best of N samples, with the garbage collector off while the samples
run. N adapts so that each cell takes about ``TARGET_SECONDS`` in full mode.
Consecutive calls cycle over several different inputs of the same size, so the branch
predictor cannot learn one array. Ratios are peer time divided by tinker-accel time, so
a ratio above 1 means tinker-accel is faster.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import datetime
import gc
import importlib
import json
import math
import multiprocessing
import os
import platform
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import orjson
import pydantic
import ujson
from pydantic import BaseModel

import tinker_accel
from tinker_accel import TokenIds, encode_floats, encode_tokens, request_body, stock_dumps
from tinker_accel._cli import _build_sample_request
from tinker_accel._data import default_prompts

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "benches" / "results" / "latest.json"

# Version of the JSON layout that report.py reads. Version 2 added the loop_lag
# section, version 3 the floats section.
SCHEMA_VERSION = 3

# Exclusive upper bounds of the uniform token IDs. IDs below 151,936 have 5.3 digits on
# average and IDs below 32,000 have 4.7, so the two ranges show what the digit count costs.
TOKEN_RANGES = (151936, 32000)

# Seconds of timed samples per cell in full mode. Warm-up and calibration add a little.
TARGET_SECONDS = 0.3
# Each sample times enough consecutive calls to last at least this long, so that the
# cost of reading the clock (tens of ns, more on some virtual machines) stays below 1%.
MIN_SAMPLE_NS = 20_000
MIN_SAMPLES = 5
QUICK_SAMPLES = 3

# The stock body with a foreign chunk grows quadratically. It took about 1 s at 2,000
# tokens on a 2 vCPU AMD EPYC with pydantic 2.14.4, so few samples are taken.
FOREIGN_STOCK_SAMPLES = 3

SEED = 20240601


@dataclass(frozen=True)
class Settings:
    """Sizes and sample counts of one run."""

    mode: str
    list_sizes: tuple[int, ...]
    tinker_sizes: tuple[int, ...]
    foreign_accelerated_size: int
    foreign_stock_sizes: tuple[int, ...]
    thread_size: int
    thread_seconds: float
    thread_rounds: int
    memory_size: int
    lag_tasks: int
    lag_prompt_tokens: int
    lag_rounds: int
    variants: int
    fixed_samples: int | None

    @property
    def quick(self) -> bool:
        return self.mode == "quick"


FULL = Settings(
    mode="full",
    list_sizes=(1024, 8192, 32768, 131072, 1048576),
    tinker_sizes=(1024, 8192, 32768, 131072),
    foreign_accelerated_size=8192,
    foreign_stock_sizes=(250, 500, 1000, 2000),
    thread_size=1048576,
    thread_seconds=1.0,
    thread_rounds=3,
    memory_size=1048576,
    lag_tasks=64,
    lag_prompt_tokens=8192,
    lag_rounds=5,
    variants=4,
    fixed_samples=None,
)

QUICK = Settings(
    mode="quick",
    list_sizes=(1024, 8192),
    tinker_sizes=(1024,),
    foreign_accelerated_size=1024,
    foreign_stock_sizes=(100, 200),
    thread_size=65536,
    thread_seconds=0.05,
    thread_rounds=1,
    memory_size=65536,
    lag_tasks=8,
    lag_prompt_tokens=1024,
    lag_rounds=1,
    variants=2,
    fixed_samples=QUICK_SAMPLES,
)


class BenchError(Exception):
    """Two tools produced different output for the same input, so their times are not
    comparable."""


# ---------------------------------------------------------------------------
# Timing


def best_ns_per_call(
    function: Callable[[Any], object],
    inputs: Sequence[Any],
    settings: Settings,
    samples: int | None = None,
) -> float:
    """Time ``function`` on ``inputs`` in turn and return the best time per call in ns.

    ``samples`` fixes the number of samples. Without it, quick mode takes
    ``QUICK_SAMPLES`` and full mode as many as fit in ``TARGET_SECONDS``.
    """
    for item in inputs:
        function(item)
    start = time.perf_counter_ns()
    for item in inputs:
        function(item)
    per_call_ns = max((time.perf_counter_ns() - start) / len(inputs), 1.0)

    # A sample always covers whole cycles over the inputs.
    cycles_per_sample = max(1, math.ceil(MIN_SAMPLE_NS / (per_call_ns * len(inputs))))
    sample_inputs = list(inputs) * cycles_per_sample
    if samples is None:
        samples = settings.fixed_samples
    if samples is None:
        sample_ns = per_call_ns * len(sample_inputs)
        samples = max(MIN_SAMPLES, round(TARGET_SECONDS * 1e9 / sample_ns))

    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        best = math.inf
        for _ in range(samples):
            start = time.perf_counter_ns()
            for item in sample_inputs:
                function(item)
            best = min(best, (time.perf_counter_ns() - start) / len(sample_inputs))
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def require_same_output(comparison: str, outputs: dict[str, bytes]) -> None:
    """Raise BenchError unless every tool in ``outputs`` wrote the same bytes."""
    reference_name, reference = next(iter(outputs.items()))
    for name, output in outputs.items():
        if output != reference:
            raise BenchError(
                f"{comparison}: {name} wrote {len(output)} bytes that differ from the "
                f"{len(reference)} bytes of {reference_name} (first bytes {output[:40]!r} "
                f"vs {reference[:40]!r})"
            )


def random_arrays(token_range: int, n: int, count: int, seed: int) -> list[np.ndarray]:
    """Return ``count`` different int64 arrays of ``n`` token IDs uniform in [0, token_range)."""
    generator = np.random.default_rng(seed)
    return [generator.integers(0, token_range, n, dtype=np.int64) for _ in range(count)]


def rotations(tokens: list[int], count: int) -> list[list[int]]:
    """Return ``count`` rotations of ``tokens``: different orders of the same real IDs."""
    step = max(1, len(tokens) // count)
    return [tokens[i * step :] + tokens[: i * step] for i in range(count)]


def format_range(token_range: int) -> str:
    return f"[0, {token_range})"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[_format_cell(value) for value in row] for row in rows]
    widths = [
        max([len(header)] + [len(row[i]) for row in cells]) for i, header in enumerate(headers)
    ]
    print(f"\n{title}")
    print("  ".join(header.rjust(width) for header, width in zip(headers, widths, strict=True)))
    for row in cells:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    sys.stdout.flush()


def _format_cell(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


# ---------------------------------------------------------------------------
# 1. Lists


def list_encoders() -> dict[str, Callable[[Any], bytes]]:
    """Return each tool that encodes a list of ints to compact JSON bytes, by name."""
    msgspec_encoder = msgspec.json.Encoder()
    return {
        "encode_tokens": encode_tokens,
        "orjson": orjson.dumps,
        "msgspec": msgspec_encoder.encode,
        "ujson": lambda tokens: ujson.dumps(tokens).encode(),
        "json": lambda tokens: json.dumps(tokens, separators=(",", ":")).encode(),
    }


def bench_lists(settings: Settings) -> dict[str, Any]:
    encoders = list_encoders()
    peers = [name for name in encoders if name != "encode_tokens"]
    rows: list[dict[str, Any]] = []
    for token_range in TOKEN_RANGES:
        for n in settings.list_sizes:
            progress(f"lists: {format_range(token_range)}, n={n:,}")
            arrays = random_arrays(token_range, n, settings.variants, SEED + n)
            inputs = [values.tolist() for values in arrays]
            require_same_output(
                f"list of {n:,} tokens",
                {name: encode(inputs[0]) for name, encode in encoders.items()},
            )
            ns_per_token = {
                name: round(best_ns_per_call(encode, inputs, settings) / n, 3)
                for name, encode in encoders.items()
            }
            ours = ns_per_token["encode_tokens"]
            rows.append(
                {
                    "token_range": token_range,
                    "n": n,
                    "ns_per_token": ns_per_token,
                    "speedup": {name: round(ns_per_token[name] / ours, 3) for name in peers},
                }
            )

    print_table(
        "1. Lists: ns per token, and how many times faster encode_tokens is than each peer",
        ["token IDs", "n", *encoders, *(f"vs {name}" for name in peers)],
        [
            [
                format_range(row["token_range"]),
                row["n"],
                *row["ns_per_token"].values(),
                *row["speedup"].values(),
            ]
            for row in rows
        ],
    )
    return {"tools": list(encoders), "rows": rows}


# ---------------------------------------------------------------------------
# 2. Buffers


def orjson_numpy(values: np.ndarray) -> bytes:
    return orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)


def orjson_tolist(values: array.array[int]) -> bytes:
    return orjson.dumps(values.tolist())


# Each buffer input: its name, how it is built from an int64 array, the peer that the
# encoder is compared with, and the peer's label. No peer reads array.array, so the
# peer there converts to a list first.
BUFFER_INPUTS: tuple[tuple[str, Callable[[np.ndarray], Any], Callable[[Any], bytes], str], ...] = (
    ("numpy int32", lambda values: values.astype(np.int32), orjson_numpy, "orjson numpy"),
    ("numpy int64", lambda values: values.copy(), orjson_numpy, "orjson numpy"),
    (
        "array('i')",
        lambda values: array.array("i", values.astype(np.int32).tobytes()),
        orjson_tolist,
        "orjson(tolist())",
    ),
)


def bench_buffers(settings: Settings) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for token_range in TOKEN_RANGES:
        for n in settings.list_sizes:
            progress(f"buffers: {format_range(token_range)}, n={n:,}")
            arrays = random_arrays(token_range, n, settings.variants, SEED + n)
            for input_name, build, peer, peer_name in BUFFER_INPUTS:
                inputs = [build(values) for values in arrays]
                require_same_output(
                    f"{input_name} of {n:,} tokens",
                    {"encode_tokens": encode_tokens(inputs[0]), peer_name: peer(inputs[0])},
                )
                ours = best_ns_per_call(encode_tokens, inputs, settings) / n
                theirs = best_ns_per_call(peer, inputs, settings) / n
                rows.append(
                    {
                        "token_range": token_range,
                        "n": n,
                        "input": input_name,
                        "peer": peer_name,
                        "encode_tokens_ns_per_token": round(ours, 3),
                        "peer_ns_per_token": round(theirs, 3),
                        "speedup": round(theirs / ours, 3),
                    }
                )

    print_table(
        "2. Buffers: ns per token, encode_tokens and the peer",
        ["token IDs", "n", "input", "encode_tokens", "peer", "peer ns", "speedup"],
        [
            [
                format_range(row["token_range"]),
                row["n"],
                row["input"],
                row["encode_tokens_ns_per_token"],
                row["peer"],
                row["peer_ns_per_token"],
                row["speedup"],
            ]
            for row in rows
        ],
    )
    return {"rows": rows}


# ---------------------------------------------------------------------------
# 2b. Floats


def float_values(n: int, count: int, seed: int) -> list[np.ndarray]:
    """Return ``count`` float64 arrays like the per-token values of an RL step:
    log-probabilities (negative, long shortest forms) and advantages (normal)."""
    generator = np.random.default_rng(seed)
    arrays = []
    for index in range(count):
        if index % 2 == 0:
            arrays.append(-generator.exponential(2.0, n))
        else:
            arrays.append(generator.standard_normal(n))
    return arrays


def json_floats(values: Any) -> bytes:
    """Encode as the stock path does: json.dumps of Python floats, compact, NaN refused."""
    if not isinstance(values, list):
        values = values.tolist()
    return json.dumps(values, separators=(",", ":"), allow_nan=False).encode()


FLOAT_INPUTS: tuple[tuple[str, Callable[[np.ndarray], Any]], ...] = (
    ("list", lambda values: values.tolist()),
    ("numpy float64", lambda values: values.copy()),
    ("numpy float32", lambda values: values.astype(np.float32)),
    ("array('d')", lambda values: array.array("d", values.tobytes())),
)


def float_peers(input_name: str) -> dict[str, Callable[[Any], bytes]]:
    peers: dict[str, Callable[[Any], bytes]] = {"json": json_floats}
    if input_name.startswith("numpy"):
        peers["orjson"] = orjson_numpy
    elif input_name == "list":
        peers["orjson"] = orjson.dumps
        encoder = msgspec.json.Encoder()
        peers["msgspec"] = encoder.encode
    else:
        peers["orjson"] = lambda values: orjson.dumps(values.tolist())
    return peers


SLOWER_FLOAT_PATHS = ("avx2", "scalar")


def float_path_ns(path: str, inputs: Sequence[Any], settings: Settings) -> float | None:
    """Return ns per call of encode_floats forced onto ``path``, or None where this
    CPU or backend lacks it."""
    force = getattr(_native_module(), "_force_float_path", None)
    if force is None:
        return None
    try:
        force(path)
    except ValueError:
        return None
    try:
        return best_ns_per_call(encode_floats, inputs, settings)
    finally:
        force(None)


def _native_module() -> Any:
    try:
        from tinker_accel import _native
    except ImportError:
        return None
    return _native


def bench_floats(settings: Settings) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for n in settings.tinker_sizes:
        progress(f"floats: n={n:,}")
        arrays = float_values(n, settings.variants, SEED + n)
        for input_name, build in FLOAT_INPUTS:
            inputs = [build(values) for values in arrays]
            peers = float_peers(input_name)
            # Byte-identical to the stock path, which orjson and msgspec are not.
            require_same_output(
                f"{input_name} of {n:,} floats",
                {"json": json_floats(inputs[0]), "encode_floats": encode_floats(inputs[0])},
            )
            ours = best_ns_per_call(encode_floats, inputs, settings) / n
            row: dict[str, Any] = {"n": n, "input": input_name, "encode_floats_ns": round(ours, 2)}
            for peer_name, peer in peers.items():
                theirs = best_ns_per_call(peer, inputs, settings) / n
                row[f"{peer_name}_ns"] = round(theirs, 2)
                row[f"vs_{peer_name}"] = round(theirs / ours, 3)
            # The slower paths that CPUs without AVX-512 IFMA and VBMI take.
            for path in SLOWER_FLOAT_PATHS:
                path_ns = float_path_ns(path, inputs, settings)
                if path_ns is not None:
                    row[f"{path}_ns"] = round(path_ns / n, 2)
                    row[f"{path}_vs_orjson"] = round(row["orjson_ns"] / (path_ns / n), 3)
            rows.append(row)

    print_table(
        "2b. Floats: ns per value, and how many times faster encode_floats is than each peer",
        ["n", "input", "encode_floats", "orjson", "msgspec", "json", "vs orjson", "vs msgspec",
         "vs json", "avx2", "avx2 vs orjson", "scalar", "scalar vs orjson"],
        [
            [row["n"], row["input"], row["encode_floats_ns"], row.get("orjson_ns", "-"),
             row.get("msgspec_ns", "-"), row["json_ns"], row.get("vs_orjson", "-"),
             row.get("vs_msgspec", "-"), row["vs_json"], row.get("avx2_ns", "-"),
             row.get("avx2_vs_orjson", "-"), row.get("scalar_ns", "-"),
             row.get("scalar_vs_orjson", "-")]
            for row in rows
        ],
    )  # fmt: skip
    return {"rows": rows}


# ---------------------------------------------------------------------------
# 3. Tinker request body


def stock_body(request: BaseModel) -> bytes:
    return stock_dumps(request, exclude_none=True)


def real_prompts(sizes: Sequence[int]) -> dict[int, list[int]]:
    """Return, for each size, the default conversation prompt closest to it.

    The prompts are real o200k_base token IDs, the data of ``tinker-accel bench``, and
    their lengths are a few tokens short of the powers of two they aim for.
    """
    prompts = default_prompts(max(max(sizes), 1024))
    return {size: min(prompts, key=lambda prompt: abs(len(prompt) - size)) for size in sizes}


def bench_tinker_body(settings: Settings) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for tokens in real_prompts(settings.tinker_sizes).values():
        n = len(tokens)
        progress(f"tinker body: n={n:,}")
        token_lists = rotations(tokens, settings.variants)
        requests = [_build_sample_request(values, seq_id=0) for values in token_lists]

        tinker_accel.disable()
        stock_output = stock_body(requests[0])
        stock_ns = best_ns_per_call(stock_body, requests, settings)
        tinker_accel.enable()
        try:
            require_same_output(
                f"request body of {n:,} tokens",
                {"stock": stock_output, "request_body": request_body(requests[0])},
            )
            accelerated_ns = best_ns_per_call(request_body, requests, settings)
            encode_ns = best_ns_per_call(encode_tokens, token_lists, settings)
        finally:
            tinker_accel.disable()
        rows.append(
            {
                "n": n,
                "stock_us": round(stock_ns / 1000, 3),
                "accelerated_us": round(accelerated_ns / 1000, 3),
                "encode_tokens_us": round(encode_ns / 1000, 3),
                "speedup": round(stock_ns / accelerated_ns, 3),
                "accelerated_over_encode_tokens": round(accelerated_ns / encode_ns, 3),
            }
        )

    print_table(
        "3. Tinker SampleRequest body (real o200k_base tokens), µs per body",
        ["n", "stock", "request_body", "encode_tokens", "speedup", "body / encode"],
        [
            [
                row["n"],
                row["stock_us"],
                row["accelerated_us"],
                row["encode_tokens_us"],
                row["speedup"],
                row["accelerated_over_encode_tokens"],
            ]
            for row in rows
        ],
    )
    return {"rows": rows}


# ---------------------------------------------------------------------------
# 4. pydantic


class SequenceModel(BaseModel):
    tokens: Sequence[int]


class TokenIdsModel(BaseModel):
    tokens: TokenIds


def dump_json_mode(model: BaseModel) -> Any:
    return model.model_dump(mode="json")


def dump_json(model: BaseModel) -> str:
    return model.model_dump_json()


PYDANTIC_METHODS: tuple[tuple[str, Callable[[BaseModel], Any]], ...] = (
    ('model_dump(mode="json")', dump_json_mode),
    ("model_dump_json()", dump_json),
)


def bench_pydantic(settings: Settings) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for n in settings.tinker_sizes:
        progress(f"pydantic: n={n:,}")
        token_lists = [
            values.tolist() for values in random_arrays(TOKEN_RANGES[0], n, settings.variants, SEED)
        ]
        stock_models = [SequenceModel(tokens=values) for values in token_lists]
        fast_models = [TokenIdsModel(tokens=values) for values in token_lists]
        for method_name, method in PYDANTIC_METHODS:
            if method(stock_models[0]) != method(fast_models[0]):
                raise BenchError(f"{method_name} differs between Sequence[int] and TokenIds")
            stock_ns = best_ns_per_call(method, stock_models, settings)
            fast_ns = best_ns_per_call(method, fast_models, settings)
            rows.append(
                {
                    "n": n,
                    "method": method_name,
                    "sequence_us": round(stock_ns / 1000, 3),
                    "token_ids_us": round(fast_ns / 1000, 3),
                    "speedup": round(stock_ns / fast_ns, 3),
                }
            )

    print_table(
        "4. pydantic: a tokens field typed Sequence[int] vs TokenIds, µs per call",
        ["n", "method", "Sequence[int]", "TokenIds", "speedup"],
        [
            [row[key] for key in ("n", "method", "sequence_us", "token_ids_us", "speedup")]
            for row in rows
        ],
    )
    return {"rows": rows}


# ---------------------------------------------------------------------------
# 5. Foreign chunk


def load_foreign_chunk_class() -> type[BaseModel]:
    """Return a second copy of tinker's EncodedTextChunk, like those notebook autoreload
    leaves behind.

    The module attribute is restored, so only chunks built from the returned class are
    foreign to tinker's chunk union.
    """
    import tinker.types.encoded_text_chunk as module

    original = module.EncodedTextChunk
    try:
        importlib.reload(module)
        copy: type[BaseModel] = module.EncodedTextChunk
    finally:
        module.EncodedTextChunk = original  # type: ignore[misc]
    return copy


def with_foreign_chunk(request: Any, chunk_class: type[BaseModel]) -> Any:
    """Return a copy of ``request`` whose one prompt chunk is an instance of ``chunk_class``."""
    from tinker.types import ModelInput

    (chunk,) = request.prompt.chunks
    prompt = ModelInput.model_construct(chunks=[chunk_class(tokens=chunk.tokens)])
    return request.model_copy(update={"prompt": prompt})


def log_log_slope(points: Sequence[tuple[float, float]]) -> float:
    """Fit time = c * n**k by least squares on logarithms and return k."""
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(t) for _, t in points]
    x_mean = sum(xs) / len(xs)
    y_mean = sum(ys) / len(ys)
    covariance = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True))
    variance = sum((x - x_mean) ** 2 for x in xs)
    return covariance / variance


def bench_foreign_chunk(settings: Settings) -> dict[str, Any]:
    foreign_class = load_foreign_chunk_class()
    sizes = (settings.foreign_accelerated_size, *settings.foreign_stock_sizes)
    # The last default prompt falls a few tokens short of max_tokens, hence the margin.
    prompt = default_prompts(2 * max(*sizes, 1024))[-1]
    if len(prompt) < max(sizes):
        raise BenchError(
            f"the default prompt has {len(prompt):,} tokens, fewer than {max(sizes):,}"
        )

    n = settings.foreign_accelerated_size
    progress(f"foreign chunk, accelerated: n={n:,}")
    normal = [
        _build_sample_request(values[:n], seq_id=0)
        for values in rotations(prompt, settings.variants)
    ]
    foreign = [with_foreign_chunk(request, foreign_class) for request in normal]
    tinker_accel.enable()
    try:
        require_same_output(
            f"request body with a foreign chunk of {n:,} tokens",
            {"normal": request_body(normal[0]), "foreign": request_body(foreign[0])},
        )
        normal_ns = best_ns_per_call(request_body, normal, settings)
        foreign_ns = best_ns_per_call(request_body, foreign, settings)
    finally:
        tinker_accel.disable()
    accelerated = {
        "n": n,
        "normal_us": round(normal_ns / 1000, 3),
        "foreign_us": round(foreign_ns / 1000, 3),
        "ratio": round(foreign_ns / normal_ns, 3),
    }

    stock_rows: list[dict[str, Any]] = []
    for n in settings.foreign_stock_sizes:
        progress(f"foreign chunk, stock: n={n:,}")
        normal_request = _build_sample_request(prompt[:n], seq_id=0)
        foreign_request = with_foreign_chunk(normal_request, foreign_class)
        samples = 1 if settings.quick else FOREIGN_STOCK_SAMPLES
        # pydantic >= 2.11 warns once per token that the chunk matches no union member.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            require_same_output(
                f"stock body with a foreign chunk of {n:,} tokens",
                {"normal": stock_body(normal_request), "foreign": stock_body(foreign_request)},
            )
            foreign_ns = best_ns_per_call(stock_body, [foreign_request], settings, samples)
        normal_ns = best_ns_per_call(stock_body, [normal_request], settings)
        stock_rows.append(
            {
                "n": n,
                "foreign_us": round(foreign_ns / 1000, 3),
                "normal_us": round(normal_ns / 1000, 3),
                "slowdown": round(foreign_ns / normal_ns, 3),
                "foreign_ns_per_token": round(foreign_ns / n, 3),
            }
        )
    exponent = log_log_slope([(row["n"], row["foreign_us"]) for row in stock_rows])

    print_table(
        "5a. Foreign chunk, accelerator on: request_body µs",
        ["n", "normal chunk", "foreign chunk", "foreign / normal"],
        [[accelerated[key] for key in ("n", "normal_us", "foreign_us", "ratio")]],
    )
    print_table(
        f"5b. Foreign chunk, accelerator off: stock body µs (time grows as n^{exponent:.2f})",
        ["n", "foreign chunk", "normal chunk", "slowdown", "foreign ns/token"],
        [
            [
                row[key]
                for key in ("n", "foreign_us", "normal_us", "slowdown", "foreign_ns_per_token")
            ]
            for row in stock_rows
        ],
    )
    return {"accelerated": accelerated, "stock": stock_rows, "stock_exponent": round(exponent, 3)}


# ---------------------------------------------------------------------------
# 6. Threads


def tokens_per_second(inputs_per_thread: Sequence[Sequence[Any]], n: int, seconds: float) -> float:
    """Run one thread per entry of ``inputs_per_thread``, each calling encode_tokens on its
    inputs in turn until ``seconds`` have passed, and return the tokens encoded per second
    by all threads together."""
    counts = [0] * len(inputs_per_thread)
    barrier = threading.Barrier(len(inputs_per_thread) + 1)
    deadline = 0.0

    def work(index: int) -> None:
        inputs = inputs_per_thread[index]
        calls = 0
        barrier.wait()
        while time.perf_counter() < deadline:
            encode_tokens(inputs[calls % len(inputs)])
            calls += 1
        counts[index] = calls

    threads = [threading.Thread(target=work, args=(index,)) for index in range(len(counts))]
    for thread in threads:
        thread.start()
    # Every thread reads the deadline only after the barrier, which this thread passes last.
    start = time.perf_counter()
    deadline = start + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    # The last call of each thread ends after the deadline, so the wall time is measured
    # up to the join rather than taken as `seconds`.
    elapsed = time.perf_counter() - start
    return sum(counts) * n / elapsed


def bench_threads(settings: Settings) -> dict[str, Any]:
    n = settings.thread_size
    arrays = random_arrays(TOKEN_RANGES[0], n, 4, SEED)
    inputs_by_kind: dict[str, list[Any]] = {
        "numpy int32": [values.astype(np.int32) for values in arrays],
        "list": [values.tolist() for values in arrays],
    }
    rows: list[dict[str, Any]] = []
    for kind, inputs in inputs_by_kind.items():
        progress(f"threads: {kind}, n={n:,}")
        for values in inputs:
            encode_tokens(values)
        gc.collect()
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            one_thread = max(
                tokens_per_second([inputs[:2]], n, settings.thread_seconds)
                for _ in range(settings.thread_rounds)
            )
            two_threads = max(
                tokens_per_second([inputs[:2], inputs[2:]], n, settings.thread_seconds)
                for _ in range(settings.thread_rounds)
            )
        finally:
            if gc_was_enabled:
                gc.enable()
        rows.append(
            {
                "input": kind,
                "n": n,
                "one_thread_mtokens_per_s": round(one_thread / 1e6, 3),
                "two_threads_mtokens_per_s": round(two_threads / 1e6, 3),
                "scaling": round(two_threads / one_thread, 3),
            }
        )

    print_table(
        "6. Threads: million tokens per second, 1 thread vs 2 threads",
        ["input", "n", "1 thread", "2 threads", "scaling"],
        [
            [
                row[key]
                for key in (
                    "input",
                    "n",
                    "one_thread_mtokens_per_s",
                    "two_threads_mtokens_per_s",
                    "scaling",
                )
            ]
            for row in rows
        ],
    )
    return {"rows": rows}


# ---------------------------------------------------------------------------
# 7. Memory

MEMORY_TOOLS: dict[str, Callable[[Any], bytes]] = {
    "encode_tokens": encode_tokens,
    "orjson": lambda tokens: orjson.dumps(tokens, option=orjson.OPT_SERIALIZE_NUMPY),
}
MEMORY_INPUTS = ("list", "numpy int32")


def memory_status_bytes() -> dict[str, int]:
    """Return the current (VmRSS) and peak (VmHWM) resident set size of this process.

    The peak comes from /proc/self/status rather than getrusage's ru_maxrss, because
    Linux carries ru_maxrss over from the parent across fork and exec: a probe started
    by a benchmark process of 1 GB would report at least 1 GB and never grow.
    """
    sizes = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                kib, unit = value.split()
                assert unit == "kB", line
                sizes[key] = int(kib) * 1024
    return sizes


def probe_memory(tool: str, input_kind: str, n: int) -> dict[str, Any]:
    """Measure the peak resident memory that one call adds, in this fresh process.

    The input is built without temporary copies, because a copy freed before the call
    would leave the peak above the current size and hide part of the call's memory.
    ``headroom_bytes`` reports that gap, which should be close to 0.
    """
    import random

    encode = MEMORY_TOOLS[tool]
    if input_kind == "list":
        generator = random.Random(SEED)
        tokens: Any = [generator.randrange(TOKEN_RANGES[0]) for _ in range(n)]
    else:
        tokens = np.random.default_rng(SEED).integers(0, TOKEN_RANGES[0], n, dtype=np.int32)
    encode(tokens[:16])
    gc.collect()

    before = memory_status_bytes()
    output = encode(tokens)
    after = memory_status_bytes()
    increase = after["VmHWM"] - before["VmHWM"]
    return {
        "tool": tool,
        "input": input_kind,
        "n": n,
        "output_bytes": len(output),
        "peak_increase_bytes": increase,
        "increase_per_output_byte": round(increase / len(output), 3),
        "headroom_bytes": before["VmHWM"] - before["VmRSS"],
    }


def bench_memory(settings: Settings) -> dict[str, Any]:
    if not Path("/proc/self/status").exists():
        raise BenchError("the memory section needs Linux, because it reads /proc/self/status")
    rows: list[dict[str, Any]] = []
    for input_kind in MEMORY_INPUTS:
        for tool in MEMORY_TOOLS:
            progress(f"memory: {tool}, {input_kind}, n={settings.memory_size:,}")
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--memory-probe",
                tool,
                input_kind,
                str(settings.memory_size),
            ]
            completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
            if completed.returncode != 0:
                raise BenchError(
                    f"the memory probe for {tool} on a {input_kind} failed with exit status "
                    f"{completed.returncode}: {completed.stderr.strip()}"
                )
            rows.append(json.loads(completed.stdout))

    print_table(
        "7. Peak extra memory of one call, in a fresh process",
        ["tool", "input", "n", "output bytes", "peak increase", "per output byte", "headroom"],
        [
            [
                row[key]
                for key in (
                    "tool",
                    "input",
                    "n",
                    "output_bytes",
                    "peak_increase_bytes",
                    "increase_per_output_byte",
                    "headroom_bytes",
                )
            ]
            for row in rows
        ],
    )
    return {"rows": rows}


# ---------------------------------------------------------------------------
# 8. Event loop lag

# The ticker task sleeps this long at a time. Its lag is how much later than that it wakes up.
LAG_TICK_SECONDS = 0.001
LAG_CLIENTS = ("stock", "accelerated")
LAG_COLUMNS = ("client", "wall_ms", "max_lag_ms", "p99_lag_ms", "mean_lag_ms", "ticks")
# Seconds to wait for the loopback server process to start or to return the bodies.
LOOPBACK_PROCESS_TIMEOUT_SECONDS = 60


def serve_loopback(connection: Connection) -> None:
    """Run a LoopbackServer in this child process and send its base URL. Then reply to each
    "bodies" message with the sample bodies received since the previous one, until "stop"."""
    from tinker_accel._loopback import LoopbackServer

    with LoopbackServer() as server:
        connection.send(server.base_url)
        while connection.recv() == "bodies":
            connection.send(server.bodies())
            server.clear()


class LoopbackProcess:
    """A LoopbackServer in a child process, used as a context manager.

    In the benchmark's own process, the server threads would hold the GIL while they
    parse and validate every body, and the event loop under test would wait for them.
    A remote tinker service takes no GIL time from the client.
    """

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child_connection = context.Pipe()
        self._process = context.Process(
            target=serve_loopback, args=(child_connection,), name="loopback-server", daemon=True
        )
        self.base_url = ""

    def __enter__(self) -> LoopbackProcess:
        self._process.start()
        self.base_url = self._receive("the base URL")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process.is_alive():
            # The server process may already have failed, so the pipe may be closed.
            with contextlib.suppress(OSError):
                self._connection.send("stop")
        self._process.join(LOOPBACK_PROCESS_TIMEOUT_SECONDS)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._connection.close()

    def take_bodies(self) -> list[bytes]:
        """Return the sample bodies the server received since the previous call."""
        self._connection.send("bodies")
        bodies: list[bytes] = self._receive("the request bodies")
        return bodies

    def _receive(self, expected_reply: str) -> Any:
        if not self._connection.poll(LOOPBACK_PROCESS_TIMEOUT_SECONDS):
            raise BenchError(
                f"timed out after {LOOPBACK_PROCESS_TIMEOUT_SECONDS} s waiting for the "
                f"loopback server process to send {expected_reply}"
            )
        try:
            return self._connection.recv()
        except EOFError:
            self._process.join(LOOPBACK_PROCESS_TIMEOUT_SECONDS)
            raise BenchError(
                f"the loopback server process exited with status {self._process.exitcode} "
                f"before it sent {expected_reply}. Its error is above."
            ) from None


async def send_with_ticker(client: Any, requests: Sequence[Any]) -> tuple[float, list[float]]:
    """Send each request in its own task while a ticker task on the same loop sleeps
    ``LAG_TICK_SECONDS`` at a time, and return the wall time of the requests and the lag
    of every tick, in seconds."""
    lags: list[float] = []
    finished = asyncio.Event()

    async def tick() -> None:
        while not finished.is_set():
            expected = time.perf_counter() + LAG_TICK_SECONDS
            await asyncio.sleep(LAG_TICK_SECONDS)
            lags.append(time.perf_counter() - expected)

    ticker = asyncio.create_task(tick())
    # One pass of the loop lets the ticker start its first sleep before the requests run.
    await asyncio.sleep(0)
    start = time.perf_counter()
    tasks = [asyncio.create_task(client.sampling.asample(request=request)) for request in requests]
    try:
        await asyncio.gather(*tasks)
    finally:
        wall_seconds = time.perf_counter() - start
        finished.set()
        # After a failed request, gather returns while the other tasks still run, so they
        # are cancelled here rather than left to fail when the client closes.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ticker
    return wall_seconds, lags


def lag_stats(wall_seconds: float, lags: Sequence[float]) -> dict[str, Any]:
    """Return the wall time and the max, p99 and mean tick lag of one batch, in ms."""
    lags_ms = np.asarray(lags) * 1000
    return {
        "wall_ms": wall_seconds * 1000,
        "max_lag_ms": float(lags_ms.max()),
        "p99_lag_ms": float(np.percentile(lags_ms, 99)),
        "mean_lag_ms": float(lags_ms.mean()),
        "ticks": len(lags),
    }


def require_same_bodies(
    client_name: str, bodies: list[bytes], reference: list[bytes], n: int
) -> None:
    """Raise BenchError unless ``bodies`` and ``reference`` are the same sorted bodies."""
    if len(bodies) != len(reference):
        raise BenchError(
            f"the loopback server received {len(bodies)} sample bodies from the {client_name} "
            f"client, expected {len(reference)}"
        )
    for index, (body, expected) in enumerate(zip(bodies, reference, strict=True)):
        require_same_output(
            f"sorted request body {index} of {n:,} tokens",
            {"stock": expected, client_name: body},
        )


async def measure_loop_lag(
    server: LoopbackProcess, requests: Sequence[Any], rounds: int
) -> dict[str, list[dict[str, Any]]]:
    """Send ``requests`` concurrently in each round, once per client, and return the stats
    of every round by client.

    One AsyncTinker client is the stock client with the accelerator off and the
    accelerated client with it on. A warm-up round, not returned, opens the connections.
    Every round's bodies must equal those of the stock warm-up round.
    """
    import tinker
    from tinker._client import AsyncTinker

    from tinker_accel._loopback import FAKE_API_KEY

    n = requests[0].prompt.length
    stats: dict[str, list[dict[str, Any]]] = {name: [] for name in LAG_CLIENTS}
    reference: list[bytes] | None = None
    # tinker 0.38.0 does not re-export AsyncTinker from the package root.
    async with AsyncTinker(base_url=server.base_url, api_key=FAKE_API_KEY, max_retries=0) as client:
        for round_index in range(rounds + 1):
            if round_index > 0:
                progress(f"event loop lag: round {round_index} of {rounds}")
            for name in LAG_CLIENTS:
                if name == "accelerated":
                    tinker_accel.enable()
                else:
                    tinker_accel.disable()
                gc.collect()
                try:
                    wall_seconds, lags = await send_with_ticker(client, requests)
                except tinker.APIError as error:
                    # NOTE: LoopbackServer keeps socketserver's listen backlog of 5. Dozens of
                    # new connections at once overflow it, and the kernel resets some of them
                    # (APIConnectionError), so full mode often fails here.
                    raise BenchError(
                        f"a sample request of {n:,} tokens from the {name} client failed: "
                        f"{error!r}. An APIConnectionError here most likely comes from the "
                        "loopback server's listen backlog, so rerun the benchmark."
                    ) from error

                bodies = sorted(server.take_bodies())
                if reference is None:
                    reference = bodies
                require_same_bodies(name, bodies, reference, n)
                if round_index > 0:
                    stats[name].append(lag_stats(wall_seconds, lags))
    return stats


def median_round(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Return the round with the median wall time, the lower one for an even count."""
    by_wall_time = sorted(rounds, key=lambda stats: stats["wall_ms"])
    return by_wall_time[(len(by_wall_time) - 1) // 2]


def round_lag_stats(stats: dict[str, Any]) -> dict[str, Any]:
    return {key: value if key == "ticks" else round(value, 4) for key, value in stats.items()}


def bench_loop_lag(settings: Settings) -> dict[str, Any]:
    prompt = default_prompts(settings.lag_prompt_tokens)[-1]
    n = len(prompt)
    tasks = settings.lag_tasks
    progress(f"event loop lag: {tasks} tasks, n={n:,}, loopback server in a child process")
    # The requests differ only in seq_id, so each task sends its own body.
    requests = [_build_sample_request(prompt, seq_id=index) for index in range(tasks)]
    try:
        with LoopbackProcess() as server:
            all_rounds = asyncio.run(measure_loop_lag(server, requests, settings.lag_rounds))
    finally:
        tinker_accel.disable()

    selected = {name: median_round(all_rounds[name]) for name in LAG_CLIENTS}
    stock, accelerated = selected["stock"], selected["accelerated"]
    ratios = {
        key.removesuffix("_ms"): round(stock[key] / accelerated[key], 3)
        for key in ("wall_ms", "max_lag_ms", "p99_lag_ms", "mean_lag_ms")
    }
    rows = [{"client": name, **round_lag_stats(selected[name])} for name in LAG_CLIENTS]

    table = [[row[key] for key in LAG_COLUMNS] for row in rows]
    table.append(["stock / accelerated", *ratios.values(), ""])
    print_table(
        f"8. Event loop lag: {tasks} concurrent requests of {n:,} tokens, ms, "
        f"median round of {settings.lag_rounds} by wall time",
        ["client", "wall", "max lag", "p99 lag", "mean lag", "ticks"],
        table,
    )
    return {
        "tasks": tasks,
        "n": n,
        "rounds": settings.lag_rounds,
        "tick_ms": LAG_TICK_SECONDS * 1000,
        "selected_round": "median wall time",
        "rows": rows,
        "ratios": ratios,
        "all_rounds": {
            name: [round_lag_stats(stats) for stats in all_rounds[name]] for name in LAG_CLIENTS
        },
    }


# ---------------------------------------------------------------------------
# Versions, machine and command line


def versions() -> dict[str, str]:
    return {
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "tinker": metadata.version("tinker"),
        "pydantic": pydantic.VERSION,
        "orjson": orjson.__version__,
        "msgspec": msgspec.__version__,
        "ujson": ujson.__version__,
        "numpy": np.__version__,
        "tinker_accel": tinker_accel.__version__,
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    cpu = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "avx2": "avx2" in flags,
        "avx512": "avx512f" in flags,
    }


def source_revision() -> dict[str, Any] | None:
    """Return the git commit of the checkout and whether the Rust or Python sources of
    tinker-accel differ from it, or None outside a git checkout."""
    try:
        commit = run_git("rev-parse", "--short", "HEAD")
        changed = run_git("status", "--porcelain", "--", "rust", "python", "Cargo.toml")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.strip(), "uncommitted_changes": bool(changed.strip())}


def run_git(*args: str) -> str:
    completed = subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=30
    )
    return completed.stdout


SECTIONS: tuple[tuple[str, Callable[[Settings], dict[str, Any]]], ...] = (
    ("lists", bench_lists),
    ("buffers", bench_buffers),
    ("tinker_body", bench_tinker_body),
    ("pydantic", bench_pydantic),
    ("foreign_chunk", bench_foreign_chunk),
    ("threads", bench_threads),
    ("memory", bench_memory),
    ("loop_lag", bench_loop_lag),
    ("floats", bench_floats),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(
            "Time tinker-accel against orjson, msgspec, ujson, json, stock pydantic and "
            "stock tinker, print the tables and save them as JSON."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and 3 samples per cell, to check that the benchmark runs (seconds)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="PATH",
        help=f"write the JSON results to PATH (default: {DEFAULT_OUT.relative_to(REPO_ROOT)})",
    )
    # Used by the memory section, which runs each measurement in a fresh interpreter.
    parser.add_argument(
        "--memory-probe", nargs=3, metavar=("TOOL", "INPUT", "N"), help=argparse.SUPPRESS
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.memory_probe:
        tool, input_kind, n = args.memory_probe
        print(json.dumps(probe_memory(tool, input_kind, int(n))))
        return 0

    settings = QUICK if args.quick else FULL
    started = time.perf_counter()
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "settings": {
            **asdict(settings),
            "target_seconds": TARGET_SECONDS,
            "min_sample_ns": MIN_SAMPLE_NS,
            "min_samples": MIN_SAMPLES,
            "token_ranges": list(TOKEN_RANGES),
        },
        "versions": versions(),
        "machine": machine(),
        "source": source_revision(),
    }
    tinker_accel.disable()
    try:
        for name, bench in SECTIONS:
            report[name] = bench(settings)
    except BenchError as error:
        print(f"peers.py: {error}", file=sys.stderr)
        return 1
    report["duration_seconds"] = round(time.perf_counter() - started, 1)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    progress(f"\nwrote {args.out} in {report['duration_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
