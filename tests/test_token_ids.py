"""TokenIds gives the same results as Sequence[int] in every serialization mode."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from tinker_accel import TokenIds, dumps_model, stock_dumps, token_fragment


class Plain(BaseModel):
    tokens: Sequence[int]
    name: str = "prompt"
    weight: float = 0.5


class Fast(BaseModel):
    tokens: TokenIds
    name: str = "prompt"
    weight: float = 0.5


class Nested(BaseModel):
    turns: list[Fast]
    extra: TokenIds | None = None


@pytest.mark.parametrize(
    "tokens",
    [[], [1, 2, 3], (4, 5), [True, 2**70, -3], list(range(5000))],
)
def test_dumps_equal_sequence_int(tokens: Any) -> None:
    plain = Plain(tokens=tokens)
    fast = Fast(tokens=tokens)
    assert fast.model_dump() == plain.model_dump()
    assert type(fast.model_dump()["tokens"]) is type(plain.model_dump()["tokens"])
    assert fast.model_dump(mode="json") == plain.model_dump(mode="json")
    assert fast.model_dump_json() == plain.model_dump_json()


def test_json_mode_returns_a_new_list() -> None:
    tokens = [1, 2, 3]
    dumped = Fast(tokens=tokens).model_dump(mode="json")["tokens"]
    assert dumped == tokens
    dumped.append(4)
    assert tokens == [1, 2, 3]


def test_constructed_model_with_bool_and_index_items() -> None:
    plain = Plain.model_construct(tokens=[True, 7])
    fast = Fast.model_construct(tokens=[True, 7])
    assert (
        fast.model_dump(mode="json")
        == plain.model_dump(mode="json")
        == {
            "tokens": [1, 7],
            "name": "prompt",
            "weight": 0.5,
        }
    )


def test_dumps_model_splices_encoded_arrays() -> None:
    model = Nested(turns=[Fast(tokens=[1, 2]), Fast(tokens=(3,), name="b")], extra=[9])
    body = dumps_model(model)
    assert body == (
        b'{"turns":[{"tokens":[1,2],"name":"prompt","weight":0.5},'
        b'{"tokens":[3],"name":"b","weight":0.5}],"extra":[9]}'
    )
    assert body == stock_dumps(model)


def test_dumps_model_keeps_exclude_none() -> None:
    model = Nested(turns=[])
    assert dumps_model(model, exclude_none=True) == b'{"turns":[]}'
    assert dumps_model(model) == b'{"turns":[],"extra":null}'
    assert dumps_model(model) == stock_dumps(model)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_dumps_model_rejects_non_finite_floats_like_stock(value: float) -> None:
    model = Fast(tokens=[1], weight=value)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        stock_dumps(model)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        dumps_model(model)


def test_dumps_model_with_wide_int_outside_tokens() -> None:
    class Wide(BaseModel):
        tokens: TokenIds
        seed: int

    model = Wide(tokens=[2**70], seed=2**80)
    assert (
        dumps_model(model)
        == stock_dumps(model)
        == b'{"tokens":[1180591620717411303424],"seed":1208925819614629174706176}'
    )


def test_dumps_model_raises_encoder_type_error() -> None:
    model = Nested(turns=[Fast.model_construct(tokens=[1, "x"], name="a", weight=1.0)])
    with pytest.raises(TypeError, match="invalid token at index 1: expected an int, got str 'x'"):
        dumps_model(model)


@pytest.mark.parametrize("text", ["0", "1", "0x", ""])
def test_user_string_like_placeholder_is_kept(text: str) -> None:
    from tinker_accel._serialize import _PLACEHOLDER_PREFIX

    model = Fast(tokens=[1], name=_PLACEHOLDER_PREFIX + text)
    assert dumps_model(model) == stock_dumps(model)
    assert json.loads(dumps_model(model))["name"] == _PLACEHOLDER_PREFIX + text


@pytest.mark.parametrize("weight", [1e-05, 1e16, -0.0, 5e-324, 1.7976931348623157e308])
def test_float_notation_matches_json_dumps(weight: float) -> None:
    model = Fast(tokens=[1, 2], weight=weight)
    assert dumps_model(model) == stock_dumps(model)
    assert json.dumps(weight).encode() in dumps_model(model)


def test_token_fragment_in_orjson() -> None:
    document = {"a": token_fragment([1, 2]), "b": token_fragment(range(3))}
    assert orjson.dumps(document) == b'{"a":[1,2],"b":[0,1,2]}'


@given(
    st.lists(st.integers(min_value=-(2**63), max_value=2**64)),
    st.text(),
    st.floats(allow_nan=False, allow_infinity=False),
)
def test_random_models_match_stock(tokens: list[int], name: str, weight: float) -> None:
    fast = Fast(tokens=tokens, name=name, weight=weight)
    plain = Plain(tokens=tokens, name=name, weight=weight)
    assert fast.model_dump(mode="json") == plain.model_dump(mode="json")
    assert fast.model_dump_json() == plain.model_dump_json()
    body = dumps_model(fast)
    assert body == stock_dumps(plain)
    assert body.startswith(b'{"tokens":' + json.dumps(tokens, separators=(",", ":")).encode())


def test_token_ids_type_checks_as_sequence() -> None:
    # mypy --strict runs over the tests, so this also checks the static type.
    def first(tokens: TokenIds) -> int:
        sequence: Sequence[int] = tokens
        return sequence[0]

    assert first([3, 4]) == 3
    assert first((5,)) == 5
