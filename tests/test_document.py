"""The native request body writer against ``json.dumps``, which it must match byte for byte."""

from __future__ import annotations

import enum
import json
import math
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinker_accel import _native

PREFIX = "\x00placeholder-7f3a:"


def stock(data: Any) -> bytes:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def stock_or_error(data: Any) -> bytes | None:
    try:
        return stock(data)
    except (ValueError, TypeError):
        return None


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats()
    | st.text()
    | st.sampled_from(['\n\t"\\', "\x00\x1f\x7f", "\u2028", "\ud800", "😀"])
)
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.lists(children, max_size=5).map(tuple)
        | st.dictionaries(st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=500)
@given(documents)
def test_random_documents_match_json(data: Any) -> None:
    expected = stock_or_error(data)
    got = _native.dumps_document(data, PREFIX, [])
    # None exactly where json raises (NaN, infinity, lone surrogates), so that the
    # caller's fallback raises json's own error.
    assert (got is None) == (expected is None)
    if got is not None:
        assert got == expected


@pytest.mark.parametrize(
    "value",
    [
        0.1,
        -0.0,
        1e-05,
        0.0001,
        1e16,
        1e15,
        123456789.125,
        5e-324,
        1.7976931348623157e308,
        2**63,
        -(2**63) - 1,
        10**40,
        "a\u0000b",
        "東京",
        [],
        {},
        (),
        {"": [None, True, False]},
    ],
)
def test_values_match_json(value: Any) -> None:
    assert _native.dumps_document({"v": value}, PREFIX, []) == stock({"v": value})


class Color(enum.IntEnum):
    RED = 1


class Text(str):
    pass


@pytest.mark.parametrize(
    "data",
    [
        {"v": math.nan},
        {"v": -math.inf},
        {"v": Color.RED},
        {"v": Text("x")},
        OrderedDict(v=1),
        {1: "integer key"},
        {"v": "\udc80"},
        {"v": object()},
    ],
    ids=[
        "nan",
        "inf",
        "int-enum",
        "str-subclass",
        "dict-subclass",
        "int-key",
        "surrogate",
        "object",
    ],
)
def test_other_values_are_left_to_json(data: Any) -> None:
    assert _native.dumps_document(data, PREFIX, []) is None


def test_deep_nesting_is_left_to_json() -> None:
    data: Any = 1
    for _ in range(100):
        data = [data]
    assert _native.dumps_document(data, PREFIX, []) is None


def test_fragments_replace_their_placeholders() -> None:
    data = {"a": f"{PREFIX}0", "b": [1, f"{PREFIX}1"], "c": "x"}
    body = _native.dumps_document(data, PREFIX, [b"[1,2]", b"[]"])
    assert body == b'{"a":[1,2],"b":[1,[]],"c":"x"}'


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ({"a": f"{PREFIX}1", "b": f"{PREFIX}0"}, [b"[1]", b"[2]"]),
        ({"a": f"{PREFIX}0", "b": f"{PREFIX}0"}, [b"[1]"]),
        ({"a": f"{PREFIX}0"}, [b"[1]", b"[2]"]),
        ({f"{PREFIX}0": 1}, [b"[1]"]),
        ({"a": f"{PREFIX}0x"}, [b"[1]"]),
    ],
    ids=["out-of-order", "twice", "missing", "as-key", "trailing-text"],
)
def test_misplaced_placeholders_are_left_to_the_splicing_path(
    data: dict[str, Any], fragments: list[bytes]
) -> None:
    assert _native.dumps_document(data, PREFIX, fragments) is None


def test_fragments_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        _native.dumps_document({"a": f"{PREFIX}0"}, PREFIX, ["[1]"])  # type: ignore[list-item]
