"""encode_tokens against the json.dumps reference, for every accepted input kind."""

from __future__ import annotations

import array
import enum
import json
import operator
import sys
from collections import deque
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinker_accel import encode_tokens


def reference(tokens: Any) -> bytes:
    items = [operator.index(token) for token in tokens]
    return json.dumps(items, separators=(",", ":")).encode()


BOUNDARIES = [0, 9, 10, 99, 100, 999_999, 1_000_000, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1]
SIGNED = BOUNDARIES + [-value for value in BOUNDARIES] + [-(2**63)]
WIDE = [2**64 - 1, 2**64, -(2**63) - 1, 2**100, -(2**100), 10**300]


class Color(enum.IntEnum):
    RED = 151643


class MyInt(int):
    def __repr__(self) -> str:
        return "MyInt"


class Indexable:
    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


def test_doc_example() -> None:
    assert encode_tokens([151643, 872, 25]) == b"[151643,872,25]"


@pytest.mark.parametrize(
    "tokens",
    [
        [],
        (),
        [0],
        SIGNED,
        tuple(SIGNED),
        WIDE,
        [True, False, 1],
        [Color.RED, MyInt(5), Indexable(-7), np.int64(2**62), np.uint64(2**64 - 1)],
    ],
)
def test_lists_and_tuples(tokens: Any) -> None:
    assert encode_tokens(tokens) == reference(tokens)


@pytest.mark.parametrize(
    "tokens",
    [range(0), range(10), range(5, -20, -3), range(2**63 - 3, 2**63), range(2**64, 2**64 + 3)],
)
def test_ranges(tokens: range) -> None:
    assert encode_tokens(tokens) == reference(tokens)


@pytest.mark.parametrize("typecode", list("bBhHiIlLqQ"))
def test_array_array_typecodes(typecode: str) -> None:
    info = array.array(typecode)
    bits = info.itemsize * 8
    signed = typecode.islower()
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    values = [low, high, 0, 1, 9, 10] + [value for value in SIGNED if low <= value <= high]
    tokens = array.array(typecode, values)
    assert encode_tokens(tokens) == reference(values)


INTEGER_DTYPES = ["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8"]


@pytest.mark.parametrize("dtype", INTEGER_DTYPES)
@pytest.mark.parametrize("order", ["<", ">"])
def test_numpy_dtypes_and_byte_orders(dtype: str, order: str) -> None:
    info = np.iinfo(dtype)
    values = [int(info.min), int(info.max), 0, 1, 9, 10] + [
        value for value in SIGNED if info.min <= value <= info.max
    ]
    tokens = np.array(values, dtype=order + dtype)
    assert encode_tokens(tokens) == reference(values)


@pytest.mark.parametrize("dtype", ["<i4", ">i4", "<i8", "<u8"])
@pytest.mark.parametrize("size", [100, 8_000, 16_000, 40_000, 300_000])
@pytest.mark.parametrize("largest", [151_936, 10_000_000, 2**31 - 1])
def test_buffer_sizes_across_output_strategies(dtype: str, size: int, largest: int) -> None:
    # Sizes on both sides of the limits that decide where the output is written:
    # room for the widest form, room for 7 digits per token, or a measured length.
    # IDs of 8 digits do not fit the 7-digit room and must take the measured one.
    generator = np.random.default_rng(size + largest)
    tokens = generator.integers(0, largest, size, dtype=np.int64)
    tokens[-1] = largest - 1
    array_ = tokens.astype(dtype)
    assert encode_tokens(array_) == reference(tokens.tolist())
    assert encode_tokens(array_[::-1]) == reference(tokens[::-1].tolist())


@pytest.mark.parametrize("size", [1, 300, 5_000, 50_000])
@pytest.mark.parametrize("kind", [list, tuple])
def test_long_numbers_grow_the_output_of_lists(size: int, kind: type) -> None:
    # Lists are written into room for 7 digits per token, so numbers this long make
    # the output grow several times. Negative and wider-than-64-bit numbers take
    # other paths in between.
    generator = np.random.default_rng(size)
    values = [int(value) for value in generator.integers(-(2**63), 2**63 - 1, size)]
    values[size // 2] = 2**64 + size
    values[-1] = -(10**25)
    tokens = kind(values)
    assert encode_tokens(tokens) == reference(values)


def test_numpy_strided_reversed_and_broadcast() -> None:
    base = np.arange(-500, 500, dtype=np.int64) * 1_000_003
    views: list[np.ndarray] = [
        base[::3],
        base[::-1],
        base[::-7],
        base[5:6],
        base[:0],
        np.broadcast_to(np.int32(42), (10,)),
        base.reshape(10, 100)[:, 3],
        base.astype(">i4")[::-2],
    ]
    for view in views:
        assert encode_tokens(view) == reference(view.tolist())


def test_read_only_and_memoryview_inputs() -> None:
    tokens = np.arange(1000, dtype=np.uint32)
    tokens.setflags(write=False)
    assert encode_tokens(tokens) == reference(tokens.tolist())
    view = memoryview(array.array("q", [1, -2, 3]))
    assert encode_tokens(view) == b"[1,-2,3]"
    assert encode_tokens(view[::-1]) == b"[3,-2,1]"
    assert encode_tokens(memoryview(b"ab")) == b"[97,98]"
    assert encode_tokens(bytearray(b"\x00\xff")) == b"[0,255]"


def test_object_array_and_other_sequences() -> None:
    objects = np.array([1, 2**70, Color.RED], dtype=object)
    assert encode_tokens(objects) == reference(objects)
    assert encode_tokens(deque([3, 4])) == b"[3,4]"


def test_array_like_through_dunder_array() -> None:
    class TensorLike:
        """Stands in for a CPU torch tensor, which converts through __array__."""

        def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
            return np.array([5, 6, 7], dtype=np.int64)

    assert encode_tokens(TensorLike()) == b"[5,6,7]"


def test_list_mutated_by_index_behaves_like_iteration() -> None:
    tokens: list[Any] = [1, 2, 3]

    class Shrinks:
        def __index__(self) -> int:
            del tokens[2:]
            return 9

    tokens[1] = Shrinks()
    assert encode_tokens(tokens) == b"[1,9]"


@pytest.mark.parametrize("odd", [0, True, -5, 2**40, 2**70, Color.RED, MyInt(7)])
@pytest.mark.parametrize("container", [list, tuple])
def test_odd_items_at_block_edges(odd: Any, container: type) -> None:
    # Small ints are read in blocks of a fixed size: an item of another form just
    # before, at or after a block edge must end one block and start the next right.
    size = 1_100
    for position in (0, 1, 62, 63, 64, 65, 127, 128, 255, 256, 257, 1_023, 1_024, size - 1):
        tokens = [100_000 + index for index in range(size)]
        tokens[position] = odd
        expected = reference(tokens)
        assert encode_tokens(container(tokens)) == expected, position


def test_int_beyond_digit_limit_raises_like_json() -> None:
    huge = 10 ** (sys.get_int_max_str_digits() + 1)
    with pytest.raises(ValueError, match="digits"):
        json.dumps([huge])
    with pytest.raises(ValueError, match="digits"):
        encode_tokens([huge])


@given(st.lists(st.integers(min_value=-(2**70), max_value=2**70)))
def test_random_int_lists(tokens: list[int]) -> None:
    assert encode_tokens(tokens) == reference(tokens)
    assert encode_tokens(tuple(tokens)) == reference(tokens)


@given(
    hnp.arrays(
        dtype=st.sampled_from(
            [np.dtype(order + code) for code in INTEGER_DTYPES for order in "<>"]
        ),
        shape=st.integers(min_value=0, max_value=300),
    ),
    st.integers(min_value=-4, max_value=4).filter(bool),
)
def test_random_numpy_arrays(tokens: np.ndarray, step: int) -> None:
    view = tokens[::step]
    assert encode_tokens(view) == reference(view.tolist())


def test_direct_list_reads_on_known_cpython() -> None:
    from tinker_accel import _native

    known = sys.implementation.name == "cpython" and (3, 11) <= sys.version_info[:2] <= (3, 14)
    assert _native._list_reader() == ("direct" if known else "api")


class PlainList(list[Any]):
    """A list subclass, which takes the iterator path instead of direct reads."""


@given(st.lists(st.integers(min_value=-(2**65), max_value=2**65) | st.booleans()))
def test_direct_reads_match_iterator_path(tokens: list[Any]) -> None:
    assert encode_tokens(tokens) == encode_tokens(PlainList(tokens)) == reference(tokens)
