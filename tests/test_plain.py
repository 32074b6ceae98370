"""Request bodies written from a model's fields by a plan equal the stock bodies, and
every value that a plan cannot write exactly goes to pydantic, whose output, warnings
and errors then stay the stock ones."""

from __future__ import annotations

import gc
import math
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    create_model,
    model_serializer,
)
from pydantic_core import PydanticSerializationError
from tinker import types
from tinker.types._pydantic_types.tensor_data import TensorData

import tinker_accel
from tinker_accel import TokenIds, _plain, dumps_model, stock_dumps
from tinker_accel._backend import PlainPlan

token_lists = st.lists(st.integers(0, 2**31 - 1), max_size=40)
text_chunks = st.builds(
    types.EncodedTextChunk,
    tokens=st.one_of(token_lists, token_lists.map(tuple)),
)
pointer_chunks = st.builds(
    types.ImageAssetPointerChunk,
    location=st.text(max_size=20),
    format=st.sampled_from(["png", "jpeg"]),
    expected_tokens=st.none() | st.integers(0, 1000),
)
stops = st.one_of(
    st.none(),
    st.text(max_size=8),
    st.lists(st.text(max_size=8), max_size=3),
    st.lists(st.integers(0, 2**20), max_size=3),
    st.tuples(st.integers(0, 2**20)),
)
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def sampling_params(draw: st.DrawFn) -> types.SamplingParams:
    options: dict[str, Any] = {
        "max_tokens": draw(st.none() | st.integers(1, 2**40)),
        "seed": draw(st.none() | st.integers(-(2**70), 2**70)),
        "stop": draw(stops),
    }
    # Left out, these keep their int defaults, which pydantic writes as floats.
    for name in ("temperature", "top_p"):
        if draw(st.booleans()):
            options[name] = draw(floats)
    if draw(st.booleans()):
        options["top_k"] = draw(st.integers(-1, 100))
    return types.SamplingParams(**options)


@st.composite
def sample_requests(draw: st.DrawFn) -> types.SampleRequest:
    target = None
    if draw(st.booleans()):
        data = draw(
            st.lists(st.integers(-1, 2**20), min_size=1, max_size=8)
            | st.lists(floats, min_size=1, max_size=8)
        )
        if type(data[0]) is int:
            target = TensorData(data=data, dtype="int64", shape=[len(data)])
        else:
            target = TensorData(data=data, dtype="float32", shape=[len(data)])
    return types.SampleRequest(
        num_samples=draw(st.integers(1, 8)),
        prompt=types.ModelInput(
            chunks=draw(st.lists(text_chunks | pointer_chunks, min_size=1, max_size=4))
        ),
        sampling_params=draw(sampling_params()),
        base_model=draw(st.none() | st.text(max_size=30)),
        seq_id=draw(st.none() | st.integers(0, 2**40)),
        prompt_logprobs=draw(st.none() | st.booleans()),
        topk_prompt_logprobs=draw(st.integers(0, 20)),
        target_prompt_logprobs=target,
    )


def stock_and_accelerated(
    model: BaseModel, dump: Callable[[BaseModel], bytes]
) -> tuple[Any, Any, list[str], list[str]]:
    """Return the stock and the accelerated result of ``dump`` (bytes, or the type of
    the exception raised) and the warnings each gave."""

    def run() -> tuple[Any, list[str]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result: Any = dump(model)
            except Exception as error:
                result = type(error)
        return result, sorted(str(warning.category) for warning in caught)

    tinker_accel.disable()
    stock, stock_warnings = run()
    tinker_accel.enable()
    accelerated, accelerated_warnings = run()
    return stock, accelerated, stock_warnings, accelerated_warnings


@settings(max_examples=150, deadline=None)
@given(request=sample_requests(), exclude_none=st.booleans(), exclude_unset=st.booleans())
def test_random_requests_written_by_plan_equal_stock(
    request: types.SampleRequest, exclude_none: bool, exclude_unset: bool
) -> None:
    tinker_accel.disable()
    stock = stock_dumps(request, exclude_none=exclude_none, exclude_unset=exclude_unset)
    tinker_accel.enable()
    plan = _plain.plan_for(types.SampleRequest)
    assert plan is not None
    assert plan.dumps(request, exclude_none, exclude_unset) == stock


def constructed_requests() -> list[Any]:
    """Requests with values put in by ``model_construct`` that pydantic's serializers
    write differently from their declared type, warn about, or reject."""
    prompt = types.ModelInput.from_ints([1, 2, 3])

    def request(**sampling: Any) -> types.SampleRequest:
        params = types.SamplingParams.model_construct(**{"max_tokens": 4, **sampling})
        return types.SampleRequest(prompt=prompt, sampling_params=params)

    class Text(str):
        pass

    return [
        pytest.param("bool-in-float", request(top_p=True), id="bool-in-float"),
        pytest.param("big-int-in-float", request(temperature=2**70), id="big-int-in-float"),
        pytest.param("huge-int-in-float", request(temperature=2**1100), id="huge-int-in-float"),
        pytest.param("nan", request(temperature=math.nan), id="nan"),
        pytest.param("infinity", request(top_p=-math.inf), id="infinity"),
        pytest.param("str-in-float", request(temperature="0.5"), id="str-in-float"),
        pytest.param("bool-in-int", request(top_k=True), id="bool-in-int"),
        pytest.param("float-in-int", request(top_k=2.0), id="float-in-int"),
        pytest.param("big-int", request(max_tokens=2**80), id="big-int"),
        pytest.param("numpy-int", request(seed=np.int64(3)), id="numpy-int"),
        pytest.param("str-subclass", request(stop=Text("User:")), id="str-subclass"),
        pytest.param("lone-surrogate", request(stop="\ud800"), id="lone-surrogate"),
        pytest.param("mixed-stop", request(stop=[1, "a"]), id="mixed-stop"),
        pytest.param("bool-stop", request(stop=[True]), id="bool-stop"),
        pytest.param("set-stop", request(stop={"a"}), id="set-stop"),
        pytest.param(
            "literal-other-value",
            types.SampleRequest.model_construct(
                prompt=prompt, sampling_params=types.SamplingParams(), type="other"
            ),
            id="literal-other-value",
        ),
        pytest.param(
            "float-token",
            types.SampleRequest.model_construct(
                prompt=types.ModelInput.model_construct(
                    chunks=[types.EncodedTextChunk.model_construct(tokens=[1, 2.5])]
                ),
                sampling_params=types.SamplingParams(),
            ),
            id="float-token",
        ),
        pytest.param(
            "numpy-tokens",
            types.SampleRequest.model_construct(
                prompt=types.ModelInput.model_construct(
                    chunks=[types.EncodedTextChunk.model_construct(tokens=np.arange(5))]
                ),
                sampling_params=types.SamplingParams(),
            ),
            id="numpy-tokens",
        ),
        pytest.param(
            "dict-chunk",
            types.SampleRequest.model_construct(
                prompt=types.ModelInput.model_construct(chunks=[{"tokens": [1], "type": "x"}]),
                sampling_params=types.SamplingParams(),
            ),
            id="dict-chunk",
        ),
        pytest.param(
            "nan-tensor",
            types.SampleRequest.model_construct(
                prompt=prompt,
                sampling_params=types.SamplingParams(),
                target_prompt_logprobs=TensorData.model_construct(
                    data=[1.0, math.nan], dtype="float32"
                ),
            ),
            id="nan-tensor",
        ),
    ]


# Token values where the accelerated path differs from stock by design, with or
# without plans (README, "What `enable()` does"). It rejects a float token with the
# encoder's TypeError, where pydantic writes it with a warning. It writes a numpy
# array put in with model_construct, where pydantic raises.
KNOWN_DIFFERENCES = {"float-token", "numpy-tokens"}


@pytest.mark.parametrize(("case", "request_"), constructed_requests())
def test_constructed_values_match_path_without_plans(
    case: str, request_: types.SampleRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    def dump(model: BaseModel) -> bytes:
        return dumps_model(model, exclude_none=True)

    stock, accelerated, stock_warnings, accelerated_warnings = stock_and_accelerated(request_, dump)
    monkeypatch.setattr(_plain, "plan_for", lambda model_class: None)
    _, without_plans, _, without_plans_warnings = stock_and_accelerated(request_, dump)
    assert accelerated == without_plans
    assert accelerated_warnings == without_plans_warnings
    if case in KNOWN_DIFFERENCES:
        assert stock != accelerated
    else:
        assert accelerated == stock
        assert accelerated_warnings == stock_warnings


def test_float_field_int_default_planned(plan_bodies: list[str]) -> None:
    request = types.SampleRequest(
        prompt=types.ModelInput.from_ints([5, 6]),
        sampling_params=types.SamplingParams(max_tokens=2, stop=[7, 8]),
    )
    assert type(request.sampling_params.top_p) is int
    stock = stock_dumps(request, exclude_none=True)
    tinker_accel.enable()
    assert tinker_accel.request_body(request) == stock
    assert b'"top_p":1.0' in stock
    assert plan_bodies == ["SampleRequest"]


def test_image_chunk_goes_to_pydantic(plan_bodies: list[str]) -> None:
    request = types.SampleRequest(
        prompt=types.ModelInput(
            chunks=[
                types.EncodedTextChunk(tokens=[1, 2]),
                types.ImageChunk(data=b"\x89PNG", format="png"),
            ]
        ),
        sampling_params=types.SamplingParams(max_tokens=2),
    )
    stock = stock_dumps(request, exclude_none=True)
    tinker_accel.enable()
    assert tinker_accel.request_body(request) == stock
    assert plan_bodies == []


@pytest.mark.parametrize(
    ("options", "planned"),
    [
        ({"exclude_none": True}, True),
        ({"exclude_none": False, "exclude_unset": False, "warnings": False}, True),
        ({"exclude": None}, True),
        ({"exclude_unset": True}, True),
        ({"exclude_unset": True, "exclude_none": True}, True),
        ({"exclude_defaults": True}, False),
        ({"exclude": {"seq_id"}}, False),
        ({"by_alias": True}, False),
    ],
)
def test_dump_options_outside_plans_go_to_pydantic(
    options: dict[str, Any], planned: bool, plan_bodies: list[str]
) -> None:
    request = types.SampleRequest(
        prompt=types.ModelInput.from_ints([5, 6]),
        sampling_params=types.SamplingParams(max_tokens=2),
        seq_id=None,
    )
    stock = stock_dumps(request, **options)
    tinker_accel.enable()
    assert dumps_model(request, **options) == stock
    assert plan_bodies == (["SampleRequest"] if planned else [])


def test_plans_follow_schema_rebuilds() -> None:
    tinker_accel.disable()
    stock_plan = _plain.plan_for(types.SampleRequest)
    assert _plain.plan_for(types.SampleRequest) is stock_plan
    tinker_accel.enable()
    enabled_plan = _plain.plan_for(types.SampleRequest)
    assert enabled_plan is not None
    assert enabled_plan is not stock_plan


class WithTokens(BaseModel):
    tokens: TokenIds
    weights: list[float] = []
    label: str | None = None


class Aliased(BaseModel):
    tokens: TokenIds
    label: str = Field(default="x", serialization_alias="name")


class Computed(BaseModel):
    tokens: TokenIds

    @computed_field  # type: ignore[prop-decorator]
    @property
    def count(self) -> int:
        return len(self.tokens)


class CustomSerializer(BaseModel):
    tokens: TokenIds

    @model_serializer
    def serialize(self) -> dict[str, Any]:
        return {"n": len(self.tokens)}


class Extra(BaseModel):
    model_config = ConfigDict(extra="allow")
    tokens: TokenIds


class Excluded(BaseModel):
    tokens: TokenIds
    secret: str = Field(default="s", exclude=True)


class Holder(BaseModel):
    inner: WithTokens
    others: Sequence[WithTokens] = ()


@pytest.mark.parametrize(
    ("model", "planned"),
    [
        pytest.param(WithTokens(tokens=[1, 2], weights=[0.5, 1e-05]), True, id="plain"),
        pytest.param(
            Holder(inner=WithTokens(tokens=(3,)), others=[WithTokens(tokens=[4], label="a")]),
            True,
            id="nested",
        ),
        pytest.param(Aliased(tokens=[1]), False, id="alias"),
        pytest.param(Computed(tokens=[1]), False, id="computed-field"),
        pytest.param(CustomSerializer(tokens=[1]), False, id="model-serializer"),
        pytest.param(
            Extra(tokens=[1], more=2),  # type: ignore[call-arg]
            False,
            id="extra-allowed",
        ),
        pytest.param(Excluded(tokens=[1]), False, id="excluded-field"),
    ],
)
def test_user_models_match_stock(model: BaseModel, planned: bool, plan_bodies: list[str]) -> None:
    expected = stock_dumps(model)
    assert dumps_model(model) == expected
    assert plan_bodies == ([type(model).__name__] if planned else [])


def test_invalid_plan_trees_raise_value_error() -> None:
    assert PlainPlan is not None
    with pytest.raises(ValueError, match="must describe a model"):
        PlainPlan(("int",))
    with pytest.raises(ValueError, match="invalid plan node"):
        PlainPlan(("model", WithTokens, (("tokens", b'"tokens":', ("no such kind",)),)))
    with pytest.raises(TypeError):
        PlainPlan(("model", "not a class", ()))


def without_plans(monkeypatch: pytest.MonkeyPatch, dump: Callable[[], Any]) -> Any:
    """Return what ``dump`` returns, or the type of what it raises, with plans off."""
    with monkeypatch.context() as patch:
        patch.setattr(_plain, "plan_for", lambda model_class: None)
        try:
            return dump()
        except Exception as error:
            return type(error)


def test_reordered_dict_goes_to_pydantic(plan_bodies: list[str]) -> None:
    # pydantic writes fields in the order of the model's __dict__.
    model = WithTokens(tokens=[1, 2], weights=[0.5], label="a")
    del model.tokens
    model.tokens = [3]
    expected = stock_dumps(model)
    assert expected.startswith(b'{"weights"')
    assert dumps_model(model) == expected
    assert plan_bodies == []


class OverridesDump(BaseModel):
    tokens: TokenIds

    def model_dump(self, **options: Any) -> dict[str, Any]:
        data = super().model_dump(**options)
        data["version"] = 2
        return data


def test_overridden_model_dump_is_kept(plan_bodies: list[str]) -> None:
    model = OverridesDump(tokens=[1, 2])
    assert dumps_model(model) == b'{"tokens":[1,2],"version":2}'
    assert plan_bodies == []


@pytest.mark.parametrize(
    "options",
    [
        {"exclude_none": "yes"},
        {"exclude_none": 1},
        {"exclude_unset": None},
        {"exclude_defaults": 0},
        {"warnings": "bogus"},
    ],
)
def test_invalid_option_values_raise_like_stock(options: dict[str, Any]) -> None:
    model = WithTokens(tokens=[1, 2])
    with pytest.raises((TypeError, ValueError)) as stock:
        stock_dumps(model, **options)
    with pytest.raises((TypeError, ValueError)) as accelerated:
        dumps_model(model, **options)
    assert type(accelerated.value) is type(stock.value)


class Tree(BaseModel):
    tokens: TokenIds = ()
    left: Tree | None = None
    middle: Tree | None = None
    right: Tree | None = None


def test_recursive_model_is_planned_up_to_recursion(plan_bodies: list[str]) -> None:
    # Each recursive field is left to pydantic where a value fills it, so the plan
    # stays small however often the model refers to itself.
    leaf = Tree(tokens=[1])
    assert _plain.plan_tree(Tree) is not None
    assert dumps_model(leaf) == stock_dumps(leaf)
    nested = Tree(tokens=[2], left=leaf, right=Tree(middle=leaf))
    assert dumps_model(nested) == stock_dumps(nested)
    assert plan_bodies == ["Tree"]


def test_plans_do_not_keep_classes_alive() -> None:
    model_class = create_model("Made", tokens=(TokenIds, ...))
    assert dumps_model(model_class(tokens=[1])) == b'{"tokens":[1]}'
    assert _plain.plan_for(model_class) is not None
    reference = weakref.ref(model_class)
    del model_class
    gc.collect()
    assert reference() is None


def test_subclass_does_not_use_parent_plan(plan_bodies: list[str]) -> None:
    class Child(WithTokens):
        extra: int = 3

    assert dumps_model(WithTokens(tokens=[1])) == b'{"tokens":[1],"weights":[],"label":null}'
    child = Child(tokens=[2])
    assert dumps_model(child) == stock_dumps(child)
    assert plan_bodies == ["WithTokens", "Child"]


class RaisingToken:
    def __index__(self) -> int:
        raise RuntimeError("no index")


class CountingToken:
    calls = 0

    def __index__(self) -> int:
        CountingToken.calls += 1
        return CountingToken.calls


def constructed_request(tokens: list[Any], base_model: str = "m") -> types.SampleRequest:
    chunk = types.EncodedTextChunk.model_construct(tokens=tokens)
    return types.SampleRequest.model_construct(
        prompt=types.ModelInput.model_construct(chunks=[chunk]),
        sampling_params=types.SamplingParams(max_tokens=1),
        base_model=base_model,
    )


def test_index_errors_take_pydantic_path(monkeypatch: pytest.MonkeyPatch) -> None:
    tinker_accel.enable()
    request = constructed_request([1, RaisingToken()])

    def dump() -> bytes:
        return dumps_model(request, exclude_none=True)

    assert without_plans(monkeypatch, dump) is PydanticSerializationError
    with pytest.raises(PydanticSerializationError):
        dump()


def test_index_runs_once_when_plan_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    class Text(str):
        pass

    tinker_accel.enable()
    # The str subclass makes the plan give up after the tokens: their __index__ must
    # run only on the path that writes the body.
    CountingToken.calls = 0
    accelerated = dumps_model(constructed_request([CountingToken()], Text("m")), exclude_none=True)
    accelerated_calls = CountingToken.calls
    CountingToken.calls = 0
    expected = without_plans(
        monkeypatch,
        lambda: dumps_model(constructed_request([CountingToken()], Text("m")), exclude_none=True),
    )
    assert accelerated == expected
    assert accelerated_calls == CountingToken.calls == 1


class WithMapping(BaseModel):
    tokens: TokenIds
    inputs: dict[str, list[float]]


class Batch(BaseModel):
    items: list[WithMapping]


def test_always_stopping_field_leaves_no_plan(plan_bodies: list[str]) -> None:
    # A required field that no plan writes (a dict here, as in tinker's Datum) would
    # make the plan encode the tokens before it and then give up on every call.
    assert _plain.plan_for(WithMapping) is None
    assert _plain.plan_for(Batch) is None
    batch = Batch(items=[WithMapping(tokens=[1, 2], inputs={"w": [0.5]})])
    assert dumps_model(batch) == stock_dumps(batch)
    assert plan_bodies == []


class Pair(BaseModel):
    item: WithMapping | WithTokens


def test_union_passes_over_unplannable_class(plan_bodies: list[str]) -> None:
    planned = Pair(item=WithTokens(tokens=[3]))
    assert dumps_model(planned) == stock_dumps(planned)
    unplanned = Pair(item=WithMapping(tokens=[4], inputs={}))
    assert dumps_model(unplanned) == stock_dumps(unplanned)
    assert plan_bodies == ["Pair"]
