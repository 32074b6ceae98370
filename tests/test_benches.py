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
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PEERS = REPO_ROOT / "benches" / "peers.py"
REPORT = REPO_ROOT / "benches" / "report.py"
START_MARKER = "<!-- peers-table:start -->"
END_MARKER = "<!-- peers-table:end -->"

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
