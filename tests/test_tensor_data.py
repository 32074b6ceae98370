"""TensorData lists through the encoders: bodies equal to stock for every kind of list."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from tinker import types
from tinker.types._pydantic_types.datum import Datum
from tinker.types._pydantic_types.tensor_data import TensorData

import tinker_accel
from tinker_accel import _serialize, dumps_model, stock_dumps


def datum(data: Any, dtype: str = "float32", construct: bool = False, **extra: Any) -> Datum:
    tensor = (
        TensorData.model_construct(data=data, dtype=dtype, **extra)
        if construct
        else TensorData(data=data, dtype=dtype, **extra)  # type: ignore[arg-type]
    )
    return Datum(
        model_input=types.ModelInput.from_ints([1, 2, 3]),
        loss_fn_inputs={"values": tensor, "target_tokens": TensorData(data=[5, 6], dtype="int64")},
    )


@pytest.fixture
def encoder_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    original = vars(_serialize)["encode_exact"]

    def counting(values: Any) -> bytes | None:
        result: bytes | None = original(values)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(_serialize, "encode_exact", counting)
    return calls


CASES = [
    pytest.param([0.1, -0.0, 1e-05, 0.0001, 1e16, 1e15, 5e-324, 2.5], "float32", id="floats"),
    pytest.param([float(np.float32(0.1)), float(np.float32(1 / 3))], "float32", id="widened-f32"),
    pytest.param(list(range(-5, 100_000, 997)), "int64", id="ints"),
    pytest.param([1.0, 2.0, 3.0], "float32", id="integral-floats"),
]


@pytest.mark.parametrize(("data", "dtype"), CASES)
def test_validated_tensor_data_matches_stock(
    data: list[Any], dtype: str, encoder_calls: list[Any]
) -> None:
    model = datum(data, dtype)
    stock = stock_dumps(model, exclude_none=True)
    tinker_accel.enable()
    assert dumps_model(model, exclude_none=True) == stock
    # Both lists went through an encoder: the values and the target tokens.
    assert encoder_calls == [True, True]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param([1, 2.5], id="mixed"),
        pytest.param([True, 2], id="bool"),
        pytest.param((1.5, 2.5), id="tuple"),
        pytest.param([], id="empty"),
        pytest.param([np.float32(0.5)], id="numpy-scalar"),
    ],
)
def test_other_lists_take_pydantic_path(data: Any, encoder_calls: list[Any]) -> None:
    model = datum(data, construct=True)
    try:
        stock: Any = stock_dumps(model, exclude_none=True)
    except Exception as error:
        stock = type(error)
    tinker_accel.enable()
    try:
        accelerated: Any = dumps_model(model, exclude_none=True)
    except Exception as error:
        accelerated = type(error)
    assert accelerated == stock
    assert encoder_calls[0] is False


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_raise_like_stock(bad: float) -> None:
    model = datum([0.5, bad])
    with pytest.raises(ValueError, match=r"^Out of range float values are not JSON compliant"):
        stock_dumps(model, exclude_none=True)
    tinker_accel.enable()
    with pytest.raises(ValueError, match=r"^Out of range float values are not JSON compliant"):
        dumps_model(model, exclude_none=True)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param([0.5, math.nan], id="nan"),
        pytest.param([math.inf, 1.0], id="inf"),
        pytest.param([2, -math.inf], id="int-and-inf"),
    ],
)
def test_json_mode_dump_keeps_nan_like_stock(data: list[float]) -> None:
    # pydantic keeps NaN and infinity as floats in model_dump(mode="json"), so that
    # json.dumps rejects them. Writing them as None would send null instead.
    model = datum(data)
    stock = model.model_dump(mode="json")
    stock_json = model.model_dump_json()
    tinker_accel.enable()
    dumped = model.model_dump(mode="json")
    values = dumped["loss_fn_inputs"]["values"]["data"]
    assert [type(value) for value in values] == [float, float]
    assert repr(dumped) == repr(stock)
    assert model.model_dump_json() == stock_json
    with pytest.raises(ValueError, match=r"^Out of range float values are not JSON compliant"):
        json.dumps(dumped, allow_nan=False)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"include": {"data": {0}}}, id="include-index"),
        pytest.param({"include": {"data"}, "exclude": {"data": {0}}}, id="exclude-index"),
        pytest.param({"exclude": {"data": {1, 2}}}, id="exclude-indices"),
    ],
)
def test_index_sets_apply_like_stock(options: dict[str, Any]) -> None:
    model = TensorData(data=[1.0, 2.0, 3.0], dtype="float32")
    stock = model.model_dump(mode="json", **options)
    stock_json = model.model_dump_json(**options)
    tinker_accel.enable()
    assert model.model_dump(mode="json", **options) == stock
    assert model.model_dump_json(**options) == stock_json


def test_sparse_indices_and_target_prompt_logprobs(
    encoder_calls: list[Any], plan_bodies: list[str]
) -> None:
    targets = TensorData(
        data=[11, 12, 13],
        dtype="int64",
        shape=[3, 4],
        sparse_crow_indices=[0, 1, 2, 3],
        sparse_col_indices=[0, 2, 3],
    )
    request = types.SampleRequest(
        prompt=types.ModelInput.from_ints(list(range(4))),
        sampling_params=types.SamplingParams(max_tokens=1),
        target_prompt_logprobs=targets,
    )
    stock = stock_dumps(request, exclude_none=True)
    tinker_accel.enable()
    assert tinker_accel.request_body(request) == stock
    # A plan wrote the body, the three lists included.
    assert plan_bodies == ["SampleRequest"]
    assert encoder_calls == []


def test_switch_reports_and_restores_the_tensor_serializer() -> None:
    before = TensorData.model_fields["data"].annotation
    tinker_accel.enable()
    assert tinker_accel.status()["tensor_serializer"] is True
    tinker_accel.disable()
    assert tinker_accel.status()["tensor_serializer"] is False
    assert TensorData.model_fields["data"].annotation == before


def test_python_mode_dump_is_unchanged() -> None:
    model = datum([0.5, 1.5])
    stock = model.model_dump()
    tinker_accel.enable()
    assert model.model_dump() == stock
    assert model.model_dump(mode="json") == datum([0.5, 1.5]).model_dump(mode="json")


def test_float_in_sparse_indices_left_to_pydantic() -> None:
    # pydantic writes a float in a List[int] field by type inference, NaN as null.
    targets = TensorData.model_construct(
        data=[1], dtype="int64", shape=[1, 1], sparse_crow_indices=[math.nan, 0],
        sparse_col_indices=[0],
    )  # fmt: skip
    request = types.SampleRequest(
        prompt=types.ModelInput.from_ints([1, 2]),
        sampling_params=types.SamplingParams(max_tokens=1),
        target_prompt_logprobs=targets,
    )
    with pytest.warns(UserWarning, match="serialized value may not be as expected"):
        stock = stock_dumps(request, exclude_none=True)
    assert b'"sparse_crow_indices":[null,0]' in stock
    tinker_accel.enable()
    with pytest.warns(UserWarning, match="serialized value may not be as expected"):
        assert tinker_accel.request_body(request) == stock
