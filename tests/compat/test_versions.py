"""Checks that hold on every supported tinker release, run by scripts/matrix.py in one
environment per (tinker, pydantic) pair and by the main suite on the installed pair.

They use only what all releases from 0.10.0 have: the low-level `AsyncTinker` client
and its resources, sending to a recording server on 127.0.0.1. Each request is sent
with the accelerator off and then on, and the two bodies must be the same bytes.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import random
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tinker import types as tinker_types
from tinker._client import AsyncTinker

import tinker_accel

# The classes differ between releases, so they are not type-checked against one.
types: Any = tinker_types

# Where each test records what it checked, for the matrix table. Unset in normal runs.
_REPORT_PATH = os.environ.get("TINKER_ACCEL_MATRIX_REPORT")


def _record(check: str) -> None:
    if _REPORT_PATH:
        with open(_REPORT_PATH, "a", encoding="utf-8") as report:
            report.write(json.dumps({"check": check}) + "\n")


class _Recorder(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.received.append((self.path, self.headers.get("Content-Type", ""), body))
        reply = b'{"request_id":"compat-1"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def server() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    received: list[tuple[str, str, bytes]] = []
    handler = type("Handler", (_Recorder,), {"received": received})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    finally:
        httpd.shutdown()
        httpd.server_close()


def _client(base_url: str, **config: Any) -> AsyncTinker:
    options: dict[str, Any] = {}
    if "_client_config" in inspect.signature(AsyncTinker.__init__).parameters:
        fields = types.ClientConfigResponse.model_fields
        # The pyqwest transport (0.22 on) would bypass httpx, which this server needs.
        settings = {"use_pyqwest_transport": False, **config}
        options["_client_config"] = types.ClientConfigResponse(
            **{key: value for key, value in settings.items() if key in fields}
        )
    return AsyncTinker(api_key="tml-compat-check", base_url=base_url, max_retries=0, **options)


def _tokens(count: int, seed: int) -> list[int]:
    generator = random.Random(seed)
    return [generator.randrange(200_000) for _ in range(count)]


def _mixed_prompt(asset_pointers: bool = True) -> Any:
    """A prompt with every chunk type this release has, text chunks on both sides.

    Training requests sent as protobuf take no image asset pointers, so those can be
    left out.
    """
    chunks: list[Any] = [types.EncodedTextChunk(tokens=_tokens(8_192, 1))]
    chunks.append(types.ImageChunk(data=b"\x89PNG-not-really", format="png", expected_tokens=4))
    if asset_pointers:
        chunks.append(types.ImageAssetPointerChunk(format="jpeg", location="s3://bucket/cat.jpg"))
    dmel_chunk = getattr(types, "DmelChunk", None)
    if dmel_chunk is not None:
        chunks.append(dmel_chunk(dmel=b"\x00\x01dmel-bytes"))
    chunks.append(types.EncodedTextChunk(tokens=tuple(_tokens(100, 2))))
    return types.ModelInput(chunks=chunks)


def _sample_request() -> Any:
    fields = types.SampleRequest.model_fields
    options: dict[str, Any] = {}
    if "base_model" in fields:
        options["base_model"] = "compat/base-model"
    if "num_samples" in fields:
        options["num_samples"] = 4
    return types.SampleRequest(
        prompt=_mixed_prompt(),
        sampling_params=types.SamplingParams(max_tokens=16, temperature=0.7, stop=["\n"]),
        **options,
    )


def _both_ways(
    send: Callable[[], Any],
    received: list[tuple[str, str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> list[Any]:
    """Send once with the accelerator off and once on; return the two recordings.

    An accelerated JSON request must have gone through the body hook
    (``dumps_model``), and any other must not have: a release that stops calling the
    hooked ``model_dump`` would otherwise pass unnoticed.
    """
    from tinker_accel import _tinker

    hooked: list[int] = []
    original = vars(_tinker)["dumps_model"]

    def counting(*args: Any, **kwargs: Any) -> Any:
        hooked.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(_tinker, "dumps_model", counting)
    tinker_accel.disable()
    asyncio.run(send())
    assert hooked == []
    tinker_accel.enable()
    assert tinker_accel.is_enabled(), tinker_accel.status()["problem"]
    try:
        asyncio.run(send())
    finally:
        tinker_accel.disable()
    assert len(received) == 2
    assert bool(hooked) == received[1][1].startswith("application/json")
    # A body the recorder could not read (no Content-Length) would compare equal.
    assert all(body for _, _, body in received)
    return received


def test_switch_turns_on_for_this_release() -> None:
    tinker_accel.enable()
    status = tinker_accel.status()
    assert status["enabled"], status["problem"]
    # The matrix must test the native module, not the pure-Python fallback.
    if os.environ.get("TINKER_ACCEL_BACKEND", "").strip().lower() != "python":
        assert status["backend"] == "rust"
    assert status["token_serializer"]
    assert status["problem"] is None
    # Every release has the sampling hook; releases up to 0.24 have the training one.
    assert "sampling" in status["pre_encoded_resources"]
    _record("pre-encoded resources: " + ", ".join(status["pre_encoded_resources"]))


def test_sample_body_is_unchanged(
    server: tuple[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, received = server
    request = _sample_request()

    async def send() -> None:
        await _client(base_url).sampling.asample(request=request)

    (stock_path, stock_type, stock), (path, content_type, body) = _both_ways(
        send, received, monkeypatch
    )
    assert path == stock_path == "/api/v1/asample"
    assert content_type == stock_type
    assert body == stock
    chunk_types = [
        chunk["type"] for chunk in json.loads(body)["prompt"]["chunks"] if "type" in chunk
    ]
    _record(f"sample ({len(request.prompt.chunks)} chunks: {', '.join(chunk_types) or 'untyped'})")


def test_text_sample_body_is_written_from_its_fields(
    server: tuple[str, list[Any]], monkeypatch: pytest.MonkeyPatch, plan_bodies: list[str]
) -> None:
    # The common request: text chunks, stop token IDs and int defaults of float
    # fields. Its body must come from the model's fields in every release, without
    # model_dump, and equal the stock one.
    base_url, received = server
    options: dict[str, Any] = {}
    if "base_model" in types.SampleRequest.model_fields:
        options["base_model"] = "compat/base-model"
    request = types.SampleRequest(
        prompt=types.ModelInput(
            chunks=[
                types.EncodedTextChunk(tokens=_tokens(2_000, 6)),
                types.EncodedTextChunk(tokens=tuple(_tokens(30, 7))),
            ]
        ),
        sampling_params=types.SamplingParams(max_tokens=16, stop=[199_999, 200_018]),
        **options,
    )

    async def send() -> None:
        await _client(base_url).sampling.asample(request=request)

    (_, _, stock), (_, _, body) = _both_ways(send, received, monkeypatch)
    assert body == stock
    assert plan_bodies == ["SampleRequest"]
    _record("sample with text chunks, written from its fields")


def test_sample_body_with_target_prompt_logprobs(
    server: tuple[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    if "target_prompt_logprobs" not in types.SampleRequest.model_fields:
        pytest.skip("this release has no target_prompt_logprobs")
    base_url, received = server
    tensor_class: Any = types.SampleRequest.model_fields["target_prompt_logprobs"].annotation
    tensor_class = next(
        member
        for member in getattr(tensor_class, "__args__", (tensor_class,))
        if member is not type(None)
    )
    targets = tensor_class(data=_tokens(64, 3), dtype="int64", shape=[32, 2])
    request = _sample_request().model_copy(update={"target_prompt_logprobs": targets})

    async def send() -> None:
        await _client(base_url).sampling.asample(request=request)

    (_, _, stock), (_, _, body) = _both_ways(send, received, monkeypatch)
    assert body == stock
    _record("sample with target_prompt_logprobs")


def _training_input() -> Any:
    datum = types.Datum(
        model_input=_mixed_prompt(asset_pointers=False),
        loss_fn_inputs={"target_tokens": _tokens(8_197, 4), "weights": [1.0, 0.5] * 4_000},
    )
    return types.ForwardBackwardInput(data=[datum], loss_fn="cross_entropy")


@pytest.mark.parametrize("method", ["forward", "forward_backward"])
def test_training_body_is_unchanged(
    server: tuple[str, list[Any]], method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, received = server
    training = _client(base_url).training
    if not hasattr(training, method) or (
        method == "forward" and not hasattr(types, "ForwardRequest")
    ):
        pytest.skip(f"this release has no {method} request")
    request: Any
    if method == "forward":
        request = types.ForwardRequest(forward_input=_training_input(), model_id="m", seq_id=1)
    else:
        request = types.ForwardBackwardRequest(
            forward_backward_input=_training_input(), model_id="m", seq_id=1
        )

    async def send() -> None:
        await getattr(_client(base_url).training, method)(request=request)

    (_, stock_type, stock), (_, content_type, body) = _both_ways(send, received, monkeypatch)
    assert content_type == stock_type
    assert body == stock
    transport = "JSON" if content_type.startswith("application/json") else "protobuf"
    _record(f"{method} ({transport})")


def test_protobuf_forward_backward_is_unchanged(
    server: tuple[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, received = server
    training = _client(base_url).training
    # From 0.22.3 the training resource itself sends protobuf (from 0.25 always). In
    # 0.19 to 0.22.2 only the high-level TrainingClient does, past the resource.
    resource_source = inspect.getsource(sys.modules[type(training).__module__])
    if "SerializeToString" not in resource_source:
        pytest.skip("this release's training resource sends JSON only")
    request = types.ForwardBackwardRequest(
        forward_backward_input=_training_input(), model_id="m", seq_id=1
    )

    async def send() -> None:
        await _client(base_url, proto_write_fwdbwd=True).training.forward_backward(request=request)

    (_, stock_type, stock), (_, content_type, body) = _both_ways(send, received, monkeypatch)
    assert content_type == stock_type == "application/x-protobuf"
    assert body == stock
    _record("forward_backward (protobuf, left alone)")


def test_foreign_chunk_body_is_unchanged(
    server: tuple[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tinker.types.encoded_text_chunk as module

    original = module.EncodedTextChunk
    importlib.reload(module)
    copy = module.EncodedTextChunk
    module.EncodedTextChunk = original  # type: ignore[misc]
    base_url, received = server
    # Few tokens: the stock path is quadratic in them on pydantic >= 2.11.
    prompt = types.ModelInput.model_construct(chunks=[copy(tokens=_tokens(300, 5))])
    request = _sample_request().model_copy(update={"prompt": prompt})

    async def send() -> None:
        await _client(base_url).sampling.asample(request=request)

    (_, _, stock), (_, _, body) = _both_ways(send, received, monkeypatch)
    assert body == stock
    _record("sample with a chunk from a reloaded module")


def _request_options(method: Any, **options: Any) -> dict[str, Any]:
    """Return the keyword arguments of ``options`` that ``method`` takes."""
    parameters = inspect.signature(method).parameters
    return {name: value for name, value in options.items() if name in parameters}


def test_optim_step_body_is_unchanged(
    server: tuple[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, received = server
    adam = types.AdamParams(learning_rate=3e-05, beta2=0.999, weight_decay=0.01)
    request = types.OptimStepRequest(adam_params=adam, model_id="m", seq_id=7)

    async def send() -> None:
        await _client(base_url).training.optim_step(request=request)

    (_, _, stock), (_, _, body) = _both_ways(send, received, monkeypatch)
    assert body == stock
    _record("optim_step")


def test_extra_body_is_merged_as_stock_merges_it(
    server: tuple[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, received = server
    asample = type(_client(base_url).sampling).asample
    if "extra_body" not in inspect.signature(asample).parameters:
        pytest.skip("this release's resources take no extra_body")
    request = _sample_request()
    extra = _request_options(asample, extra_body={"priority": 1, "note": "ü"})

    async def send() -> None:
        await _client(base_url).sampling.asample(request=request, **extra)

    (_, _, stock), (_, _, body) = _both_ways(send, received, monkeypatch)
    assert body == stock
    assert json.loads(body)["priority"] == 1
    _record("sample with extra_body")
