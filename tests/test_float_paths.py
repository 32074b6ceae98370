"""Each float formatting path this CPU has, forced in turn, against json.dumps.

The extension picks the fastest path (AVX-512, AVX2 or one value at a time), so the
other tests see only that one. These run the same kinds of checks on every path.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_encode_floats import SPECIAL, reference

from tinker_accel import _backend, encode_floats

PATHS = ["avx512", "avx2", "scalar"]


@pytest.fixture(scope="module", params=PATHS)
def float_path(request: pytest.FixtureRequest) -> Iterator[str]:
    if _backend.BACKEND != "rust":
        pytest.skip("the pure-Python backend has one path")
    from tinker_accel import _native

    try:
        _native._force_float_path(request.param)
    except ValueError:
        pytest.skip(f"this CPU has no {request.param} path")
    try:
        yield request.param
    finally:
        _native._force_float_path(None)


def test_special_values_in_every_lane(float_path: str) -> None:
    # Groups are 8 or 4 values after a first one, so lengths 9 to 17 put each value
    # in every lane of a group and in the values after the last group.
    for value in SPECIAL:
        for length in range(9, 18):
            for lane in range(length):
                values = [0.5] * length
                values[lane] = value
                assert encode_floats(values) == reference(values), (value, length, lane)


def test_nan_and_infinity_name_their_index(float_path: str) -> None:
    for bad in (float("nan"), float("inf"), float("-inf")):
        for index in range(20):
            values = [-2.5] * 20
            values[index] = bad
            message = f"Out of range float values are not JSON compliant: {bad!r} at index {index}"
            with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
                encode_floats(values)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=40))
def test_random_doubles(float_path: str, values: list[float]) -> None:
    assert encode_floats(values) == reference(values)
    assert encode_floats(np.array(values, dtype=">f8")) == reference(values)


@given(st.lists(st.integers(0, 2**32 - 1), max_size=40))
def test_random_float32_bit_patterns(float_path: str, patterns: list[int]) -> None:
    raw = struct.pack(f"<{len(patterns)}I", *patterns)
    values = np.frombuffer(raw, dtype="<f4")
    finite = values[np.isfinite(values)]
    assert encode_floats(finite) == reference(finite.tolist())


def test_forcing_an_unknown_path_raises() -> None:
    if _backend.BACKEND != "rust":
        pytest.skip("only the Rust backend has paths")
    from tinker_accel import _native

    with pytest.raises(ValueError, match=r'^unknown float path "fast"'):
        _native._force_float_path("fast")
