"""The tinker switch: what enable() changes, what disable() restores, and the rule
that an accelerated body is the stock body."""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import warnings
from typing import Any

import pydantic
import pytest
import tinker.resources.sampling as sampling_resource
from tinker import types
from tinker.types._pydantic_types.tensor_data import TensorData

import tinker_accel
from tinker_accel import request_body, stock_dumps


def current_model_dump() -> Any:
    """Return the model_dump function the sampling resource calls right now."""
    return getattr(sampling_resource, "model_dump")  # noqa: B009


def stock_body(request: types.SampleRequest) -> bytes:
    """The body stock tinker sends: its resource's model_dump, then httpx's json encoding."""
    return stock_dumps(request, exclude_unset=False, exclude_none=True)


def full_request(tokens: list[int]) -> types.SampleRequest:
    """A SampleRequest with every field set and every chunk kind in its prompt."""
    prompt = types.ModelInput(
        chunks=[
            types.EncodedTextChunk(tokens=tokens),
            types.ImageChunk(data=b"\x89PNG\r\n", format="png", expected_tokens=4),
            types.ImageAssetPointerChunk(
                location="tinker://image/1", format="jpeg", expected_tokens=2
            ),
            types.EncodedTextChunk(tokens=(7, 8, 9)),
        ]
    )
    return types.SampleRequest(
        num_samples=3,
        prompt=prompt,
        sampling_params=types.SamplingParams(
            max_tokens=128, seed=2**40, stop=[151643, 25], temperature=0.7, top_k=50, top_p=0.95
        ),
        base_model="Qwen/Qwen3-8B",
        model_path="tinker://run/weights/7",
        sampling_session_id="sess-ü-1",
        seq_id=4,
        prompt_logprobs=True,
        topk_prompt_logprobs=5,
        topk_sample_logprobs=2,
        target_prompt_logprobs=TensorData(data=[1, -1, 3, 4], dtype="int64", shape=[2, 2]),
        prompt_alt_tokens_k=1,
        prompt_logprobs_last_n=16,
        record_stability_info=False,
    )


TOKENS = [0, 9, 10, 151643, 199_999, 2**31 - 1, *range(1000, 3000)]


def test_switch_state() -> None:
    assert not tinker_accel.is_enabled()
    tinker_accel.enable()
    tinker_accel.enable()
    assert tinker_accel.is_enabled()
    tinker_accel.disable()
    tinker_accel.disable()
    assert not tinker_accel.is_enabled()


def test_every_field_byte_identical() -> None:
    request = full_request(TOKENS)
    stock = stock_body(request)
    tinker_accel.enable()
    accelerated = request_body(request)
    assert accelerated == stock
    assert json.loads(accelerated)["prompt"]["chunks"][0]["tokens"] == TOKENS


def test_request_built_before_enable_uses_encoder(accelerated: None) -> None:
    # Parents built before enable() must not keep the old serializer: the encoder's
    # error for a bad token shows that the new one ran for a SampleRequest.
    chunk = types.EncodedTextChunk.model_construct(tokens=[1, 2, 3.5])
    request = types.SampleRequest(
        prompt=types.ModelInput(chunks=[chunk]), sampling_params=types.SamplingParams()
    )
    with pytest.raises(
        TypeError, match=r"invalid token at index 2: expected an int, got float 3\.5"
    ):
        request_body(request)


def _models_with_tokens() -> list[type[pydantic.BaseModel]]:
    from tinker_accel._tinker import _tinker_models

    return [
        model
        for model in _tinker_models()
        if "EncodedTextChunk" in repr(model.__pydantic_core_schema__)
    ]


def test_every_tinker_model_with_tokens_is_rebuilt() -> None:
    # Import the models that hold a ModelInput deeper down before enabling, so that
    # enable() has to find and rebuild them.
    pydantic_datum = pytest.importorskip("tinker.types._pydantic_types.forward_backward_input")
    tinker_accel.enable()
    containing = _models_with_tokens()
    assert types.SampleRequest in containing
    assert pydantic_datum.ForwardBackwardInput in containing
    for model in containing:
        assert "_StockPythonMode" in repr(model.__pydantic_core_schema__), model.__name__
    tinker_accel.disable()
    for model in containing:
        assert "_StockPythonMode" not in repr(model.__pydantic_core_schema__), model.__name__


def test_model_defined_after_enable_uses_encoder(accelerated: None) -> None:
    class Episode(pydantic.BaseModel):
        prompt: types.ModelInput

    episode = Episode(prompt=types.ModelInput.from_ints([5, 6]))
    assert "_StockPythonMode" in repr(Episode.__pydantic_core_schema__)
    assert (
        tinker_accel.dumps_model(episode)
        == b'{"prompt":{"chunks":[{"tokens":[5,6],"type":"encoded_text"}]}}'
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature", float("nan")), ("top_p", float("inf")), ("temperature", float("-inf"))],
)
def test_non_finite_sampling_params_rejected_like_stock(field: str, value: float) -> None:
    params = types.SamplingParams.model_validate({"max_tokens": 4, field: value})
    request = types.SampleRequest(prompt=types.ModelInput.from_ints([1, 2]), sampling_params=params)
    with pytest.raises(ValueError, match="Out of range float") as stock_error:
        stock_body(request)
    tinker_accel.enable()
    with pytest.raises(ValueError, match="Out of range float") as accelerated_error:
        request_body(request)
    assert str(accelerated_error.value) == str(stock_error.value)
    assert "Out of range float values are not JSON compliant" in str(stock_error.value)


def test_non_finite_tensor_data_rejected_like_stock() -> None:
    request = full_request([1, 2]).model_copy(
        update={"target_prompt_logprobs": TensorData(data=[1.0, float("nan")], dtype="float32")}
    )
    with pytest.raises(ValueError, match="Out of range float"):
        stock_body(request)
    tinker_accel.enable()
    with pytest.raises(ValueError, match="Out of range float"):
        request_body(request)


def test_repr_shows_count_not_tokens(accelerated: None) -> None:
    chunk = types.EncodedTextChunk(tokens=list(range(100_000)))
    assert repr(chunk) == "EncodedTextChunk(tokens=<100000 tokens>, type='encoded_text')"
    model_input = types.ModelInput(chunks=[chunk, types.EncodedTextChunk(tokens=[1])])
    assert repr(model_input) == (
        "ModelInput(chunks=[EncodedTextChunk(tokens=<100000 tokens>, type='encoded_text'), "
        "EncodedTextChunk(tokens=<1 tokens>, type='encoded_text')])"
    )


def test_disable_restores_stock_behaviour() -> None:
    stock_annotation = types.EncodedTextChunk.model_fields["tokens"].annotation
    stock_dump = current_model_dump()
    stock_repr = repr(types.EncodedTextChunk(tokens=[1, 2]))
    stock_schema = repr(types.SampleRequest.__pydantic_core_schema__)

    tinker_accel.enable()
    assert current_model_dump() is not stock_dump
    tinker_accel.disable()

    assert types.EncodedTextChunk.model_fields["tokens"].annotation == stock_annotation
    assert current_model_dump() is stock_dump
    assert repr(types.EncodedTextChunk(tokens=[1, 2])) == stock_repr
    assert "_StockPythonMode" not in repr(types.SampleRequest.__pydantic_core_schema__)
    assert repr(types.SampleRequest.__pydantic_core_schema__).count(
        "function"
    ) == stock_schema.count("function")
    request = full_request(TOKENS)
    assert stock_body(request) == stock_dumps(request, exclude_none=True)


def test_sampling_resource_sends_bytes_when_enabled(accelerated: None) -> None:
    request = full_request(TOKENS)
    body = current_model_dump()(request, exclude_unset=False, exclude_none=True, mode="json")
    assert isinstance(body, bytes)
    assert body == request_body(request)
    python_mode = current_model_dump()(request, exclude_none=True)
    assert isinstance(python_mode, dict)


@pytest.fixture
def reloaded_chunk_class() -> type[pydantic.BaseModel]:
    """A second copy of EncodedTextChunk, as notebook autoreload produces."""
    import tinker.types.encoded_text_chunk as module

    original = module.EncodedTextChunk
    importlib.reload(module)
    copy = module.EncodedTextChunk
    module.EncodedTextChunk = original  # type: ignore[misc]
    assert copy is not original
    return copy


def test_foreign_chunk_serializes_like_real_one(
    reloaded_chunk_class: type[pydantic.BaseModel], accelerated: None
) -> None:
    tokens = list(range(5000))
    real = full_request(tokens)
    foreign_prompt = types.ModelInput.model_construct(
        chunks=[reloaded_chunk_class(tokens=tokens), *real.prompt.chunks[1:]]
    )
    foreign = real.model_copy(update={"prompt": foreign_prompt})

    repr_calls = 0

    def counting_repr_args(self: Any) -> Any:
        nonlocal repr_calls
        repr_calls += 1
        return pydantic.BaseModel.__repr_args__(self)

    reloaded_chunk_class.__repr_args__ = counting_repr_args  # type: ignore[method-assign]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        body = request_body(foreign)
        dumped = foreign.model_dump(mode="json", exclude_none=True)
    assert body == request_body(real)
    assert dumped == real.model_dump(mode="json", exclude_none=True)
    # The stock path formats the chunk's repr once per token; this one never does.
    assert repr_calls == 0


def test_foreign_chunk_with_bad_token(
    reloaded_chunk_class: type[pydantic.BaseModel], accelerated: None
) -> None:
    chunk = reloaded_chunk_class.model_construct(tokens=[*range(3000), "oops"])
    request = types.SampleRequest(
        prompt=types.ModelInput.model_construct(chunks=[chunk]),
        sampling_params=types.SamplingParams(),
    )
    with pytest.raises(
        TypeError, match="invalid token at index 3000: expected an int, got str 'oops'"
    ):
        request_body(request)


def run_python(code: str, environment: dict[str, str]) -> str:
    """Run ``code`` in a new interpreter and return what it printed, stripped."""
    output = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    return output.stdout.strip()


def test_environment_variable_enables_on_import() -> None:
    code = "import tinker_accel; print(tinker_accel.is_enabled())"
    environment = {**os.environ, "TINKER_ACCEL": "1"}
    assert run_python(code, environment) == "True"
    environment["TINKER_ACCEL"] = "0"
    assert run_python(code, environment) == "False"


def test_old_httpx_keeps_stock_bodies(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    stock_dump = current_model_dump()
    monkeypatch.setattr(httpx, "__version__", "0.27.2")
    tinker_accel.enable()
    # httpx before 0.28 writes spaced JSON, which pre-encoded bodies would not match.
    assert current_model_dump() is stock_dump
    assert "_StockPythonMode" in repr(types.SampleRequest.__pydantic_core_schema__)
    tinker_accel.disable()
    assert current_model_dump() is stock_dump


def test_status_reports_state() -> None:
    off = tinker_accel.status()
    assert off["enabled"] is False
    assert off["token_serializer"] is False
    assert off["pre_encoded_bodies"] is False
    assert off["problem"] is None
    assert off["tinker_version"] == importlib.metadata.version("tinker")
    assert off["pydantic_version"] == pydantic.VERSION
    assert off["list_reader"] in {"direct", "api"}
    tinker_accel.enable()
    on = tinker_accel.status()
    assert on["enabled"] is True
    assert on["token_serializer"] is True
    assert on["pre_encoded_bodies"] is True


def test_unknown_tinker_layout_left_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    # A tinker whose chunk class lost its token field: enable() must not half-patch it.
    stock_dump = current_model_dump()
    fields = dict(types.EncodedTextChunk.model_fields)
    del fields["tokens"]
    monkeypatch.setattr(types.EncodedTextChunk, "model_fields", fields)
    with pytest.warns(RuntimeWarning, match="EncodedTextChunk has no 'tokens' field"):
        tinker_accel.enable()
    assert not tinker_accel.is_enabled()
    assert current_model_dump() is stock_dump
    assert "no 'tokens' field" in tinker_accel.status()["problem"]


def test_failure_while_patching_is_rolled_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from tinker_accel import _tinker

    stock_dump = current_model_dump()
    stock_repr = repr(types.EncodedTextChunk(tokens=[1, 2]))

    rebuild = _tinker._rebuild
    calls = 0

    def rebuild_failing_once(models: list[type[pydantic.BaseModel]]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("schema rebuild failed")
        rebuild(models)

    monkeypatch.setattr(_tinker, "_rebuild", rebuild_failing_once)
    with pytest.warns(RuntimeWarning, match="patching failed: RuntimeError"):
        tinker_accel.enable()
    monkeypatch.undo()
    assert not tinker_accel.is_enabled()
    assert current_model_dump() is stock_dump
    assert repr(types.EncodedTextChunk(tokens=[1, 2])) == stock_repr
    assert "_StockPythonMode" not in repr(types.SampleRequest.__pydantic_core_schema__)
    request = full_request(TOKENS)
    assert stock_body(request) == stock_dumps(request, exclude_none=True)


def test_environment_variable_forces_off(monkeypatch: pytest.MonkeyPatch) -> None:
    stock_dump = current_model_dump()
    for value in ("0", "false", "OFF", " no "):
        monkeypatch.setenv("TINKER_ACCEL", value)
        tinker_accel.enable()
        assert not tinker_accel.is_enabled()
        assert current_model_dump() is stock_dump
        assert tinker_accel.status()["problem"] == "TINKER_ACCEL is set to turn the accelerator off"
    monkeypatch.setenv("TINKER_ACCEL", "maybe")
    tinker_accel.enable()
    assert tinker_accel.is_enabled()


def _startup_hook_installed() -> bool:
    import site

    return any(
        os.path.exists(os.path.join(directory, "tinker_accel_startup.pth"))
        for directory in site.getsitepackages()
    )


@pytest.mark.skipif(
    not _startup_hook_installed(), reason="start-up hook is installed by wheels only"
)
def test_startup_hook_enables_without_code() -> None:
    code = "import sys; print('tinker_accel' in sys.modules)"
    check = "import sys, tinker_accel; print(tinker_accel.is_enabled())"
    environment = {key: value for key, value in os.environ.items() if key != "TINKER_ACCEL"}
    # Without the variable the hook imports nothing.
    assert run_python(code, environment) == "False"
    environment["TINKER_ACCEL"] = "1"
    assert run_python(code, environment) == "True"
    assert run_python(check, environment) == "True"


@pytest.mark.parametrize(
    ("package", "found", "message"),
    [
        ("tinker", "0.9.0", "tinker 0.9.0 is outside the tested range (>= 0.10.0, < 0.39.0)"),
        ("tinker", "0.39.0", "tinker 0.39.0 is outside the tested range (>= 0.10.0, < 0.39.0)"),
        ("tinker", "unknown", "tinker unknown is outside the tested range"),
        ("pydantic", "2.6.4", "pydantic 2.6.4 is outside the tested range (>= 2.7.0, < 3.0.0)"),
    ],
)
def test_untested_versions_leave_tinker_unchanged(
    monkeypatch: pytest.MonkeyPatch, package: str, found: str, message: str
) -> None:
    import pydantic

    from tinker_accel import _tinker

    monkeypatch.delenv("TINKER_ACCEL_ALLOW_UNTESTED", raising=False)
    if package == "tinker":
        monkeypatch.setattr(_tinker, "_tinker_version", lambda: found)
    else:
        monkeypatch.setattr(pydantic, "VERSION", found)
    annotation = types.EncodedTextChunk.model_fields["tokens"].annotation
    with pytest.warns(RuntimeWarning, match=re.escape(message)):
        tinker_accel.enable()
    assert not tinker_accel.is_enabled()
    assert message in tinker_accel.status()["problem"]
    assert "TINKER_ACCEL_ALLOW_UNTESTED=1" in tinker_accel.status()["problem"]
    assert types.EncodedTextChunk.model_fields["tokens"].annotation is annotation


@pytest.mark.parametrize("setting", ["1", "true", "yes", "on", " ON "])
def test_untested_version_allowed_on_request(monkeypatch: pytest.MonkeyPatch, setting: str) -> None:
    from tinker_accel import _tinker

    monkeypatch.setenv("TINKER_ACCEL_ALLOW_UNTESTED", setting)
    monkeypatch.setattr(_tinker, "_tinker_version", lambda: "0.39.0")
    tinker_accel.enable()
    assert tinker_accel.is_enabled()
    assert tinker_accel.status()["problem"] is None


def test_status_names_the_resources_with_pre_encoded_bodies(accelerated: None) -> None:
    import tinker.resources.training as training

    status = tinker_accel.status()
    assert status["pre_encoded_bodies"]
    assert status["pre_encoded_resources"] == ["sampling", "training"]
    hook = vars(training)["model_dump"]
    assert hook.__wrapped__ is not None


def test_encoded_body_is_bytes_with_its_stock_dict() -> None:
    from tinker_accel._tinker import EncodedBody

    built: list[int] = []

    def stock() -> dict[str, object]:
        built.append(1)
        return {"a": 1, "b": [2]}

    body = EncodedBody(b'{"a":1,"b":[2]}', stock)
    assert body == b'{"a":1,"b":[2]}'
    assert isinstance(body, bytes)
    assert built == []
    assert body.stock() == {"a": 1, "b": [2]}
    assert built == [1]
    copied = copy.deepcopy(body)
    assert type(copied) is bytes
    assert copied == body


def test_build_request_hook_is_restored(accelerated: None) -> None:
    import tinker._base_client as base_client

    hooked = vars(base_client.BaseClient)["_build_request"]
    assert hooked.__wrapped__ is not None
    tinker_accel.disable()
    assert not hasattr(vars(base_client.BaseClient)["_build_request"], "__wrapped__")
