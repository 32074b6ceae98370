"""Tests for the default prompts, prompt files and the `tinker-accel bench` command."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import itertools
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import httpx
import numpy as np
import pytest

import tinker_accel
from tinker_accel import _cli, _data

# Size of the o200k_base vocabulary in bpe-openai 0.1.4, including its special tokens. The
# highest ID is <|endofprompt|>, 200018.
O200K_VOCAB_SIZE = 200019

PYTHON_SOURCE_DIR = Path(_data.__file__).resolve().parents[1]

try:
    importlib.import_module("tinker_accel._native")
except ImportError:
    HAS_NATIVE = False
else:
    HAS_NATIVE = True

# Environment for a child Python that imports tinker_accel from this source tree.
CHILD_ENV = {**os.environ, "PYTHONPATH": str(PYTHON_SOURCE_DIR)}


@pytest.fixture(scope="module")
def prompts() -> list[list[int]]:
    return _data.default_prompts()


# default_prompts


def test_default_prompts_repeat_within_process(prompts: list[list[int]]) -> None:
    _data._build_conversation.cache_clear()

    assert _data.default_prompts() == prompts


def test_default_prompts_repeat_across_processes(prompts: list[list[int]]) -> None:
    script = (
        "import hashlib, json\n"
        "from tinker_accel import _data\n"
        "print(hashlib.sha256(json.dumps(_data.default_prompts()).encode()).hexdigest())\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        env=CHILD_ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr
    expected = hashlib.sha256(json.dumps(prompts).encode()).hexdigest()
    assert completed.stdout.strip() == expected


def test_default_prompts_lengths_double(prompts: list[list[int]]) -> None:
    targets = [1024 * 2**i for i in range(8)]

    assert len(prompts) == len(targets)
    for prompt, target in zip(prompts, targets, strict=True):
        assert len(prompt) <= target
        assert len(prompt) >= 0.95 * target


def test_default_prompts_extend_previous_prompt(prompts: list[list[int]]) -> None:
    for shorter, longer in itertools.pairwise(prompts):
        assert longer[: len(shorter)] == shorter


def test_default_prompts_ids_in_o200k_vocab(prompts: list[list[int]]) -> None:
    encoding = _data._encoding()
    longest = prompts[-1]

    assert encoding.n_vocab == O200K_VOCAB_SIZE
    assert all(type(token) is int for token in longest)
    assert min(longest) >= 0
    assert max(longest) < O200K_VOCAB_SIZE
    # The prompts are plain text, so no token is one of the special tokens.
    assert not any(encoding.is_special_token(token) for token in longest)


def test_default_prompts_decode_to_source_text(prompts: list[list[int]]) -> None:
    text = _data._encoding().decode(prompts[0])

    assert text == _data._build_conversation(131072).texts[0]
    assert text.startswith("System: ")
    assert text.endswith("\n\nAssistant:")
    assert "\n\nUser: What does `" in text


def test_default_prompts_answer_is_real_docstring(prompts: list[list[int]]) -> None:
    text = _data._encoding().decode(prompts[1])
    match = re.search(r"User: What does `([\w.]+)` do\?.*?\n\nAssistant: ", text, re.DOTALL)
    assert match is not None
    module_name, _, qualname = match.group(1).partition(".")

    function = importlib.import_module(module_name)
    for attribute in qualname.split("."):
        function = getattr(function, attribute)
    docstring = inspect.getdoc(function)

    assert docstring
    assert text[match.end() :].startswith(docstring)


def test_default_prompts_smaller_max_tokens(prompts: list[list[int]]) -> None:
    assert _data.default_prompts(4096) == prompts[:3]

    uneven = _data.default_prompts(3000)
    assert len(uneven) == 3
    assert uneven[:2] == prompts[:2]
    assert 2048 < len(uneven[2]) <= 3000


def test_default_prompts_reject_small_max_tokens() -> None:
    with pytest.raises(ValueError, match="max_tokens must be at least 1024, got 512"):
        _data.default_prompts(512)


def test_default_prompts_return_copies(prompts: list[list[int]]) -> None:
    first = _data.default_prompts()
    first[0].clear()
    first.clear()

    assert _data.default_prompts() == prompts


def test_missing_bpe_openai_names_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    _data._encoding.cache_clear()
    _data._build_conversation.cache_clear()
    monkeypatch.setitem(sys.modules, "bpe_openai", None)
    try:
        with pytest.raises(ImportError, match=r"pip install 'bpe-openai>=0\.1\.4'"):
            _data.default_prompts()
    finally:
        _data._encoding.cache_clear()


# load_prompts


def test_load_prompts_jsonl_both_line_shapes(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text('[1, 2, 3]\n\n{"tokens": [4, 5], "id": "a"}\n  \n[199999]\n')

    assert _data.load_prompts(str(path)) == [[1, 2, 3], [4, 5], [199999]]


def test_load_prompts_jsonl_any_suffix(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("[7, 8]")

    assert _data.load_prompts(str(path)) == [[7, 8]]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1, 2", "invalid JSON"),
        ('"text"', "expected a JSON list of token IDs or an object"),
        ("7", "got int"),
        ('{"ids": [1]}', 'has no "tokens" key'),
        ('{"tokens": "1 2"}', '"tokens" must be a list, got str'),
        ("[]", "the token list is empty"),
        ("[1, 2.5]", "token 1 is 2.5, expected an integer token ID"),
        ("[true]", "token 0 is true, expected an integer token ID"),
        ('[1, "2"]', 'token 1 is "2", expected an integer token ID'),
        ("[-1]", r"token 0 is -1, outside \[0, 2\*\*32\)"),
        ("[4294967296]", r"token 0 is 4294967296, outside \[0, 2\*\*32\)"),
    ],
)
def test_load_prompts_jsonl_bad_line_names_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text(f"[1]\n\n{line}\n[2]\n")

    with pytest.raises(ValueError, match=message) as raised:
        _data.load_prompts(str(path))
    assert f"{path}, line 3: " in str(raised.value)


def test_load_prompts_jsonl_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(b"[1]\n[2\xff]\n")

    with pytest.raises(ValueError, match="line 2: invalid UTF-8"):
        _data.load_prompts(str(path))


def test_load_prompts_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n\n")

    with pytest.raises(ValueError, match="the file contains no prompts"):
        _data.load_prompts(str(path))


def test_load_prompts_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _data.load_prompts(str(tmp_path / "missing.jsonl"))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint16, np.uint32])
def test_load_prompts_npy_one_dimension(tmp_path: Path, dtype: type) -> None:
    path = tmp_path / "prompt.npy"
    np.save(path, np.array([5, 6, 7], dtype=dtype))

    prompts = _data.load_prompts(str(path))

    assert prompts == [[5, 6, 7]]
    assert all(type(token) is int for token in prompts[0])


def test_load_prompts_npy_two_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "prompts.npy"
    np.save(path, np.arange(12, dtype=np.int64).reshape(3, 4))

    assert _data.load_prompts(str(path)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_load_prompts_npy_detected_by_magic(tmp_path: Path) -> None:
    path = tmp_path / "prompts.bin"
    with path.open("wb") as file:
        np.save(file, np.array([1, 2], dtype=np.int32))

    assert _data.load_prompts(str(path)) == [[1, 2]]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.array([1.0, 2.0]), "expected an integer array, got dtype float64"),
        (np.array([True, False]), "expected an integer array, got dtype bool"),
        (np.zeros((2, 2, 2), dtype=np.int32), r"got shape \(2, 2, 2\)"),
        (np.zeros((0,), dtype=np.int32), "the array is empty"),
        (np.zeros((3, 0), dtype=np.int32), "the array is empty"),
        (np.array([3, -2], dtype=np.int64), r"token ID -2 is outside \[0, 2\*\*32\)"),
        (np.array([2**32], dtype=np.uint64), r"token ID 4294967296 is outside"),
    ],
)
def test_load_prompts_npy_rejects_invalid_array(
    tmp_path: Path, array: np.ndarray, message: str
) -> None:
    path = tmp_path / "prompts.npy"
    np.save(path, array)

    with pytest.raises(ValueError, match=message):
        _data.load_prompts(str(path))


@pytest.mark.parametrize("name", ["prompts.npz", "prompts.npy"])
def test_load_prompts_rejects_npz_archive(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with path.open("wb") as file:
        np.savez(file, tokens=np.array([1, 2], dtype=np.int32))

    with pytest.raises(ValueError, match=r"\.npz archives are not supported"):
        _data.load_prompts(str(path))


def test_load_prompts_npy_rejects_object_array(tmp_path: Path) -> None:
    path = tmp_path / "prompts.npy"
    np.save(path, np.array([[1], [2, 3]], dtype=object), allow_pickle=True)

    with pytest.raises(ValueError, match=r"not a valid \.npy file of integers"):
        _data.load_prompts(str(path))


# tinker-accel bench


@pytest.fixture
def small_data_file(tmp_path: Path, prompts: list[list[int]]) -> Path:
    path = tmp_path / "prompts.jsonl"
    # The second line contains token IDs at digit-count boundaries, 0 included.
    edge_tokens = [0, 1, 9, 10, 99, 100, 999, 1000, 0, 99999, 100000, 199999, 200018, 0]
    lines = [
        json.dumps(prompts[0][:16]),
        json.dumps({"tokens": edge_tokens}),
        json.dumps({"tokens": prompts[0]}),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def stand_in_accelerator(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """Replace the accelerator's public API with one that leaves tinker's client as it is.

    `request_body` returns the stock body, so a bench run passes until a test breaks it.
    This tests the bench command without the Rust extension.
    """
    if hasattr(tinker_accel, "disable"):
        tinker_accel.disable()
    state = {"enabled": False}
    monkeypatch.setattr(tinker_accel, "is_enabled", lambda: state["enabled"], raising=False)
    monkeypatch.setattr(tinker_accel, "enable", lambda: state.update(enabled=True), raising=False)
    monkeypatch.setattr(tinker_accel, "disable", lambda: state.update(enabled=False), raising=False)
    monkeypatch.setattr(tinker_accel, "request_body", _cli._stock_request_body, raising=False)
    return state


def test_bench_stand_in_prints_table(
    small_data_file: Path,
    prompts: list[list[int]],
    tmp_path: Path,
    stand_in_accelerator: dict[str, bool],
    capsys: pytest.CaptureFixture[str],
) -> None:
    results_path = tmp_path / "results.json"

    status = _cli.main(
        ["bench", "--data", str(small_data_file), "--repeat", "2", "--json", str(results_path)]
    )

    output = capsys.readouterr()
    assert status == 0, output.err
    assert re.search(r"prompt tokens\s+stock µs\s+accelerated µs\s+speedup", output.out)
    assert re.search(r"^\s+16\s+[\d,.]+\s+[\d,.]+\s+[\d,.]+x$", output.out, re.MULTILINE)
    assert f"tinker {metadata.version('tinker')}, pydantic " in output.out
    assert not stand_in_accelerator["enabled"]

    report = json.loads(results_path.read_text())
    assert report["repeat"] == 2
    assert report["data"] == str(small_data_file)
    assert [result["prompt_tokens"] for result in report["results"]] == [16, 14, len(prompts[0])]
    assert set(report["versions"]) == {"tinker", "pydantic", "tinker_accel", "python"}
    assert report["machine"]["cpu_count"] >= 1


def test_bench_times_each_path_in_its_state(
    small_data_file: Path,
    stand_in_accelerator: dict[str, bool],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The stock path must be timed with the accelerator off, or its token field would
    # already go through the encoder and the speedup would be understated.
    states: dict[str, set[bool]] = {"stock": set(), "accelerated": set()}
    stock_body = _cli._stock_request_body

    def timed_stock(request: object) -> bytes:
        states["stock"].add(stand_in_accelerator["enabled"])
        return stock_body(request)  # type: ignore[arg-type]

    def timed_accelerated(request: object) -> bytes:
        states["accelerated"].add(stand_in_accelerator["enabled"])
        return stock_body(request)  # type: ignore[arg-type]

    monkeypatch.setattr(_cli, "_stock_request_body", timed_stock)
    monkeypatch.setattr(tinker_accel, "request_body", timed_accelerated)

    assert _cli.main(["bench", "--data", str(small_data_file), "--repeat", "3"]) == 0
    assert False not in states["accelerated"]
    assert True in states["accelerated"]
    assert states["stock"] == {False}


def test_bench_restores_enabled_accelerator(
    small_data_file: Path, stand_in_accelerator: dict[str, bool]
) -> None:
    stand_in_accelerator["enabled"] = True

    assert _cli.main(["bench", "--data", str(small_data_file), "--repeat", "1"]) == 0
    assert stand_in_accelerator["enabled"]


def test_bench_fails_when_request_body_differs(
    small_data_file: Path,
    stand_in_accelerator: dict[str, bool],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def request_body_with_extra_space(request: object) -> bytes:
        return _cli._stock_request_body(request).replace(b",", b", ", 1)  # type: ignore[arg-type]

    monkeypatch.setattr(tinker_accel, "request_body", request_body_with_extra_space)

    status = _cli.main(["bench", "--data", str(small_data_file), "--repeat", "1"])

    output = capsys.readouterr()
    assert status == _cli.EXIT_BODY_CHECK_FAILED
    assert "FAILED: request bodies differ for the 16-token prompt" in output.err
    assert "tinker_accel.request_body() differs from the body" in output.err
    assert "prompt tokens" not in output.out


def test_bench_fails_when_sent_tokens_differ(
    small_data_file: Path,
    stand_in_accelerator: dict[str, bool],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tinker_accel import _loopback

    send = _loopback.send_sample_requests

    def send_with_padded_tokens(server: object, requests: list[object]) -> list[bytes]:
        bodies = send(server, requests)  # type: ignore[arg-type]
        if not stand_in_accelerator["enabled"]:
            return bodies
        # Same JSON value, different bytes: a space after a comma in the token array.
        return [re.sub(rb'("tokens":\[\d+),', rb"\1, ", body, count=1) for body in bodies]

    monkeypatch.setattr(_loopback, "send_sample_requests", send_with_padded_tokens)

    status = _cli.main(["bench", "--data", str(small_data_file), "--repeat", "1"])

    output = capsys.readouterr()
    assert status == _cli.EXIT_BODY_CHECK_FAILED
    assert "the token arrays differ byte for byte" in output.err
    assert "the JSON values differ" not in output.err


def test_bench_rejects_invalid_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text("[1]\n[oops]\n")

    status = _cli.main(["bench", "--data", str(path)])

    assert status == _cli.EXIT_USAGE
    assert "line 2: invalid JSON" in capsys.readouterr().err


@pytest.mark.parametrize("repeat", ["0", "-3", "many"])
def test_bench_rejects_invalid_repeat(repeat: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        _cli.main(["bench", "--repeat", repeat])

    assert raised.value.code == _cli.EXIT_USAGE
    assert "expected a positive integer" in capsys.readouterr().err


def test_cli_without_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main([]) == _cli.EXIT_USAGE
    assert "bench" in capsys.readouterr().err


def test_python_m_runs_cli() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "tinker_accel", "bench", "--help"],
        env=CHILD_ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert completed.returncode == 0, completed.stderr
    assert "--repeat N" in completed.stdout


@pytest.mark.skipif(not HAS_NATIVE, reason="tinker_accel._native is not built")
def test_bench_real_accelerator_prints_table(
    small_data_file: Path, prompts: list[list[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    status = _cli.main(["bench", "--data", str(small_data_file), "--repeat", "2"])

    output = capsys.readouterr()
    assert status == 0, output.err
    assert re.search(r"prompt tokens\s+stock µs\s+accelerated µs\s+speedup", output.out)
    first_row = rf"^\s+{len(prompts[0]):,}\s+[\d,.]+\s+[\d,.]+\s+[\d,.]+x$"
    assert re.search(first_row, output.out, re.MULTILINE)


@pytest.mark.skipif(not HAS_NATIVE, reason="tinker_accel._native is not built")
def test_bench_real_accelerator_default_prompts(
    prompts: list[list[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    status = _cli.main(["bench", "--repeat", "1"])

    output = capsys.readouterr()
    assert status == 0, output.err
    last_row = rf"^\s+{len(prompts[-1]):,}\s+[\d,.]+\s+[\d,.]+\s+[\d,.]+x$"
    assert re.search(last_row, output.out, re.MULTILINE)


def test_bench_fails_when_server_rejects_body(
    small_data_file: Path,
    stand_in_accelerator: dict[str, bool],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import tinker

    def send_failing_when_enabled(server: object, requests: list[object]) -> list[bytes]:
        if stand_in_accelerator["enabled"]:
            request = httpx.Request("POST", "http://127.0.0.1/api/v1/asample")
            response = httpx.Response(422, request=request)
            raise tinker.UnprocessableEntityError("invalid JSON", response=response, body=None)
        return send(server, requests)  # type: ignore[arg-type]

    from tinker_accel import _loopback

    send = _loopback.send_sample_requests
    monkeypatch.setattr(_loopback, "send_sample_requests", send_failing_when_enabled)

    status = _cli.main(["bench", "--data", str(small_data_file), "--repeat", "1"])

    output = capsys.readouterr()
    assert status == _cli.EXIT_BODY_CHECK_FAILED
    assert "the accelerated client's sample request for the 16-token prompt" in output.err
    assert "invalid JSON" in output.err


def test_bench_progress_without_tqdm(
    small_data_file: Path,
    prompts: list[list[int]],
    stand_in_accelerator: dict[str, bool],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)

    status = _cli.main(["bench", "--data", str(small_data_file), "--repeat", "1"])

    output = capsys.readouterr()
    assert status == 0, output.err
    total = 16 + 14 + len(prompts[0])
    assert f"bench: 16 of {total:,} tokens\n" in output.err
    assert f"bench: {total:,} of {total:,} tokens\n" in output.err
    assert "bench:" not in output.out


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"tinker-accel {metadata.version('tinker-accel')}"


def test_doctor_reports_and_checks(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["self_check"] == "passed"
    assert report["backend"] in {"rust", "python"}
    assert report["tinker_version"] == metadata.version("tinker")
    assert report["tinker_accel_version"] == metadata.version("tinker-accel")
    assert _cli.main(["doctor"]) == 0
    assert "self_check" in capsys.readouterr().out


def test_doctor_fails_on_wrong_output(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tinker_accel, "encode_tokens", lambda tokens: b"[]")
    assert _cli.main(["doctor", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert "list: output differs from json.dumps" in report["self_check"]


def test_bench_writes_plot(small_data_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / "bench.png"
    status = _cli.main(
        ["bench", "--data", str(small_data_file), "--repeat", "1", "--plot", str(plot)]
    )
    assert status == 0
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
