"""The peer benchmark and its report run end to end and write every section.

No timing is checked: quick mode takes 3 samples per cell, far too few to compare.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PEERS = REPO_ROOT / "benches" / "peers.py"
REPORT = REPO_ROOT / "benches" / "report.py"
START_MARKER = "<!-- peers-table:start -->"
END_MARKER = "<!-- peers-table:end -->"

LAG_NUMBERS = ("wall_ms", "max_lag_ms", "p99_lag_ms", "mean_lag_ms", "ticks")
LAG_CLIENTS = ["stock", "accelerated"]
LAG_RATIOS = ["wall", "max_lag", "p99_lag", "mean_lag"]

# Keys whose values must be numbers in every row, by section.
ROW_NUMBERS = {
    "lists": ("token_range", "n"),
    "buffers": (
        "token_range",
        "n",
        "encode_tokens_ns_per_token",
        "peer_ns_per_token",
        "speedup",
    ),
    "tinker_body": (
        "n",
        "stock_us",
        "accelerated_us",
        "encode_tokens_us",
        "speedup",
        "accelerated_over_encode_tokens",
    ),
    "pydantic": ("n", "sequence_us", "token_ids_us", "speedup"),
    "threads": (
        "n",
        "one_thread_mtokens_per_s",
        "two_threads_mtokens_per_s",
        "scaling",
    ),
    "memory": (
        "n",
        "output_bytes",
        "peak_increase_bytes",
        "increase_per_output_byte",
        "headroom_bytes",
    ),
    "loop_lag": LAG_NUMBERS,
}
FOREIGN_ACCELERATED_NUMBERS = ("n", "normal_us", "foreign_us", "ratio")
FOREIGN_STOCK_NUMBERS = ("n", "foreign_us", "normal_us", "slowdown", "foreign_ns_per_token")
LIST_TOOLS = ["encode_tokens", "orjson", "msgspec", "ujson", "json"]
VERSION_KEYS = {
    "python",
    "tinker",
    "pydantic",
    "orjson",
    "msgspec",
    "ujson",
    "numpy",
    "tinker_accel",
}
README_HEADINGS = (
    "### Lists",
    "### Buffers",
    "### tinker request body",
    "### pydantic",
    "### Chunk from a reloaded module",
    "### Threads",
    "### Memory",
    "### Event loop lag",
)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def run_script(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *(str(arg) for arg in args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def peers() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("benches_peers", PEERS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # The dataclasses in peers.py look their module up in sys.modules while it runs.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.fixture(scope="module")
def quick_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("peers") / "quick.json"
    completed = run_script(PEERS, "--quick", "--out", out)
    assert completed.returncode == 0, completed.stderr
    return out


@pytest.fixture(scope="module")
def results(quick_json: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(quick_json.read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize("section", sorted(ROW_NUMBERS))
def test_quick_section_rows_numeric(results: dict[str, Any], section: str) -> None:
    rows = results[section]["rows"]
    assert rows, f"{section} has no rows"
    for row in rows:
        for key in ROW_NUMBERS[section]:
            assert is_number(row[key]), f"{section} row {row}: {key} is not a number"


def test_quick_lists_cover_every_tool(results: dict[str, Any]) -> None:
    assert results["lists"]["tools"] == LIST_TOOLS
    for row in results["lists"]["rows"]:
        assert list(row["ns_per_token"]) == LIST_TOOLS
        assert list(row["speedup"]) == LIST_TOOLS[1:]
        assert all(is_number(value) for value in row["ns_per_token"].values())
        assert all(is_number(value) for value in row["speedup"].values())


def test_quick_lists_cover_both_ranges(results: dict[str, Any]) -> None:
    ranges = {row["token_range"] for row in results["lists"]["rows"]}
    assert ranges == {151936, 32000}


def test_quick_buffers_cover_every_input(results: dict[str, Any]) -> None:
    inputs = {row["input"] for row in results["buffers"]["rows"]}
    assert inputs == {"numpy int32", "numpy int64", "array('i')"}


def test_quick_foreign_chunk_numeric(results: dict[str, Any]) -> None:
    section = results["foreign_chunk"]
    for key in FOREIGN_ACCELERATED_NUMBERS:
        assert is_number(section["accelerated"][key]), key
    assert section["stock"]
    for row in section["stock"]:
        for key in FOREIGN_STOCK_NUMBERS:
            assert is_number(row[key]), f"stock row {row}: {key}"
    assert is_number(section["stock_exponent"])


def test_quick_loop_lag_layout(results: dict[str, Any]) -> None:
    section = results["loop_lag"]
    settings = results["settings"]
    assert section["tasks"] == settings["lag_tasks"]
    assert section["rounds"] == settings["lag_rounds"]
    assert 0 < section["n"] <= settings["lag_prompt_tokens"]
    assert section["selected_round"] == "median wall time"
    assert [row["client"] for row in section["rows"]] == LAG_CLIENTS
    assert list(section["ratios"]) == LAG_RATIOS
    for key, ratio in section["ratios"].items():
        assert is_number(ratio), key


def test_quick_loop_lag_keeps_every_round(results: dict[str, Any]) -> None:
    section = results["loop_lag"]
    assert list(section["all_rounds"]) == LAG_CLIENTS
    for row in section["rows"]:
        rounds = section["all_rounds"][row["client"]]
        assert len(rounds) == section["rounds"]
        for stats in rounds:
            for key in LAG_NUMBERS:
                assert is_number(stats[key]), f"{row['client']} round {stats}: {key}"
        selected = {key: value for key, value in row.items() if key != "client"}
        assert selected in rounds
        # The ticker completes the sleep in progress when the requests end, so it records
        # at least one tick.
        assert row["ticks"] >= 1


def test_loop_lag_accepts_same_bodies(peers: ModuleType) -> None:
    bodies = [b'{"seq_id":0}', b'{"seq_id":1}']
    peers.require_same_bodies("accelerated", list(bodies), bodies, 1024)


def test_loop_lag_rejects_different_body(peers: ModuleType) -> None:
    reference = [b'{"seq_id":0}', b'{"seq_id":1}']
    bodies = [b'{"seq_id":0}', b'{"seq_id":2}']
    with pytest.raises(peers.BenchError, match="sorted request body 1 of 1,024 tokens"):
        peers.require_same_bodies("accelerated", bodies, reference, 1024)


def test_loop_lag_rejects_missing_body(peers: ModuleType) -> None:
    reference = [b'{"seq_id":0}', b'{"seq_id":1}']
    with pytest.raises(
        peers.BenchError, match="received 1 sample bodies from the accelerated client, expected 2"
    ):
        peers.require_same_bodies("accelerated", reference[:1], reference, 1024)


def test_median_round_by_wall_time(peers: ModuleType) -> None:
    rounds = [{"wall_ms": 30.0}, {"wall_ms": 10.0}, {"wall_ms": 20.0}, {"wall_ms": 40.0}]
    assert peers.median_round(rounds[:3]) == {"wall_ms": 20.0}
    # With an even count, the lower of the two middle rounds.
    assert peers.median_round(rounds) == {"wall_ms": 20.0}
    assert peers.median_round(rounds[:1]) == {"wall_ms": 30.0}


def test_quick_records_versions_and_machine(results: dict[str, Any]) -> None:
    assert set(results["versions"]) == VERSION_KEYS
    assert all(isinstance(value, str) and value for value in results["versions"].values())
    machine = results["machine"]
    assert machine["cpu"]
    assert is_number(machine["cpu_count"])
    assert isinstance(machine["avx2"], bool)
    assert isinstance(machine["avx512"], bool)
    assert results["settings"]["mode"] == "quick"


def test_report_replaces_marked_block(quick_json: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    shutil.copy(REPO_ROOT / "README.md", readme)
    original = readme.read_text(encoding="utf-8")
    plot = tmp_path / "plot.png"

    completed = run_script(REPORT, "--json", quick_json, "--readme", readme, "--plot", plot)

    assert completed.returncode == 0, completed.stderr
    updated = readme.read_text(encoding="utf-8")
    before, rest = updated.split(START_MARKER)
    block, after = rest.split(END_MARKER)
    assert before == original.split(START_MARKER)[0]
    assert after == original.split(END_MARKER)[1]
    assert block != original.split(START_MARKER)[1].split(END_MARKER)[0]
    for heading in README_HEADINGS:
        assert heading in block
    assert "quick mode" in block


def test_report_writes_plot(quick_json: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{START_MARKER}\n{END_MARKER}\n", encoding="utf-8")
    plot = tmp_path / "plot.png"

    completed = run_script(REPORT, "--json", quick_json, "--readme", readme, "--plot", plot)

    assert completed.returncode == 0, completed.stderr
    if importlib.util.find_spec("matplotlib") is None:
        assert "matplotlib is not installed" in completed.stderr
        assert not plot.exists()
    else:
        assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_report_rejects_readme_without_markers(quick_json: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n", encoding="utf-8")

    completed = run_script(
        REPORT, "--json", quick_json, "--readme", readme, "--plot", tmp_path / "plot.png"
    )

    assert completed.returncode == 2
    assert "expected exactly one" in completed.stderr
    assert readme.read_text(encoding="utf-8") == "# Title\n"
