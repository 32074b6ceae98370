"""Loopback stand-in for the tinker service, for tests and the bench.

`LoopbackServer` listens on 127.0.0.1 only, serves the endpoints that the tinker
SDK (checked against tinker 0.38.0) calls to create a session and sample from it,
and records the raw body of every request it receives. It runs no model: a
sample echoes the prompt's tokens, and every logprob is `PLACEHOLDER_LOGPROB`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, TypeVar

try:
    import numpy as np
    import pydantic
    from tinker import types
    from tinker._client import AsyncTinker
    from tinker.proto import tinker_public_pb2 as public_pb
    from tinker.types._pydantic_types.tensor_data import TensorData as TensorDataModel
    from tinker.types.topk_logprobs import MASK_LOGPROB
except ImportError as error:
    raise ImportError(
        "tinker_accel._loopback requires the tinker SDK. Install it with "
        "`pip install 'tinker-accel[tinker]'`"
    ) from error

__all__ = [
    "FAKE_API_KEY",
    "PLACEHOLDER_LOGPROB",
    "LoopbackServer",
    "RecordedRequest",
    "asend_sample_requests",
    "send_sample_requests",
]

logger = logging.getLogger(__name__)

_ModelT = TypeVar("_ModelT", bound=pydantic.BaseModel)

FAKE_API_KEY = "tml-loopback-not-a-real-key"
"""An API key that passes the SDK's format check (the `tml-` prefix) and that no
real service accepts."""

PLACEHOLDER_LOGPROB = -1.0
"""The logprob that the loopback server returns for every scored token."""

SAMPLE_PATH = "/api/v1/asample"

_LOOPBACK_HOST = "127.0.0.1"
_PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")
_NO_PROXY_VARIABLES = ("no_proxy", "NO_PROXY")
_JSON_CONTENT_TYPE = "application/json"
# How often serve_forever checks for a shutdown request, so `stop` waits at most this long.
_SHUTDOWN_POLL_INTERVAL_SECONDS = 0.05
_PROTOBUF_CONTENT_TYPE = "application/x-protobuf"

# The flags that decide which endpoints a ServiceClient calls. JWT exchange
# (`/api/v1/auth/token`) and the session-wide `/api/v1/retrieve_futures` poller stay
# off, so the SDK authenticates with the API key and polls `/api/v1/retrieve_future`
# per request. Every other flag keeps the SDK default, including the pyqwest transport.
_CLIENT_CONFIG = {
    "pjwt_auth_enabled": False,
    "sample_use_retrieve_futures": False,
    "sample_join_sampling_session": False,
    "custom_loss_server_side": False,
}
_CLIENT_DYNAMIC_CONFIG = {"refresh_interval_sec": 300, "sample_cancel_enabled": False}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the loopback server received it.

    `body` contains the bytes after HTTP chunked framing is removed, with any
    Content-Encoding left as sent. Headers other than the two content headers are
    not kept, because they carry the API key.
    """

    method: str
    path: str
    content_type: str | None
    content_encoding: str | None
    body: bytes


@dataclass(frozen=True)
class _Reply:
    status: HTTPStatus
    body: bytes
    content_type: str = _JSON_CONTENT_TYPE


@dataclass(frozen=True)
class _SampleJob:
    """The parts of an accepted sample request that the loopback server needs for its result."""

    num_samples: int
    max_tokens: int | None
    echo_tokens: bytes
    """Native int32 token ids, at most `max_tokens` of them."""
    prompt_length: int
    prompt_logprobs: bool
    prompt_logprobs_last_n: int | None
    topk_prompt_logprobs: int
    topk_sample_logprobs: int
    prompt_alt_tokens_k: int
    target_prompt_logprobs: TensorDataModel | None


def _json_reply(payload: object, status: HTTPStatus = HTTPStatus.OK) -> _Reply:
    return _Reply(status, json.dumps(payload, separators=(",", ":")).encode())


def _error_reply(status: HTTPStatus, detail: object) -> _Reply:
    return _json_reply({"detail": detail}, status)


class _InvalidRequestError(Exception):
    """A request body that the loopback server rejects, with `detail` for the JSON error reply."""

    def __init__(self, detail: object) -> None:
        super().__init__(str(detail))
        self.detail = detail


def _reject_json_constant(constant: str) -> None:
    raise _InvalidRequestError(f"invalid JSON: {constant} is not a JSON value (RFC 8259)")


def _parse_json_body(body: bytes) -> Any:
    """Parse a request body as strict JSON: UTF-8, and no NaN or Infinity tokens."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _InvalidRequestError(f"invalid request body: not UTF-8 ({error})") from error
    try:
        return json.loads(text, parse_constant=_reject_json_constant)
    except json.JSONDecodeError as error:
        raise _InvalidRequestError(f"invalid JSON: {error}") from error


def _validate_body(model: type[_ModelT], body: bytes) -> _ModelT:
    try:
        return model.model_validate(_parse_json_body(body))
    except pydantic.ValidationError as error:
        # Without the input, the detail stays short even for a rejected 100k-token prompt.
        detail = json.loads(error.json(include_url=False, include_input=False))
        raise _InvalidRequestError(detail) from error


def _chunk_length(chunk: types.ModelInputChunk) -> int:
    try:
        return chunk.length
    except ValueError:
        # NOTE: an image chunk without expected_tokens has a length only the real
        # service can compute, so the loopback server counts it as zero tokens.
        return 0


def _make_sample_job(request: types.SampleRequest) -> _SampleJob:
    max_tokens = request.sampling_params.max_tokens
    if max_tokens is not None and max_tokens < 0:
        raise _InvalidRequestError(f"invalid max_tokens {max_tokens}: expected 0 or more")
    echo_count = 1 if max_tokens is None else max_tokens
    text_tokens = itertools.chain.from_iterable(
        chunk.tokens for chunk in request.prompt.chunks if isinstance(chunk, types.EncodedTextChunk)
    )
    # The JSON schema allows any integer, but the protobuf field is int32, so ids
    # outside its range are reduced modulo 2**31 instead of failing the request.
    echo_tokens = [token % 2**31 for token in itertools.islice(text_tokens, echo_count)]
    return _SampleJob(
        num_samples=request.num_samples,
        max_tokens=max_tokens,
        echo_tokens=np.asarray(echo_tokens, dtype=np.int32).tobytes(),
        prompt_length=sum(_chunk_length(chunk) for chunk in request.prompt.chunks),
        prompt_logprobs=bool(request.prompt_logprobs),
        prompt_logprobs_last_n=request.prompt_logprobs_last_n,
        topk_prompt_logprobs=request.topk_prompt_logprobs,
        topk_sample_logprobs=request.topk_sample_logprobs,
        prompt_alt_tokens_k=request.prompt_alt_tokens_k,
        target_prompt_logprobs=request.target_prompt_logprobs,
    )


def _topk_proto(scored_rows: Sequence[bool], k: int) -> public_pb.TopkLogprobs:
    """Build top-k rows of `k` placeholder entries, or of the SDK's empty-row sentinel
    where a row is not scored."""
    token_ids = np.zeros((len(scored_rows), k), dtype=np.int32)
    logprobs = np.full((len(scored_rows), k), MASK_LOGPROB, dtype=np.float32)
    for row, scored in enumerate(scored_rows):
        if scored:
            token_ids[row] = np.arange(k, dtype=np.int32)
            logprobs[row] = PLACEHOLDER_LOGPROB
    return public_pb.TopkLogprobs(
        token_ids=token_ids.tobytes(),
        logprobs=logprobs.tobytes(),
        k=k,
        length=len(scored_rows),
    )


def _target_logprobs_proto(target: TensorDataModel) -> public_pb.Tensor:
    """Build the `target_prompt_logprobs` result in the request's shape and layout, with
    0.0 where the request has -1 and `PLACEHOLDER_LOGPROB` elsewhere."""
    token_ids = np.asarray(target.data, dtype=np.int64)
    values = np.where(token_ids == -1, 0.0, PLACEHOLDER_LOGPROB).astype(np.float32)
    shape = target.shape if target.shape is not None else [len(target.data)]
    if target.sparse_crow_indices is None or target.sparse_col_indices is None:
        return public_pb.Tensor(dense=values.tobytes(), dtype=public_pb.DTYPE_FLOAT32, shape=shape)
    sparse_csr = public_pb.SparseCsr(
        values=values.tobytes(),
        crow_indices=np.asarray(target.sparse_crow_indices, dtype=np.int64).tobytes(),
        col_indices=np.asarray(target.sparse_col_indices, dtype=np.int64).tobytes(),
    )
    return public_pb.Tensor(sparse_csr=sparse_csr, dtype=public_pb.DTYPE_FLOAT32, shape=shape)


def _prompt_alt_tokens_proto(prompt_length: int, k: int) -> public_pb.PromptAltTokens:
    shape = [max(prompt_length - 1, 0), k]
    count = shape[0] * k
    tokens = public_pb.Tensor(
        dense=np.zeros(count, dtype=np.int32).tobytes(), dtype=public_pb.DTYPE_INT32, shape=shape
    )
    logprobs = public_pb.Tensor(
        dense=np.full(count, PLACEHOLDER_LOGPROB, dtype=np.float32).tobytes(),
        dtype=public_pb.DTYPE_FLOAT32,
        shape=shape,
    )
    return public_pb.PromptAltTokens(tokens=tokens, logprobs=logprobs)


def _build_sample_response(job: _SampleJob) -> bytes:
    """Serialize the result of a sample request as the protobuf `SampleResponse`.

    Each sequence echoes the prompt's text tokens, cycled to `max_tokens`, and
    stops with "length". Without `max_tokens` it is one token that stops with "stop".
    """
    if job.max_tokens is None:
        token_count, stop_reason = 1, public_pb.STOP_REASON_STOP
    else:
        token_count, stop_reason = job.max_tokens, public_pb.STOP_REASON_LENGTH
    echo = np.frombuffer(job.echo_tokens, dtype=np.int32)
    if echo.size == 0:
        echo = np.zeros(1, dtype=np.int32)
    tokens = np.resize(echo, token_count)
    token_logprobs = np.full(token_count, PLACEHOLDER_LOGPROB, dtype=np.float32)

    response = public_pb.SampleResponse()
    for _ in range(job.num_samples):
        sequence = response.sequences.add(
            stop_reason=stop_reason, tokens=tokens.tobytes(), logprobs=token_logprobs.tobytes()
        )
        if job.topk_sample_logprobs > 0:
            sequence.topk_sampled_logprobs.CopyFrom(
                _topk_proto([True] * token_count, job.topk_sample_logprobs)
            )

    # Position 0 has no preceding context, and `prompt_logprobs_last_n` leaves
    # every position before the last N unscored.
    first_scored = 1
    if job.prompt_logprobs_last_n is not None:
        first_scored = max(first_scored, job.prompt_length - job.prompt_logprobs_last_n)
    scored_rows = [position >= first_scored for position in range(job.prompt_length)]
    if job.prompt_logprobs:
        prompt_logprobs = np.where(scored_rows, PLACEHOLDER_LOGPROB, math.nan)
        response.prompt_logprobs = prompt_logprobs.astype(np.float32).tobytes()
    if job.topk_prompt_logprobs > 0:
        response.topk_prompt_logprobs.CopyFrom(_topk_proto(scored_rows, job.topk_prompt_logprobs))
    if job.target_prompt_logprobs is not None:
        response.target_prompt_logprobs.CopyFrom(_target_logprobs_proto(job.target_prompt_logprobs))
    if job.prompt_alt_tokens_k > 0:
        response.prompt_alt_tokens.CopyFrom(
            _prompt_alt_tokens_proto(job.prompt_length, job.prompt_alt_tokens_k)
        )
    serialized: bytes = response.SerializeToString()
    return serialized


@dataclass
class _SamplingSession:
    base_model: str | None
    model_path: str | None
    joined_clients: int = 0


@dataclass
class _ServiceState:
    """Everything the loopback server records and serves, guarded by `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    # A random prefix keeps ids unique across servers in one process, because the
    # SDK caches some per-process state by session and sampling session id.
    id_prefix: str = field(default_factory=lambda: f"loopback-{uuid.uuid4().hex[:12]}")
    recorded: list[RecordedRequest] = field(default_factory=list)
    unserved: list[str] = field(default_factory=list)
    sample_bodies: dict[str, bytes] = field(default_factory=dict)
    sample_jobs: dict[str, _SampleJob] = field(default_factory=dict)
    sampling_sessions: dict[str, _SamplingSession] = field(default_factory=dict)
    session_count: int = 0
    sample_count: int = 0

    def record(self, request: RecordedRequest) -> None:
        with self.lock:
            self.recorded.append(request)

    def create_session(self, body: bytes) -> _Reply:
        _validate_body(types.CreateSessionRequest, body)
        with self.lock:
            self.session_count += 1
            session_id = f"{self.id_prefix}-session-{self.session_count}"
        return _json_reply({"type": "create_session", "session_id": session_id})

    def create_sampling_session(self, body: bytes) -> _Reply:
        request = _validate_body(types.CreateSamplingSessionRequest, body)
        sampling_session_id = f"{request.session_id}-sampler-{request.sampling_session_seq_id}"
        with self.lock:
            self.sampling_sessions[sampling_session_id] = _SamplingSession(
                base_model=request.base_model, model_path=request.model_path
            )
        return _json_reply(
            {"type": "create_sampling_session", "sampling_session_id": sampling_session_id}
        )

    def join_sampling_session(self, body: bytes) -> _Reply:
        request = _validate_body(types.JoinSamplingSessionRequest, body)
        with self.lock:
            session = self.sampling_sessions.get(request.sampling_session_id)
            if session is None:
                return _error_reply(
                    HTTPStatus.NOT_FOUND,
                    f"sampling session {request.sampling_session_id!r} not found",
                )
            # The SDK numbers the original client 0, so joined clients start at 1.
            session.joined_clients += 1
            client_counter = session.joined_clients
        return _json_reply({"type": "join_sampling_session", "client_counter": client_counter})

    def get_sampler(self, sampling_session_id: str) -> _Reply:
        with self.lock:
            session = self.sampling_sessions.get(sampling_session_id)
        if session is None:
            return _error_reply(
                HTTPStatus.NOT_FOUND, f"sampling session {sampling_session_id!r} not found"
            )
        # NOTE: the real service reads the base model of a `model_path` checkpoint. The
        # loopback server has no checkpoints, so it reports a fixed name instead.
        base_model = session.base_model or "loopback/checkpoint-base-model"
        return _json_reply(
            {
                "sampler_id": sampling_session_id,
                "base_model": base_model,
                "model_path": session.model_path,
            }
        )

    def accept_sample(self, body: bytes) -> _Reply:
        request = _validate_body(types.SampleRequest, body)
        job = _make_sample_job(request)
        with self.lock:
            self.sample_count += 1
            request_id = f"{self.id_prefix}-sample-{self.sample_count}"
            self.sample_bodies[request_id] = body
            self.sample_jobs[request_id] = job
        sequence_ids = [f"{request_id}-sequence-{index}" for index in range(job.num_samples)]
        return _json_reply({"request_id": request_id, "sample_sequence_ids": sequence_ids})

    def retrieve_future(self, body: bytes) -> _Reply:
        request = _validate_body(types.FutureRetrieveRequest, body)
        with self.lock:
            job = self.sample_jobs.get(request.request_id)
        if job is None:
            return _error_reply(HTTPStatus.NOT_FOUND, f"request {request.request_id!r} not found")
        # tinker 0.38.0 reads SampleResponse only as protobuf, so the loopback
        # server never returns a sample result as JSON, whatever the Accept header requests.
        return _Reply(HTTPStatus.OK, _build_sample_response(job), _PROTOBUF_CONTENT_TYPE)


_PostHandler = Callable[[_ServiceState, bytes], _Reply]

_POST_ROUTES: dict[str, _PostHandler] = {
    "/api/v1/client/config": lambda state, body: _json_reply(_CLIENT_CONFIG),
    "/api/v1/client/dynamic_config": lambda state, body: _json_reply(_CLIENT_DYNAMIC_CONFIG),
    "/api/v1/create_session": _ServiceState.create_session,
    "/api/v1/session_heartbeat": lambda state, body: _json_reply({"type": "session_heartbeat"}),
    "/api/v1/create_sampling_session": _ServiceState.create_sampling_session,
    "/api/v1/join_sampling_session": _ServiceState.join_sampling_session,
    SAMPLE_PATH: _ServiceState.accept_sample,
    "/api/v1/retrieve_future": _ServiceState.retrieve_future,
    "/api/v1/cancel_future": lambda state, body: _json_reply({}),
    "/api/v1/telemetry": lambda state, body: _json_reply({"status": "accepted"}),
}

_GET_ROUTES: dict[str, Callable[[_ServiceState], _Reply]] = {
    "/api/v1/healthz": lambda state: _json_reply({"status": "ok"}),
    "/api/v1/get_server_capabilities": lambda state: _json_reply(
        {"supported_models": [{"model_name": "loopback/model", "sampleable": True}]}
    ),
}

_SESSIONS_PREFIX = "/api/v1/sessions/"
_SAMPLERS_PREFIX = "/api/v1/samplers/"


def _route(state: _ServiceState, method: str, path: str, body: bytes) -> _Reply | None:
    """Return the reply to a request, or None when the loopback server does not serve it."""
    if method == "POST":
        handler = _POST_ROUTES.get(path)
        if handler is not None:
            return handler(state, body)
        if path.startswith(_SESSIONS_PREFIX) and path.endswith("/finish"):
            return _json_reply({})
    elif method == "GET":
        get_handler = _GET_ROUTES.get(path)
        if get_handler is not None:
            return get_handler(state)
        if path.startswith(_SAMPLERS_PREFIX):
            return state.get_sampler(path.removeprefix(_SAMPLERS_PREFIX))
    return None


def _parse_size(text: str, base: int) -> int:
    """Parse a body or chunk size, raising ValueError unless it is a non-negative integer."""
    size = int(text, base)
    if size < 0:
        raise ValueError(f"negative size {text!r}")
    return size


class _RequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections open between requests, as the SDK's pools expect.
    protocol_version = "HTTP/1.1"
    # The reply goes out in two writes (headers, then body). With Nagle's algorithm
    # the second waits for the client's delayed ACK, at least 40 ms on Linux (TCP_DELACK_MIN).
    disable_nagle_algorithm = True
    server: _LoopbackHTTPServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("loopback server: " + format, *args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked_body()
        return self.rfile.read(_parse_size(self.headers.get("Content-Length") or "0", 10))

    def _read_chunked_body(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = self.rfile.readline()
            size = _parse_size(size_line.split(b";", 1)[0].decode("ascii").strip(), 16)
            if size == 0:
                # Skip any trailer fields up to the blank line that ends the body.
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _handle(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            body = self._read_body()
        except ValueError as error:
            # The end of this body is unknown, so the connection cannot carry another request.
            self.close_connection = True
            self._send(_error_reply(HTTPStatus.BAD_REQUEST, f"invalid body framing: {error}"))
            return

        state = self.server.state
        state.record(
            RecordedRequest(
                method=self.command,
                path=path,
                content_type=self.headers.get("Content-Type"),
                content_encoding=self.headers.get("Content-Encoding"),
                body=body,
            )
        )
        try:
            reply = _route(state, self.command, path, body)
        except _InvalidRequestError as error:
            reply = _error_reply(HTTPStatus.UNPROCESSABLE_ENTITY, error.detail)
        except Exception as error:
            logger.exception("loopback server failed on %s %s", self.command, path)
            reply = _error_reply(
                HTTPStatus.INTERNAL_SERVER_ERROR, f"loopback server error: {error!r}"
            )
        if reply is None:
            with state.lock:
                state.unserved.append(f"{self.command} {path}")
            reply = _error_reply(
                HTTPStatus.NOT_FOUND,
                f"the loopback server does not serve {self.command} {path}. "
                "Add a route in tinker_accel/_loopback.py if the SDK calls it.",
            )
        self._send(reply)

    def _send(self, reply: _Reply) -> None:
        if reply.status >= HTTPStatus.BAD_REQUEST:
            logger.warning(
                "loopback server replied %d to %s %s: %s",
                reply.status,
                self.command,
                self.path,
                reply.body.decode(errors="replace"),
            )

        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)


class _LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 overflows when a client opens dozens of
    # connections at once (64 concurrent requests did), and the kernel resets them.
    request_queue_size = 128

    def __init__(self, state: _ServiceState) -> None:
        super().__init__((_LOOPBACK_HOST, 0), _RequestHandler)
        self.state = state
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.warning("loopback server: connection from %s failed", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Shut down every open connection so that no handler thread serves a kept-alive
        connection after the server stops."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def _add_to_list_variable(name: str, item: str) -> None:
    items = [entry.strip() for entry in os.environ.get(name, "").split(",") if entry.strip()]
    if item not in items:
        os.environ[name] = ",".join([*items, item])


@contextlib.contextmanager
def _bypass_proxies_for_loopback() -> Iterator[None]:
    """Add 127.0.0.1 to NO_PROXY while a proxy variable is set, then restore both spellings.

    httpx and pyqwest, the SDK's two transports, read the proxy variables when a
    client is created, so without this a configured proxy would receive the requests
    meant for the loopback server.
    """
    if not any(os.environ.get(name) for name in _PROXY_VARIABLES):
        yield
        return
    saved = {name: os.environ.get(name) for name in _NO_PROXY_VARIABLES}
    for name in _NO_PROXY_VARIABLES:
        _add_to_list_variable(name, _LOOPBACK_HOST)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class LoopbackServer:
    """HTTP stand-in for the tinker service on 127.0.0.1, run in a background thread.

    Use it as a context manager. `__enter__` binds an ephemeral port and starts serving, and
    `__exit__` stops the server and closes every open connection. While it runs,
    127.0.0.1 is added to NO_PROXY if a proxy variable is set. Pass `base_url` and
    `FAKE_API_KEY` to `tinker._client.AsyncTinker` or `tinker.ServiceClient`.
    """

    def __init__(self) -> None:
        self._state = _ServiceState()
        self._server: _LoopbackHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._exit_stack = contextlib.ExitStack()

    @property
    def base_url(self) -> str:
        """The URL the server listens on, such as "http://127.0.0.1:43123"."""
        if self._server is None:
            raise RuntimeError("LoopbackServer is not running. Use it in a `with` block.")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        if self._server is not None:
            raise RuntimeError("LoopbackServer is already running")
        self._exit_stack.enter_context(_bypass_proxies_for_loopback())
        try:
            self._server = _LoopbackHTTPServer(self._state)
        except BaseException:
            self._exit_stack.close()
            raise
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _SHUTDOWN_POLL_INTERVAL_SECONDS},
            name="tinker-loopback-server",
            daemon=True,
        )
        self._thread.start()
        logger.info("loopback server started at %s", self.base_url)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving and close every open connection, if the server is running."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        base_url = self.base_url
        server.shutdown()
        server.server_close()
        server.close_connections()
        thread.join()
        self._server = None
        self._thread = None
        self._exit_stack.close()
        logger.info("loopback server at %s stopped", base_url)

    def requests(self) -> list[RecordedRequest]:
        """Return every request received so far, in arrival order."""
        with self._state.lock:
            return list(self._state.recorded)

    def bodies(self, path: str = SAMPLE_PATH) -> list[bytes]:
        """Return the raw bodies received on `path` (no query string), in arrival order."""
        with self._state.lock:
            return [request.body for request in self._state.recorded if request.path == path]

    def sample_body(self, request_id: str) -> bytes:
        """Return the raw body of the sample request that was given `request_id`.

        Raises KeyError for an unknown id.
        """
        with self._state.lock:
            return self._state.sample_bodies[request_id]

    def unserved_requests(self) -> list[str]:
        """Return "METHOD /path" for each request rejected with 404 because the server
        does not serve that endpoint."""
        with self._state.lock:
            return list(self._state.unserved)

    def clear(self) -> None:
        """Forget the recorded requests. Accepted samples can still be retrieved."""
        with self._state.lock:
            self._state.recorded.clear()
            self._state.unserved.clear()
            self._state.sample_bodies.clear()


async def asend_sample_requests(
    server: LoopbackServer, requests: Sequence[types.SampleRequest]
) -> list[bytes]:
    """Send each request, one at a time, through the stock `AsyncTinker.sampling.asample`,
    and return the bodies the server received for them, in the same order.

    The client does not retry, so each request produces exactly one body.
    """
    request_ids: list[str] = []
    # tinker 0.38.0 does not re-export AsyncTinker from the package root.
    async with AsyncTinker(base_url=server.base_url, api_key=FAKE_API_KEY, max_retries=0) as client:
        for request in requests:
            future = await client.sampling.asample(request=request)
            request_ids.append(future.request_id)
    return [server.sample_body(request_id) for request_id in request_ids]


def send_sample_requests(
    server: LoopbackServer, requests: Sequence[types.SampleRequest]
) -> list[bytes]:
    """Run `asend_sample_requests` in a new event loop. Call it only where no loop is running."""
    return asyncio.run(asend_sample_requests(server, requests))
