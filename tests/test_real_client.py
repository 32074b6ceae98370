"""The real tinker client against a loopback server: accelerated bodies equal stock ones."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tinker
from tinker import types
from tinker.types._pydantic_types.tensor_data import TensorData

import tinker_accel
import tinker_accel._serialize
from tinker_accel import stock_dumps
from tinker_accel._data import default_prompts
from tinker_accel._loopback import FAKE_API_KEY, LoopbackServer, send_sample_requests

BASE_MODEL = "Qwen/Qwen3-8B"


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


@pytest.fixture
def encoder_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the length of every token array the accelerated path encodes."""
    calls: list[int] = []
    encode: Callable[[Any], bytes] = getattr(tinker_accel._serialize, "encode_tokens")  # noqa: B009

    def counting_encode(tokens: Any) -> bytes:
        calls.append(len(tokens))
        return encode(tokens)

    monkeypatch.setattr(tinker_accel._serialize, "encode_tokens", counting_encode)
    return calls


def real_prompts() -> list[list[int]]:
    """o200k_base token IDs of real text, 1K to 4K tokens long."""
    return default_prompts(4096)


def requests_for(prompt: list[int]) -> list[types.SampleRequest]:
    sampling = types.SamplingParams(max_tokens=16, temperature=0.8, top_p=0.9, stop=[200007])
    return [
        types.SampleRequest(prompt=types.ModelInput.from_ints(prompt), sampling_params=sampling),
        types.SampleRequest(
            num_samples=4,
            prompt=types.ModelInput(
                chunks=[
                    types.EncodedTextChunk(tokens=prompt[:100]),
                    types.ImageChunk(data=b"\x89PNG\r\n\x1a\n", format="png", expected_tokens=3),
                    types.ImageAssetPointerChunk(
                        location="tinker://assets/cat.jpeg", format="jpeg", expected_tokens=5
                    ),
                    types.EncodedTextChunk(tokens=tuple(prompt[100:])),
                ]
            ),
            sampling_params=types.SamplingParams(max_tokens=8, seed=1234, stop="User:"),
            base_model=BASE_MODEL,
            prompt_logprobs=True,
            topk_prompt_logprobs=3,
            target_prompt_logprobs=TensorData(
                data=[prompt[1], -1, prompt[2], prompt[3]], dtype="int64", shape=[2, 2]
            ),
            prompt_logprobs_last_n=2,
        ),
    ]


def test_resource_bodies_equal_stock(
    server: LoopbackServer, encoder_calls: list[int], plan_bodies: list[str]
) -> None:
    requests = [request for prompt in real_prompts() for request in requests_for(prompt)]
    stock = send_sample_requests(server, requests)
    assert not encoder_calls
    server.clear()

    tinker_accel.enable()
    accelerated = send_sample_requests(server, requests)

    assert len(accelerated) == len(stock) == len(requests)
    for request, stock_body, accelerated_body in zip(requests, stock, accelerated, strict=True):
        assert accelerated_body == stock_body
        assert stock_body == stock_dumps(request, exclude_none=True)
        chunks = json.loads(accelerated_body)["prompt"]["chunks"]
        token_counts = [len(chunk["tokens"]) for chunk in chunks if chunk["type"] == "encoded_text"]
        assert token_counts == [
            len(chunk.tokens) for chunk in request.prompt.chunks if chunk.type == "encoded_text"
        ]
    # Every token array went through the encoder. The first request of each prompt
    # is written from its fields by a plan. The second has an image chunk, which
    # plans leave to pydantic, so its 2 token arrays were encoded on that path.
    assert plan_bodies == ["SampleRequest"] * len(real_prompts())
    assert len(encoder_calls) == 2 * len(real_prompts())


def test_sample_async_full_flow_equal_stock(
    server: LoopbackServer, encoder_calls: list[int], plan_bodies: list[str]
) -> None:
    prompt = types.ModelInput.from_ints(real_prompts()[0])
    sampling = types.SamplingParams(max_tokens=4, temperature=0.5)

    async def scenario() -> list[types.SampleResponse]:
        service_client = tinker.ServiceClient(base_url=server.base_url, api_key=FAKE_API_KEY)
        try:
            sampling_client = await service_client.create_sampling_client(base_model=BASE_MODEL)
            responses = []
            for accelerate in (False, True):
                if accelerate:
                    tinker_accel.enable()
                with pytest.warns(FutureWarning, match="sample_async"):
                    responses.append(
                        await sampling_client.sample_async(
                            prompt=prompt, num_samples=2, sampling_params=sampling
                        )
                    )
            return responses
        finally:
            await service_client.close("success")

    stock_response, accelerated_response = asyncio.run(scenario())

    stock_body, accelerated_body = server.bodies()
    # The accelerated body was written from the request's fields, tokens included.
    assert plan_bodies == ["SampleRequest"]
    assert encoder_calls == []
    # The two requests differ only in their sequence number within the session.
    assert json.loads(stock_body)["seq_id"] == 0
    assert json.loads(accelerated_body)["seq_id"] == 1
    for seq_id, body in enumerate((stock_body, accelerated_body)):
        expected = types.SampleRequest(
            sampling_session_id=json.loads(body)["sampling_session_id"],
            seq_id=seq_id,
            num_samples=2,
            prompt=prompt,
            sampling_params=sampling,
            prompt_logprobs=False,
            record_stability_info=False,
        )
        assert body == stock_dumps(expected, exclude_none=True)
    assert [s.tokens for s in accelerated_response.sequences] == [
        s.tokens for s in stock_response.sequences
    ]


def test_nan_rejected_before_sending(server: LoopbackServer) -> None:
    request = types.SampleRequest(
        prompt=types.ModelInput.from_ints([1, 2, 3]),
        sampling_params=types.SamplingParams(max_tokens=4, temperature=float("nan")),
    )
    tinker_accel.enable()
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        send_sample_requests(server, [request])
    assert server.bodies() == []
