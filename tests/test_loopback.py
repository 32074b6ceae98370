"""Tests of the loopback tinker stand-in against the real tinker SDK."""

from __future__ import annotations

import asyncio
import http.client
import importlib
import importlib.util
import json
import math
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import pytest
import tinker
from tinker import types
from tinker._client import AsyncTinker


def _import_loopback() -> ModuleType:
    """Import tinker_accel._loopback, from python/ when the package cannot be imported.

    The package imports its native extension, which may not be built yet, while
    the loopback module needs only the tinker SDK.
    """
    try:
        return importlib.import_module("tinker_accel._loopback")
    except ImportError:
        path = Path(__file__).resolve().parents[1] / "python" / "tinker_accel" / "_loopback.py"
        spec = importlib.util.spec_from_file_location("_tinker_accel_loopback", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        # dataclasses look the module up in sys.modules while the module runs.
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module


loopback = _import_loopback()
LoopbackServer = loopback.LoopbackServer
FAKE_API_KEY: str = loopback.FAKE_API_KEY
PLACEHOLDER_LOGPROB: float = loopback.PLACEHOLDER_LOGPROB

BASE_MODEL = "Qwen/Qwen3-8B"
JSON_NAN_MESSAGE = "Out of range float values are not JSON compliant"


def stock_body(request: types.SampleRequest) -> bytes:
    """Return the body that stock tinker sends for `request` (with httpx 0.28 or later)."""
    payload = request.model_dump(mode="json", exclude_none=True)
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode()


def httpx_has_compact_json() -> bool:
    major, minor = (int(part) for part in httpx.__version__.split(".")[:2])
    return (major, minor) >= (0, 28)


requires_compact_json = pytest.mark.skipif(
    not httpx_has_compact_json(),
    reason="httpx before 0.28 encodes JSON bodies with json.dumps defaults",
)


def make_request(tokens: list[int], **sampling: Any) -> types.SampleRequest:
    return types.SampleRequest(
        prompt=types.ModelInput.from_ints(tokens),
        sampling_params=types.SamplingParams(**sampling),
    )


@pytest.fixture
def server() -> Iterator[Any]:
    with LoopbackServer() as running:
        yield running


def post(
    server: Any, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    url = httpx.URL(server.base_url)
    connection = http.client.HTTPConnection(url.host, url.port, timeout=10)
    try:
        connection.request("POST", path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# Resource level: AsyncTinker.sampling.asample


def test_asample_returns_future(server: Any) -> None:
    request = types.SampleRequest(
        num_samples=3,
        prompt=types.ModelInput.from_ints([1, 2, 3]),
        sampling_params=types.SamplingParams(max_tokens=4),
    )

    async def run() -> types.UntypedAPIFuture:
        async with AsyncTinker(base_url=server.base_url, api_key=FAKE_API_KEY) as client:
            return await client.sampling.asample(request=request)

    future = asyncio.run(run())

    assert isinstance(future, types.UntypedAPIFuture)
    assert future.request_id
    assert future.sample_sequence_ids is not None
    assert len(future.sample_sequence_ids) == 3
    assert server.sample_body(future.request_id) == server.bodies()[0]


@requires_compact_json
def test_asample_body_matches_stock_formula(server: Any) -> None:
    requests = [
        make_request([1, 2, 3], max_tokens=4),
        make_request([], max_tokens=1),
        make_request([0, 2**31 - 1, 151_643], max_tokens=16, temperature=0.7, seed=3),
        make_request([5] * 1000, stop=["\n\n", "ünïcødé", "🙂"], top_p=0.95, top_k=40),
        make_request([7, 8], stop=[151_645, 151_643], temperature=1e-7),
        make_request([2**40, -1, 2**63], max_tokens=3),
        types.SampleRequest(
            num_samples=4,
            prompt=types.ModelInput(
                chunks=[
                    types.EncodedTextChunk(tokens=[1, 2]),
                    types.EncodedTextChunk(tokens=[3]),
                ]
            ),
            sampling_params=types.SamplingParams(max_tokens=2, stop="</s>"),
            base_model=BASE_MODEL,
            prompt_logprobs=True,
            topk_prompt_logprobs=5,
            prompt_logprobs_last_n=2,
        ),
    ]

    bodies = loopback.send_sample_requests(server, requests)

    assert len(bodies) == len(requests)
    for request, body in zip(requests, bodies, strict=True):
        assert body == stock_body(request)


def test_asample_bodies_keep_send_order(server: Any) -> None:
    requests = [make_request([index], max_tokens=1) for index in range(20)]

    bodies = loopback.send_sample_requests(server, requests)

    prompts = [json.loads(body)["prompt"]["chunks"][0]["tokens"] for body in bodies]
    assert prompts == [[index] for index in range(20)]
    assert server.bodies() == bodies


@pytest.mark.parametrize("temperature", [math.nan, math.inf, -math.inf])
def test_asample_rejects_non_finite_temperature(server: Any, temperature: float) -> None:
    request = make_request([1, 2, 3], max_tokens=4, temperature=temperature)

    async def run() -> None:
        async with AsyncTinker(base_url=server.base_url, api_key=FAKE_API_KEY) as client:
            await client.sampling.asample(request=request)

    with pytest.raises(ValueError, match=f"^{JSON_NAN_MESSAGE}") as raised:
        asyncio.run(run())

    assert type(raised.value) is ValueError
    assert server.requests() == []


def test_resource_endpoints_pass_strict_validation(server: Any) -> None:
    async def run() -> None:
        async with AsyncTinker(
            base_url=server.base_url, api_key=FAKE_API_KEY, _strict_response_validation=True
        ) as client:
            config_request = types.ClientConfigRequest(sdk_version=tinker.__version__)
            config = await client.service.client_config(request=config_request)
            assert config.pjwt_auth_enabled is False
            assert config.sample_use_retrieve_futures is False
            await client.service.client_dynamic_config(request=config_request)

            session = await client.service.create_session(
                request=types.CreateSessionRequest(
                    tags=[], user_metadata={}, sdk_version=tinker.__version__
                )
            )
            await client.service.session_heartbeat(session_id=session.session_id)
            sampler = await client.service.create_sampling_session(
                request=types.CreateSamplingSessionRequest(
                    session_id=session.session_id,
                    sampling_session_seq_id=0,
                    base_model=BASE_MODEL,
                )
            )
            join_request = types.JoinSamplingSessionRequest(
                sampling_session_id=sampler.sampling_session_id
            )
            first = await client.service.join_sampling_session(request=join_request)
            second = await client.service.join_sampling_session(request=join_request)
            assert (first.client_counter, second.client_counter) == (1, 2)

            health = await client.service.health_check()
            assert health.status == "ok"
            capabilities = await client.service.get_server_capabilities()
            assert capabilities.supported_models
            telemetry = await client.telemetry.send(
                request=types.TelemetrySendRequest(
                    events=[],
                    platform="test",
                    sdk_version=tinker.__version__,
                    session_id=session.session_id,
                    process_uuid="test-process",
                )
            )
            assert telemetry.status == "accepted"

    asyncio.run(run())

    assert server.unserved_requests() == []


def test_served_config_flags_exist_in_sdk() -> None:
    # The SDK drops unknown config keys without a warning, so a misspelled flag
    # would leave the SDK default in place unnoticed.
    config_fields = set(types.ClientConfigResponse.model_fields)
    dynamic_fields = set(types.ClientDynamicConfigResponse.model_fields)

    assert set(loopback._CLIENT_CONFIG) <= config_fields
    assert set(loopback._CLIENT_DYNAMIC_CONFIG) <= dynamic_fields


# Full flow: ServiceClient -> SamplingClient


def run_with_service_client(server: Any, scenario: Any) -> Any:
    """Run `scenario(service_client)` in a new event loop, then finish the session."""

    async def run() -> Any:
        service_client = tinker.ServiceClient(base_url=server.base_url, api_key=FAKE_API_KEY)
        try:
            return await scenario(service_client)
        finally:
            await service_client.close("success")

    return asyncio.run(run())


@requires_compact_json
def test_service_client_sample_async(server: Any) -> None:
    prompt = types.ModelInput.from_ints([5, 6, 7])
    sampling_params = types.SamplingParams(max_tokens=4)

    async def scenario(service_client: tinker.ServiceClient) -> types.SampleResponse:
        sampling_client = await service_client.create_sampling_client(base_model=BASE_MODEL)
        with pytest.warns(FutureWarning, match="sample_async"):
            response: types.SampleResponse = await sampling_client.sample_async(
                prompt=prompt, num_samples=2, sampling_params=sampling_params
            )
        return response

    response = run_with_service_client(server, scenario)

    assert isinstance(response, types.SampleResponse)
    assert [sequence.tokens for sequence in response.sequences] == [[5, 6, 7, 5], [5, 6, 7, 5]]
    assert [sequence.stop_reason for sequence in response.sequences] == ["length", "length"]
    assert [sequence.logprobs for sequence in response.sequences] == [[PLACEHOLDER_LOGPROB] * 4] * 2
    assert len({sequence.sequence_id for sequence in response.sequences}) == 2
    assert response.prompt_logprobs is None
    assert server.unserved_requests() == []

    [body] = server.bodies()
    sampling_session_id = json.loads(body)["sampling_session_id"]
    expected_request = types.SampleRequest(
        sampling_session_id=sampling_session_id,
        seq_id=0,
        num_samples=2,
        prompt=prompt,
        sampling_params=sampling_params,
        prompt_logprobs=False,
        record_stability_info=False,
    )
    assert body == stock_body(expected_request)


def test_service_client_endpoints(server: Any) -> None:
    async def scenario(service_client: tinker.ServiceClient) -> None:
        sampling_client = await service_client.create_sampling_client(base_model=BASE_MODEL)
        await sampling_client.sample(
            prompt=types.ModelInput.from_ints([1]),
            num_samples=1,
            sampling_params=types.SamplingParams(max_tokens=1),
        )

    run_with_service_client(server, scenario)

    paths = {request.path for request in server.requests()}
    assert {
        "/api/v1/client/config",
        "/api/v1/client/dynamic_config",
        "/api/v1/create_session",
        "/api/v1/create_sampling_session",
        "/api/v1/asample",
        "/api/v1/retrieve_future",
        "/api/v1/telemetry",
    } <= paths
    assert any(path.endswith("/finish") for path in paths)
    assert server.unserved_requests() == []


def test_service_client_compute_logprobs_async(server: Any) -> None:
    async def scenario(service_client: tinker.ServiceClient) -> list[float | None]:
        sampling_client = await service_client.create_sampling_client(base_model=BASE_MODEL)
        with pytest.warns(FutureWarning, match="compute_logprobs_async"):
            logprobs: list[float | None] = await sampling_client.compute_logprobs_async(
                types.ModelInput.from_ints([10, 11, 12, 13])
            )
        return logprobs

    logprobs = run_with_service_client(server, scenario)

    assert logprobs == [None] + [PLACEHOLDER_LOGPROB] * 3
    [body] = server.bodies()
    assert json.loads(body)["prompt_logprobs"] is True


def test_service_client_sample_options(server: Any) -> None:
    prompt_tokens = [3, 4, 5, 6, 7]
    target = np.full((len(prompt_tokens) - 1, 2), -1, dtype=np.int64)
    target[-1] = [8, 9]

    async def scenario(service_client: tinker.ServiceClient) -> types.SampleResponse:
        sampling_client = await service_client.create_sampling_client(base_model=BASE_MODEL)
        response: types.SampleResponse = await sampling_client.sample(
            prompt=types.ModelInput.from_ints(prompt_tokens),
            num_samples=1,
            sampling_params=types.SamplingParams(max_tokens=3),
            include_prompt_logprobs=True,
            topk_prompt_logprobs=2,
            topk_sample_logprobs=3,
            target_prompt_logprobs=types.TensorData(data=target, dtype="int64", shape=[4, 2]),
            prompt_alt_tokens_k=2,
            prompt_logprobs_last_n=2,
        )
        return response

    response = run_with_service_client(server, scenario)

    [sequence] = response.sequences
    assert sequence.topk_logprobs is not None
    assert len(sequence.topk_logprobs) == 3
    assert response.prompt_logprobs == [None, None, None, PLACEHOLDER_LOGPROB, PLACEHOLDER_LOGPROB]
    assert response.topk_prompt_logprobs is not None
    assert response.topk_prompt_logprobs[:3] == [None, None, None]
    assert response.topk_prompt_logprobs[3] == [(0, PLACEHOLDER_LOGPROB), (1, PLACEHOLDER_LOGPROB)]
    assert response.target_prompt_logprobs is not None
    assert response.target_prompt_logprobs.shape == [4, 2]
    assert response.target_prompt_logprobs.tolist()[-1] == [PLACEHOLDER_LOGPROB] * 2
    assert response.target_prompt_logprobs.tolist()[0] == [0.0, 0.0]
    assert response.prompt_alt_tokens is not None
    assert response.prompt_alt_tokens.tokens.shape == [4, 2]


def test_service_client_model_path(server: Any) -> None:
    async def scenario(service_client: tinker.ServiceClient) -> str:
        sampling_client = await service_client.create_sampling_client(
            model_path="tinker://run-1/sampler_weights/final"
        )
        base_model: str = sampling_client.get_base_model()
        return base_model

    base_model = run_with_service_client(server, scenario)

    assert base_model
    assert any(request.path.startswith("/api/v1/samplers/") for request in server.requests())
    assert server.unserved_requests() == []


def test_service_client_rejects_nan_temperature(server: Any) -> None:
    async def scenario(service_client: tinker.ServiceClient) -> None:
        sampling_client = await service_client.create_sampling_client(base_model=BASE_MODEL)
        await sampling_client.sample(
            prompt=types.ModelInput.from_ints([1]),
            num_samples=1,
            sampling_params=types.SamplingParams(max_tokens=1, temperature=math.nan),
        )

    with pytest.raises(ValueError, match=f"^{JSON_NAN_MESSAGE}"):
        run_with_service_client(server, scenario)

    assert server.bodies() == []


# The server itself


def test_sample_body_with_nan_token_rejected(server: Any) -> None:
    body = stock_body(make_request([1], max_tokens=1)).replace(
        b'"temperature":1.0', b'"temperature":NaN'
    )

    status, reply = post(server, "/api/v1/asample", body, {"Content-Type": "application/json"})

    assert status == 422
    assert b"NaN" in reply
    assert server.bodies() == [body]


def test_sample_negative_max_tokens_rejected(server: Any) -> None:
    body = stock_body(make_request([1], max_tokens=-1))

    status, reply = post(server, "/api/v1/asample", body)

    assert status == 422
    assert b"max_tokens" in reply


@pytest.mark.parametrize(
    "body",
    [
        b'{"prompt":{"chunks":[]},"sampling_params":{},"unknown_field":1}',
        b'{"prompt":{"chunks":[{"tokens":["a"],"type":"encoded_text"}]},"sampling_params":{}}',
        b'{"prompt": \xff}',
        b"",
    ],
)
def test_invalid_sample_body_rejected(server: Any, body: bytes) -> None:
    status, _ = post(server, "/api/v1/asample", body)

    assert status == 422
    assert server.bodies() == [body]


def test_chunked_body_recorded_without_framing(server: Any) -> None:
    body = stock_body(make_request([1, 2, 3], max_tokens=2))
    url = httpx.URL(server.base_url)
    connection = http.client.HTTPConnection(url.host, url.port, timeout=10)
    try:
        parts = [body[:10], body[10:25], body[25:]]
        connection.request("POST", "/api/v1/asample", body=iter(parts), encode_chunked=True)
        response = connection.getresponse()
        status = response.status
        response.read()
    finally:
        connection.close()

    assert status == 200
    assert server.bodies() == [body]


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Length: -5\r\n",
        b"Content-Length: five\r\n",
        b"Transfer-Encoding: chunked\r\n\r\nzz",
        b"Transfer-Encoding: chunked\r\n\r\n-1",
    ],
)
def test_invalid_body_framing_rejected(server: Any, headers: bytes) -> None:
    url = httpx.URL(server.base_url)
    request = b"POST /api/v1/asample HTTP/1.1\r\nHost: loopback\r\n" + headers + b"\r\n\r\n"

    with socket.create_connection((url.host, url.port), timeout=10) as connection:
        connection.sendall(request)
        reply = connection.makefile("rb").read()

    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"invalid body framing" in reply
    assert server.requests() == []


def test_unserved_endpoint_listed(server: Any) -> None:
    status, _ = post(server, "/api/v1/forward_backward?x=1", b"\x00\x01")

    assert status == 404
    assert server.unserved_requests() == ["POST /api/v1/forward_backward"]
    assert server.bodies("/api/v1/forward_backward") == [b"\x00\x01"]


def test_clear_forgets_requests(server: Any) -> None:
    loopback.send_sample_requests(server, [make_request([1], max_tokens=1)])
    post(server, "/api/v1/unknown", b"")

    server.clear()

    assert server.requests() == []
    assert server.bodies() == []
    assert server.unserved_requests() == []


def test_base_url_requires_running_server() -> None:
    server = LoopbackServer()

    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url

    with server:
        assert server.base_url.startswith("http://127.0.0.1:")

    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url


def test_exit_closes_kept_alive_connections() -> None:
    with LoopbackServer() as server:
        url = httpx.URL(server.base_url)
        connection = http.client.HTTPConnection(url.host, url.port, timeout=10)
        connection.request("GET", "/api/v1/healthz")
        first = connection.getresponse()
        first.read()
        assert first.status == 200

    def request_health() -> None:
        # Sending may still succeed on the closed connection, but reading the reply fails.
        connection.request("GET", "/api/v1/healthz")
        connection.getresponse()

    try:
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            request_health()
    finally:
        connection.close()


def test_proxy_variables_bypassed(monkeypatch: pytest.MonkeyPatch) -> None:
    request = make_request([1, 2], max_tokens=1)
    httpx_transport = types.ClientConfigResponse(use_pyqwest_transport=False)

    async def send(base_url: str, client_config: types.ClientConfigResponse) -> None:
        async with AsyncTinker(
            base_url=base_url, api_key=FAKE_API_KEY, max_retries=0, _client_config=client_config
        ) as client:
            await client.sampling.asample(request=request)

    with LoopbackServer() as proxy:
        for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.base_url)

        # Without the bypass, both transports send loopback requests to the proxy.
        for client_config in (types.ClientConfigResponse(), httpx_transport):
            with pytest.raises(tinker.NotFoundError):
                asyncio.run(send("http://127.0.0.1:9", client_config))
        assert len(proxy.unserved_requests()) == 2
        proxy.clear()

        with LoopbackServer() as target:
            assert "127.0.0.1" in os.environ["NO_PROXY"].split(",")
            assert "127.0.0.1" in os.environ["no_proxy"].split(",")
            for client_config in (types.ClientConfigResponse(), httpx_transport):
                asyncio.run(send(target.base_url, client_config))
            assert len(target.bodies()) == 2

        assert proxy.requests() == []
        assert "NO_PROXY" not in os.environ
        assert "no_proxy" not in os.environ
