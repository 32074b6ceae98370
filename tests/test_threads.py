"""Encoding from several threads, and while another thread writes into the buffer."""

from __future__ import annotations

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tinker_accel import encode_tokens


def test_buffer_written_during_encoding_gives_valid_json() -> None:
    tokens = np.arange(2_000_000, dtype=np.int64)
    stop = threading.Event()

    def scribble() -> None:
        generator = np.random.default_rng(0)
        while not stop.is_set():
            start = int(generator.integers(0, tokens.size - 1000))
            tokens[start : start + 1000] = generator.integers(-(2**63), 2**63 - 1, 1000)

    writer = threading.Thread(target=scribble)
    writer.start()
    try:
        for _ in range(5):
            decoded = json.loads(encode_tokens(tokens))
            assert len(decoded) == tokens.size
            assert all(type(value) is int for value in decoded[:1000])
    finally:
        stop.set()
        writer.join()


def test_many_threads_get_their_own_results() -> None:
    generator = random.Random(7)
    inputs: list[object] = []
    for index in range(64):
        values = [generator.randrange(-(2**40), 2**40) for _ in range(generator.randrange(0, 5000))]
        kind = index % 4
        if kind == 0:
            inputs.append(values)
        elif kind == 1:
            inputs.append(tuple(values))
        elif kind == 2:
            inputs.append(np.array(values, dtype=">i8"))
        else:
            inputs.append(np.array(values, dtype=np.int64)[::-1])
    expected = [
        json.dumps([int(value) for value in tokens], separators=(",", ":")).encode()  # type: ignore[attr-defined]
        for tokens in inputs
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(encode_tokens, inputs * 4))
    assert results == expected * 4
