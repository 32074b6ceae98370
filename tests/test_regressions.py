"""Faults found by review, each pinned by the output it must give."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pydantic
import pytest
from pydantic import BaseModel, field_serializer, model_serializer
from tinker import types

import tinker_accel
from tinker_accel import TokenIds, dumps_model, encode_tokens, request_body, stock_dumps


class LyingLength:
    """A sequence of three items whose ``__len__`` claims ``claimed``."""

    def __init__(self, claimed: int) -> None:
        self.claimed = claimed

    def __len__(self) -> int:
        return self.claimed

    def __getitem__(self, index: int) -> int:
        if index >= 3:
            raise IndexError(index)
        return index


@pytest.mark.parametrize("tokens", [range(2**40), range(2**62)])
def test_huge_range_raises_memory_error(tokens: range) -> None:
    with pytest.raises(MemoryError, match=r"cannot allocate \d+ bytes for the JSON output"):
        encode_tokens(tokens)


def test_huge_broadcast_view_raises_memory_error() -> None:
    with pytest.raises(MemoryError, match="cannot allocate 34359738370 bytes"):
        encode_tokens(np.broadcast_to(np.uint8(7), (2**34,)))


@pytest.mark.parametrize("claimed", [2**40, sys.maxsize])
def test_lying_length_is_only_a_hint(claimed: int) -> None:
    assert encode_tokens(LyingLength(claimed)) == b"[0,1,2]"


def test_huge_chunk_raises_memory_error_through_switch() -> None:
    chunk = types.EncodedTextChunk.model_construct(tokens=range(2**40))
    request = types.SampleRequest(
        prompt=types.ModelInput.model_construct(chunks=[chunk]),
        sampling_params=types.SamplingParams(),
    )
    tinker_accel.enable()
    with pytest.raises(MemoryError):
        request_body(request)


def test_masked_array_with_masked_entries_rejected() -> None:
    tokens = np.ma.array([1, 2, 3], mask=[False, True, False])
    with pytest.raises(TypeError) as caught:
        encode_tokens(tokens)
    assert str(caught.value) == (
        "cannot encode a masked array with masked entries (1 of 3): fill them with "
        "tokens.filled(value) or drop them with tokens.compressed() first"
    )
    assert encode_tokens(np.ma.array([1, 2, 3])) == b"[1,2,3]"
    assert encode_tokens(tokens.compressed()) == b"[1,3]"


class Plain(BaseModel):
    tokens: Sequence[int]


class Fast(BaseModel):
    tokens: TokenIds


@pytest.mark.parametrize(
    "options",
    [
        {"include": {"tokens": {0}}},
        {"include": {"tokens": {0, 2}}},
        {"exclude": {"tokens": {1}}},
        {"exclude": {"tokens": {"__all__"}}},
    ],
)
def test_item_include_exclude_match_sequence(options: dict[str, Any]) -> None:
    plain, fast = Plain(tokens=[1, 2, 3]), Fast(tokens=[1, 2, 3])
    assert fast.model_dump(mode="json", **options) == plain.model_dump(mode="json", **options)
    assert fast.model_dump_json(**options) == plain.model_dump_json(**options)
    assert dumps_model(fast, **options) == stock_dumps(plain, **options)


def test_union_with_other_member_falls_through() -> None:
    class Either(BaseModel):
        tokens: TokenIds | list[str]

    model = Either(tokens=["a", "b"])
    assert dumps_model(model) == stock_dumps(model) == b'{"tokens":["a","b"]}'
    assert dumps_model(Either(tokens=[4, 5])) == b'{"tokens":[4,5]}'


def test_fallback_keeps_user_context() -> None:
    class Shouting(BaseModel):
        name: str
        tokens: TokenIds

        @field_serializer("name")
        def shout(self, value: str, info: pydantic.FieldSerializationInfo) -> str:
            context = info.context or {}
            return value.upper() if context.get("upper") else value

    from tinker_accel._serialize import _PLACEHOLDER_PREFIX

    # A name that looks like a placeholder forces the stock fallback.
    model = Shouting(name=_PLACEHOLDER_PREFIX + "0", tokens=[1])
    expected = stock_dumps(model, context={"upper": True})
    assert dumps_model(model, context={"upper": True}) == expected
    assert dumps_model(Shouting(name="abc", tokens=[1]), context={"upper": True}) == (
        b'{"name":"ABC","tokens":[1]}'
    )


def test_non_dict_context_is_passed_through() -> None:
    model = Fast(tokens=[1, 2])
    assert dumps_model(model, context="anything") == stock_dumps(model) == b'{"tokens":[1,2]}'


def test_wrap_model_serializer_output_matches_stock() -> None:
    class Reordered(BaseModel):
        first: int
        tokens: TokenIds

        @model_serializer(mode="wrap")
        def reorder(self, handler: pydantic.SerializerFunctionWrapHandler) -> dict[str, Any]:
            data: dict[str, Any] = handler(self)
            return {"tokens": data["tokens"], "first": data["first"]}

    model = Reordered(first=1, tokens=[7, 8])
    assert dumps_model(model) == stock_dumps(model) == b'{"tokens":[7,8],"first":1}'


def test_user_class_named_like_chunk_keeps_own_serializer() -> None:
    class EncodedTextChunk(BaseModel):
        tokens: Sequence[int]
        type: str = "encoded_text"

        @field_serializer("tokens")
        def shift(self, tokens: Sequence[int]) -> list[int]:
            return [token + 1000 for token in tokens]

    request = types.SampleRequest(
        prompt=types.ModelInput.model_construct(chunks=[EncodedTextChunk(tokens=[1, 2])]),
        sampling_params=types.SamplingParams(),
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stock = stock_dumps(request, exclude_none=True)
        tinker_accel.enable()
        accelerated = request_body(request)
    assert b"[1001,1002]" in stock
    assert accelerated == stock


def test_disable_restores_models_imported_while_enabled() -> None:
    module = importlib.import_module("tinker.types._pydantic_types.forward_backward_input")
    tinker_accel.enable()
    module = importlib.reload(module)
    assert "_StockPythonMode" in repr(module.ForwardBackwardInput.__pydantic_core_schema__)
    tinker_accel.disable()
    assert "_StockPythonMode" not in repr(module.ForwardBackwardInput.__pydantic_core_schema__)


def test_token_ids_serialization_json_schema() -> None:
    assert (
        Fast.model_json_schema(mode="serialization")["properties"]["tokens"]
        == (Plain.model_json_schema(mode="serialization")["properties"]["tokens"])
    )


def test_repr_survives_len_that_raises(accelerated: None) -> None:
    class Broken(list[int]):
        def __len__(self) -> int:
            raise ValueError("no length")

    chunk = types.EncodedTextChunk.model_construct(tokens=Broken([1, 2]))
    assert repr(chunk) == "EncodedTextChunk(tokens=[1, 2], type='encoded_text')"


@pytest.mark.parametrize(
    "tokens",
    [range(0, 2**64), range(-(2**63), 2**63 - 1), range(2**100, 2**100 + 2**40)],
    ids=["len overflows", "len overflows signed", "values beyond 64 bits"],
)
@pytest.mark.parametrize("backend", ["native", "fallback"])
def test_huge_ranges_fail_at_once(tokens: range, backend: str) -> None:
    from tinker_accel import _fallback, _native

    encode = _native.encode_tokens if backend == "native" else _fallback.encode_tokens
    with pytest.raises(MemoryError, match="cannot allocate"):
        encode(tokens)


def test_wide_range_values_still_encode() -> None:
    tokens = range(2**100, 2**100 + 3)
    assert encode_tokens(tokens) == ("[" + ",".join(map(str, tokens)) + "]").encode()


def test_class_with_non_string_module() -> None:
    from collections.abc import Sequence as SequenceBase

    class Three(SequenceBase[int]):
        def __len__(self) -> int:
            return 3

        def __getitem__(self, index: Any) -> Any:
            if index >= 3:
                raise IndexError(index)
            return index

    odd = type("Odd", (Three,), {"__module__": None})
    assert encode_tokens(odd()) == b"[0,1,2]"


def test_length_hint_errors_other_than_exception_propagate() -> None:
    class Interrupting:
        def __len__(self) -> int:
            raise KeyboardInterrupt

        def __getitem__(self, index: int) -> int:
            if index >= 2:
                raise IndexError(index)
            return index

    class Failing(Interrupting):
        def __len__(self) -> int:
            raise RuntimeError("no length")

    with pytest.raises(KeyboardInterrupt):
        encode_tokens(Interrupting())
    assert encode_tokens(Failing()) == b"[0,1]"
