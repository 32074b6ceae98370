"""Inputs that encode_tokens rejects, with the exact messages."""

from __future__ import annotations

import array
from typing import Any

import numpy as np
import pytest

from tinker_accel import encode_tokens

ACCEPTED = "a list, tuple or range of ints, a sequence of ints, or a 1-D buffer of integers"


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ([1, 2.5], "invalid token at index 1: expected an int, got float 2.5"),
        ([1, "7"], "invalid token at index 1: expected an int, got str '7'"),
        ([None], "invalid token at index 0: expected an int, got NoneType None"),
        ([1, 2, [3]], "invalid token at index 2: expected an int, got list [3]"),
        (
            (1, np.float32(1.0)),
            "invalid token at index 1: expected an int, got float32 np.float32(1.0)",
        ),
        ([float("nan")], "invalid token at index 0: expected an int, got float nan"),
        ([1j], "invalid token at index 0: expected an int, got complex 1j"),
    ],
)
def test_bad_items_name_index_and_type(tokens: Any, message: str) -> None:
    with pytest.raises(TypeError) as caught:
        encode_tokens(tokens)
    assert str(caught.value) == message


def test_long_repr_is_cut() -> None:
    with pytest.raises(TypeError) as caught:
        encode_tokens(["x" * 500])
    text = str(caught.value)
    assert text.startswith("invalid token at index 0: expected an int, got str 'xxx")
    assert text.endswith("...")
    assert len(text) < 140


@pytest.mark.parametrize(
    ("tokens", "type_name"),
    [
        ("abc", "str"),
        (None, "NoneType"),
        (3, "int"),
        (1.5, "float"),
        ({1: 2}, "dict"),
        ({1}, "set"),
        ((token for token in [1]), "generator"),
    ],
)
def test_unsupported_containers(tokens: Any, type_name: str) -> None:
    with pytest.raises(TypeError) as caught:
        encode_tokens(tokens)
    assert str(caught.value) == f"expected {ACCEPTED}, got {type_name}"


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (
            np.zeros(3, dtype=np.float64),
            'unsupported buffer format "d" (floating point): expected integer items',
        ),
        (
            np.zeros(3, dtype=np.float32),
            'unsupported buffer format "f" (floating point): expected integer items',
        ),
        (
            np.zeros(3, dtype=np.float16),
            'unsupported buffer format "e" (floating point): expected integer items',
        ),
        (np.zeros(3, dtype=bool), 'unsupported buffer format "?" (bool): expected integer items'),
        (
            array.array("d", [1.0]),
            'unsupported buffer format "d" (floating point): expected integer items',
        ),
        (
            np.zeros(3, dtype=np.complex128),
            'unsupported buffer format "Zd": expected integer items',
        ),
        (np.zeros(2, dtype="S3"), 'unsupported buffer format "3s": expected integer items'),
    ],
)
def test_non_integer_buffers(tokens: Any, message: str) -> None:
    with pytest.raises(TypeError) as caught:
        encode_tokens(tokens)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (
            np.array(5, dtype=np.int32),
            "expected a 1-D buffer of token IDs, got a 0-D buffer of shape ()",
        ),
        (np.int64(5), "expected a 1-D buffer of token IDs, got a 0-D buffer of shape ()"),
        (
            np.zeros((2, 3), dtype=np.int32),
            "expected a 1-D buffer of token IDs, got a 2-D buffer of shape (2, 3)",
        ),
        (
            np.zeros((1, 1, 4), dtype=np.int64),
            "expected a 1-D buffer of token IDs, got a 3-D buffer of shape (1, 1, 4)",
        ),
    ],
)
def test_wrong_dimensions(tokens: Any, message: str) -> None:
    with pytest.raises(ValueError, match="expected a 1-D buffer") as caught:
        encode_tokens(tokens)
    assert str(caught.value) == message


def test_errors_from_index_pass_through() -> None:
    class Broken:
        def __index__(self) -> int:
            raise ValueError("token table not loaded")

    with pytest.raises(ValueError, match="token table not loaded"):
        encode_tokens([1, Broken()])


def test_sequence_whose_items_raise() -> None:
    class Flaky:
        def __len__(self) -> int:
            return 3

        def __getitem__(self, index: int) -> int:
            if index == 1:
                raise RuntimeError("storage went away")
            if index >= 3:
                raise IndexError(index)
            return index

    with pytest.raises(RuntimeError, match="storage went away"):
        encode_tokens(Flaky())


def test_sequence_whose_length_lies() -> None:
    class Lies:
        def __len__(self) -> int:
            return 1000

        def __getitem__(self, index: int) -> int:
            if index >= 2:
                raise IndexError(index)
            return index

    assert encode_tokens(Lies()) == b"[0,1]"


def test_every_error_is_an_exception() -> None:
    for bad in ([1.5], "x", None, np.zeros((2, 2), dtype=np.int8), np.zeros(2, dtype=bool)):
        try:
            encode_tokens(bad)
        except Exception:
            continue
        raise AssertionError(f"no error for {bad!r}")
