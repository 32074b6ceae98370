"""The pure-Python encoder gives the native encoder's output and errors."""

from __future__ import annotations

import array
import enum
import json
import os
import subprocess
import sys
from collections import deque
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinker_accel import _fallback, _native


class Color(enum.IntEnum):
    RED = 7


class TensorLike:
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.array([5, 6], dtype=np.int16)


VALID: list[Any] = [
    [],
    [0, 9, 10, -5, 2**63 - 1, -(2**63), 2**64, 2**100, True, Color.RED, np.int32(3)],
    (1, 2, 3),
    range(0),
    range(5, -20, -3),
    range(2**64, 2**64 + 2),
    np.array([1, -2, 3], dtype=">i4")[::-1],
    np.arange(10, dtype=np.uint64)[::3],
    np.broadcast_to(np.int8(-7), (4,)),
    np.array([1, 2**70], dtype=object),
    np.ma.array([1, 2, 3]),
    array.array("H", [1, 65535]),
    memoryview(array.array("q", [1, -2])),
    b"ab",
    bytearray(b"\x00\xff"),
    deque([4, 5]),
    TensorLike(),
]

INVALID: list[Any] = [
    [1, 2.5],
    ["x" * 100],
    [None],
    [[1]],
    "abc",
    None,
    3,
    {1: 2},
    {1},
    (token for token in [1]),
    np.zeros(3),
    np.zeros(2, dtype=bool),
    np.zeros(2, dtype=np.complex64),
    np.zeros(2, dtype="S3"),
    np.array(5),
    np.zeros((2, 3), dtype=np.int32),
    np.ma.array([1, 2, 3], mask=[False, True, False]),
    array.array("d", [1.0]),
    range(2**40),
]


@pytest.mark.parametrize("tokens", VALID, ids=lambda tokens: type(tokens).__name__)
def test_valid_inputs_match_native(tokens: Any) -> None:
    assert _fallback.encode_tokens(tokens) == _native.encode_tokens(tokens)


@pytest.mark.parametrize("tokens", INVALID, ids=lambda tokens: type(tokens).__name__)
def test_invalid_inputs_raise_like_native(tokens: Any) -> None:
    with pytest.raises((TypeError, ValueError, MemoryError)) as native:
        _native.encode_tokens(tokens)
    with pytest.raises((TypeError, ValueError, MemoryError)) as fallback:
        _fallback.encode_tokens(tokens)
    assert type(fallback.value) is type(native.value)
    if not isinstance(native.value, MemoryError):
        assert str(fallback.value) == str(native.value)


@pytest.mark.parametrize("module", [_native, _fallback], ids=["native", "fallback"])
def test_json_token_sequence_passes_exact_ints_through(module: Any) -> None:
    exact_list = [0, 7, 151_935, 2**70, -3]
    exact_tuple = tuple(exact_list)
    assert module._json_token_sequence(exact_list) is exact_list
    assert module._json_token_sequence(exact_tuple) is exact_tuple
    empty: list[int] = []
    assert module._json_token_sequence(empty) is empty


@pytest.mark.parametrize("module", [_native, _fallback], ids=["native", "fallback"])
def test_json_token_sequence_converts_other_items(module: Any) -> None:
    tokens = [1, True, Color.RED, np.int32(5)]
    converted = module._json_token_sequence(tokens)
    assert converted == [1, 1, 7, 5]
    assert [type(item) for item in converted] == [int, int, int, int]
    assert tokens == [1, True, Color.RED, np.int32(5)]
    with pytest.raises(TypeError, match="index 1"):
        module._json_token_sequence([1, "2"])


def test_tokens_to_list_matches_native() -> None:
    tokens = [1, True, Color.RED, 2**70]
    assert _fallback.tokens_to_list(tokens) == _native.tokens_to_list(tokens) == [1, 1, 7, 2**70]
    assert type(_fallback.tokens_to_list(tuple(tokens))) is list
    with pytest.raises(TypeError) as fallback:
        _fallback.tokens_to_list([1, "2"])
    with pytest.raises(TypeError) as native:
        _native.tokens_to_list([1, "2"])
    assert str(fallback.value) == str(native.value)


@given(
    st.lists(st.integers(min_value=-(2**70), max_value=2**70)),
    st.sampled_from(["i1", ">u2", "<i4", ">i8", "u8"]),
)
def test_random_inputs_match_native(tokens: list[int], dtype: str) -> None:
    assert _fallback.encode_tokens(tokens) == _native.encode_tokens(tokens)
    info = np.iinfo(dtype)
    clipped = np.array([min(max(token, info.min), info.max) for token in tokens], dtype=dtype)
    assert _fallback.encode_tokens(clipped[::-1]) == _native.encode_tokens(clipped[::-1])


def test_package_runs_on_python_backend() -> None:
    code = """
import json, tinker_accel
from tinker import types
status = tinker_accel.status()
request = types.SampleRequest(
    prompt=types.ModelInput.from_ints([5, 6, 7]), sampling_params=types.SamplingParams()
)
stock = tinker_accel.stock_dumps(request, exclude_none=True)
tinker_accel.enable()
print(json.dumps([status["backend"], status["list_reader"],
                  tinker_accel.request_body(request) == stock,
                  tinker_accel.encode_tokens(range(3)).decode()]))
"""
    environment = {**os.environ, "TINKER_ACCEL_BACKEND": "python"}
    output = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    assert json.loads(output.stdout) == ["python", "python", True, "[0,1,2]"]
    assert "RuntimeWarning" not in output.stderr
