"""encode_floats against json.dumps, byte for byte, for every accepted input kind."""

from __future__ import annotations

import array
import json
import math
import re
import struct
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinker_accel import _fallback, encode_floats


def reference(values: Any) -> bytes:
    items = [float(value) for value in values]
    return json.dumps(items, separators=(",", ":"), allow_nan=False).encode()


# Notation switch points, extremes, subnormals and values whose shortest form is long.
SPECIAL = [
    0.0,
    -0.0,
    1.0,
    -1.5,
    0.1,
    0.2 + 0.1,
    100.0,
    1e-05,
    0.0001,
    0.00012345,
    1e16,
    1e15,
    9999999999999998.0,
    1.2345e16,
    123456789012345680.0,
    1e22,
    1e23,
    5e-324,
    2.2250738585072014e-308,
    2.225073858507201e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    2.0**53,
    2.0**53 + 2,
    1 / 3,
    math.pi,
    float(np.float32(0.1)),
    # Exact ties between two shortest forms, where Python keeps the even last digit.
    2.0**-25,
    1000000000000000.25,
    5e-324 * 3,
]

ENCODERS = [encode_floats, _fallback.encode_floats]


@pytest.mark.parametrize("encode", ENCODERS)
def test_special_values(encode: Any) -> None:
    assert encode(SPECIAL) == reference(SPECIAL)
    assert encode(tuple(SPECIAL)) == reference(SPECIAL)
    assert encode([]) == b"[]"


@pytest.mark.parametrize("encode", ENCODERS)
def test_every_power_of_ten_and_its_neighbours(encode: Any) -> None:
    values = []
    for exponent in range(-324, 309):
        value = float(f"1e{exponent}")
        values += [value, math.nextafter(value, 0), math.nextafter(value, math.inf), -value]
    assert encode(values) == reference(values)


@pytest.mark.parametrize("encode", ENCODERS)
def test_numbers_that_float_converts(encode: Any) -> None:
    values = [1, -7, True, 2**60, np.float32(0.1), np.float64(2.5), np.int64(3), Decimal("0.5"),
              Fraction(1, 3)]  # fmt: skip
    assert encode(values) == reference(values)


@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<f8", ">f8"])
def test_numpy_buffers_in_every_byte_order(dtype: str) -> None:
    values = np.array(SPECIAL, dtype=np.float64)
    if dtype.endswith("4"):
        with np.errstate(over="ignore"):
            values = values[np.isfinite(values.astype(np.float32))]
    array_ = values.astype(dtype)
    # A float32 buffer gives what its tolist() gives: the widened double's shortest form.
    for encode in ENCODERS:
        assert encode(array_) == reference(array_.tolist())
        assert encode(array_[::-1]) == reference(array_[::-1].tolist())
        assert encode(array_[::3]) == reference(array_[::3].tolist())


def test_array_array_memoryview_and_broadcast() -> None:
    for encode in ENCODERS:
        assert encode(array.array("d", [0.5, 1e-7])) == b"[0.5,1e-07]"
        assert encode(array.array("f", [0.1])) == reference([float(np.float32(0.1))])
        assert encode(memoryview(array.array("d", [2.0, 3.5]))) == b"[2.0,3.5]"
        assert encode(np.broadcast_to(np.float32(1.25), (3,))) == b"[1.25,1.25,1.25]"
        assert encode(np.array([[1.0, 2.0], [3.0, 4.0]])[:, 1]) == b"[2.0,4.0]"


@pytest.mark.parametrize("encode", ENCODERS)
@pytest.mark.parametrize(
    ("values", "index", "shown"),
    [
        ([1.0, math.nan], 1, "nan"),
        ([math.inf], 0, "inf"),
        ((0.5, 1.5, -math.inf), 2, "-inf"),
        (np.array([0.0, 0.0, 0.0, np.nan], dtype=np.float32), 3, "nan"),
        (np.array([np.inf], dtype=">f8"), 0, "inf"),
    ],
)
def test_nan_and_infinity_raise_with_index(
    encode: Any, values: Any, index: int, shown: str
) -> None:
    message = f"Out of range float values are not JSON compliant: {shown} at index {index}"
    with pytest.raises(ValueError, match=re.escape(message)) as raised:
        encode(values)
    assert str(raised.value) == message
    # The same prefix as json.dumps's own error with allow_nan=False.
    with pytest.raises(ValueError, match=r"^Out of range float values are not JSON compliant"):
        json.dumps([float(value) for value in values], allow_nan=False)


@pytest.mark.parametrize("encode", ENCODERS)
@pytest.mark.parametrize(
    ("values", "error", "message"),
    [
        ([1.0, "2.0"], TypeError, "invalid value at index 1: expected a float, got str '2.0'"),
        ([None], TypeError, "invalid value at index 0: expected a float, got NoneType None"),
        ([[1.0]], TypeError, "invalid value at index 0: expected a float, got list [1.0]"),
        ("1.0", TypeError, "expected a list or tuple of floats, a sequence of real numbers, "
         "or a 1-D buffer of float32 or float64 values, got str"),
        ({"a": 1.0}, TypeError, "expected a list or tuple of floats, a sequence of real "
         "numbers, or a 1-D buffer of float32 or float64 values, got dict"),
        (np.zeros((2, 3)), ValueError,
         "expected a 1-D buffer of floats, got a 2-D buffer of shape (2, 3)"),
        (np.float64(1.0), ValueError,
         "expected a 1-D buffer of floats, got a 0-D buffer of shape ()"),
        (np.zeros(3, dtype=np.float16), TypeError,
         'unsupported buffer format "e": expected float32 or float64 items'),
        (np.arange(3), TypeError,
         'unsupported buffer format "l": expected float32 or float64 items'),
        ([2**1100], OverflowError, "int too large to convert to float"),
    ],
)  # fmt: skip
def test_bad_input_raises_clear_errors(
    encode: Any, values: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        encode(values)
    assert str(raised.value) == message


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False)))
def test_random_doubles(values: list[float]) -> None:
    assert encode_floats(values) == reference(values)
    assert encode_floats(np.array(values, dtype=np.float64)) == reference(values)


@given(st.lists(st.integers(0, 2**32 - 1)))
def test_random_float32_bit_patterns(patterns: list[int]) -> None:
    raw = struct.pack(f"<{len(patterns)}I", *patterns)
    values = np.frombuffer(raw, dtype="<f4")
    finite = values[np.isfinite(values)]
    assert encode_floats(finite) == reference(finite.tolist())
    assert encode_floats(finite.astype(">f4")) == reference(finite.tolist())


@given(hnp.arrays(dtype=hnp.floating_dtypes(sizes=(32, 64)), shape=hnp.array_shapes(max_dims=1)))
def test_random_arrays(values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        with pytest.raises(ValueError, match="at index"):
            encode_floats(values)
        return
    assert encode_floats(values) == reference(values.tolist())


class ClearsList:
    """Empties a list from its own ``__float__``, which ends a list iterator there."""

    def __init__(self, target: list[Any]) -> None:
        self.target = target

    def __float__(self) -> float:
        self.target.clear()
        return 1.5


class HalfFloat(float):
    def __float__(self) -> float:
        return 0.5


@pytest.mark.parametrize("encode", ENCODERS)
def test_list_changed_while_converting(encode: Any) -> None:
    values: list[Any] = [0.25, None, 2.5, 3.5]
    values[1] = ClearsList(values)
    assert encode(values) == b"[0.25,1.5]"


@pytest.mark.parametrize("encode", ENCODERS)
def test_float_subclass_converts_as_float_does(encode: Any) -> None:
    values = [HalfFloat(3.0), 1.0]
    assert encode(values) == reference(values) == b"[0.5,1.0]"


@pytest.mark.parametrize("encode", ENCODERS)
def test_masked_array_with_masked_entries_is_rejected(encode: Any) -> None:
    masked = np.ma.array([1.0, 2.0], mask=[False, True])
    with pytest.raises(TypeError, match=r"masked entries \(1 of 2\)"):
        encode(masked)
    assert encode(np.ma.array([1.0, 2.0], mask=[False, False])) == b"[1.0,2.0]"


class InterruptingLength:
    def __getitem__(self, index: int) -> float:
        raise IndexError(index)

    def __len__(self) -> int:
        raise KeyboardInterrupt


class FailingLength(InterruptingLength):
    def __len__(self) -> int:
        raise RuntimeError("no length")


def test_length_hint_errors() -> None:
    # An Exception from __len__ only loses the size hint; KeyboardInterrupt propagates.
    assert encode_floats(FailingLength()) == b"[]"
    with pytest.raises(KeyboardInterrupt):
        encode_floats(InterruptingLength())
