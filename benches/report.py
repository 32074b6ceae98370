"""Turn the JSON results of ``benches/peers.py`` into README tables and a plot.

The tables replace the text between the ``<!-- peers-table:start -->`` and
``<!-- peers-table:end -->`` markers of the README. The plot shows the time per token
against the number of tokens for every tool, lists and numpy arrays in two panels.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO_ROOT / "benches" / "results" / "latest.json"
DEFAULT_README = REPO_ROOT / "README.md"
DEFAULT_PLOT = REPO_ROOT / "benches" / "results" / "ns_per_token.png"

START_MARKER = "<!-- peers-table:start -->"
END_MARKER = "<!-- peers-table:end -->"

SUPPORTED_SCHEMA_VERSION = 3

# The README shows the lists and buffers at these sizes. Quick runs, which have neither,
# show every size instead.
README_SIZES = (8192, 131072)

EXIT_INVALID_INPUT = 2


class ReportError(Exception):
    """The results file or the README cannot be used."""


# ---------------------------------------------------------------------------
# Formatting


def format_range(token_range: int) -> str:
    return f"[0, {token_range:,})"


def format_ratio(ratio: float) -> str:
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    return f"{ratio:.1f}x" if ratio >= 10 else f"{ratio:.2f}x"


def format_time(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], text_columns: int = 1
) -> list[str]:
    """Return the lines of a markdown table whose first ``text_columns`` columns are
    left-aligned and the others right-aligned."""
    alignment = [":---"] * text_columns + ["---:"] * (len(headers) - text_columns)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(alignment) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def readme_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    selected = [row for row in rows if row["n"] in README_SIZES]
    return selected or rows


def describe_run(results: dict[str, Any]) -> str:
    versions = results["versions"]
    machine = results["machine"]
    features = [name for name, key in (("AVX2", "avx2"), ("AVX-512", "avx512")) if machine[key]]
    source = results.get("source")
    revision = ""
    if source:
        dirty = " plus uncommitted source changes" if source["uncommitted_changes"] else ""
        revision = f" at commit {source['commit']}{dirty}"
    return (
        f"Measured on {results['date'][:10]} with `python benches/peers.py` "
        f"({results['settings']['mode']} mode){revision}. "
        f"Machine: {machine['cpu']}, {machine['cpu_count']} CPUs, "
        f"{' and '.join(features) or 'no AVX2'}, {machine['platform']}. "
        f"Versions: CPython {versions['python'].split()[0]}, tinker {versions['tinker']}, "
        f"pydantic {versions['pydantic']}, orjson {versions['orjson']}, "
        f"msgspec {versions['msgspec']}, ujson {versions['ujson']}, numpy {versions['numpy']}, "
        f"tinker-accel {versions['tinker_accel']}."
    )


# ---------------------------------------------------------------------------
# README sections


def lists_section(results: dict[str, Any]) -> list[str]:
    section = results["lists"]
    peers = [tool for tool in section["tools"] if tool != "encode_tokens"]
    rows = [
        [
            format_range(row["token_range"]),
            f"{row['n']:,}",
            format_time(row["ns_per_token"]["encode_tokens"]),
            *(format_ratio(row["speedup"][peer]) for peer in peers),
        ]
        for row in readme_rows(section["rows"])
    ]
    return [
        "Lists of ints: `encode_tokens(list)` in ns per token, and the time of each peer "
        "divided by its time (msgspec with a reused `Encoder`, json with compact separators).",
        "",
        *markdown_table(
            ["token IDs", "n", "encode_tokens ns/token", *(f"vs {peer}" for peer in peers)], rows
        ),
    ]


def buffers_section(results: dict[str, Any]) -> list[str]:
    by_size: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for row in readme_rows(results["buffers"]["rows"]):
        by_size.setdefault((row["token_range"], row["n"]), {})[row["input"]] = row
    inputs = list(next(iter(by_size.values())))
    headers = ["token IDs", "n"]
    for input_name in inputs:
        peer = next(iter(by_size.values()))[input_name]["peer"]
        headers += [f"{input_name} ns/token", f"vs {peer}"]
    table: list[list[str]] = []
    for (token_range, n), cells in by_size.items():
        line = [format_range(token_range), f"{n:,}"]
        for input_name in inputs:
            line += [
                format_time(cells[input_name]["encode_tokens_ns_per_token"]),
                format_ratio(cells[input_name]["speedup"]),
            ]
        table.append(line)
    return [
        "1-D buffers: `encode_tokens` in ns per token and the peer's time divided by it. "
        "The numpy peer is `orjson.dumps(arr, option=orjson.OPT_SERIALIZE_NUMPY)`. No peer "
        "reads `array.array`, so its peer is `orjson.dumps(arr.tolist())`.",
        "",
        *markdown_table(headers, table),
    ]


def floats_section(results: dict[str, Any]) -> list[str]:
    headers = [
        "input",
        "n",
        "encode_floats ns/value",
        "vs orjson",
        "vs msgspec",
        "vs json",
        "AVX2 path vs orjson",
        "one at a time vs orjson",
    ]
    table = [
        [
            f"{row['input']}",
            f"{row['n']:,}",
            format_time(row["encode_floats_ns"]),
            format_ratio(row["vs_orjson"]),
            format_ratio(row["vs_msgspec"]) if "vs_msgspec" in row else "-",
            format_ratio(row["vs_json"]),
            format_ratio(row["avx2_vs_orjson"]) if "avx2_vs_orjson" in row else "-",
            format_ratio(row["scalar_vs_orjson"]) if "scalar_vs_orjson" in row else "-",
        ]
        for row in results["floats"]["rows"]
    ]
    return [
        "Floats (log-probabilities and advantages in turn, as in an RL step): "
        "`encode_floats` in ns per value, and each peer's time divided by it. Its output is "
        "byte-identical to `json.dumps` (the stock path); orjson's and msgspec's are not "
        "(`0.00001` for `1e-05`, the float32 digits of a float32). The numpy peer is "
        "`orjson.dumps(arr, option=orjson.OPT_SERIALIZE_NUMPY)`; for `array('d')` it is "
        "`orjson.dumps(arr.tolist())`; json's is `json.dumps(values.tolist())`. "
        "`encode_floats` takes the fastest path of this CPU: eight values at once with "
        "AVX-512 IFMA and VBMI. The last two columns force the paths of other CPUs in "
        "the same run: four values at once with AVX2, and one at a time where neither "
        "is available.",
        "",
        *markdown_table(headers, table),
    ]


def tinker_body_section(results: dict[str, Any]) -> list[str]:
    rows = [
        [
            f"{row['n']:,}",
            format_time(row["stock_us"]),
            format_time(row["accelerated_us"]),
            format_ratio(row["speedup"]),
            format_ratio(row["accelerated_over_encode_tokens"]),
        ]
        for row in results["tinker_body"]["rows"]
    ]
    return [
        "tinker `SampleRequest` body with a real o200k_base prompt: stock "
        "(`stock_dumps(request, exclude_none=True)`, accelerator off) against "
        "`request_body(request)`, and `request_body` divided by `encode_tokens` on the "
        "same token list.",
        "",
        *markdown_table(
            ["prompt tokens", "stock µs", "request_body µs", "speedup", "body / encode_tokens"],
            rows,
        ),
    ]


def pydantic_section(results: dict[str, Any]) -> list[str]:
    rows = [
        [
            f"`{row['method']}`",
            f"{row['n']:,}",
            format_time(row["sequence_us"]),
            format_time(row["token_ids_us"]),
            format_ratio(row["speedup"]),
        ]
        for row in sorted(results["pydantic"]["rows"], key=lambda row: (row["method"], row["n"]))
    ]
    return [
        "A pydantic model with `tokens: TokenIds` against the same model with "
        "`tokens: Sequence[int]`, token IDs in [0, 151,936):",
        "",
        *markdown_table(["method", "n", "Sequence[int] µs", "TokenIds µs", "speedup"], rows),
    ]


def foreign_chunk_section(results: dict[str, Any]) -> list[str]:
    section = results["foreign_chunk"]
    accelerated = section["accelerated"]
    rows = [
        [
            f"{row['n']:,}",
            format_time(row["foreign_us"] / 1000),
            format_time(row["normal_us"]),
            format_ratio(row["slowdown"]),
        ]
        for row in section["stock"]
    ]
    return [
        "A chunk whose class comes from a reloaded copy of `tinker.types.encoded_text_chunk`, "
        "as notebook autoreload leaves it. With the accelerator on, the body of a request "
        f"with {accelerated['n']:,} tokens in such a chunk takes "
        f"{format_time(accelerated['foreign_us'])} µs, {accelerated['ratio']:.2f} times the "
        f"{format_time(accelerated['normal_us'])} µs of the normal chunk. The stock body "
        "(accelerator off) grows as n to the power "
        f"{section['stock_exponent']:.2f}, fitted on these sizes:",
        "",
        *markdown_table(["n", "foreign chunk ms", "normal chunk µs", "slowdown"], rows),
    ]


def threads_section(results: dict[str, Any]) -> list[str]:
    rows = [
        [
            row["input"],
            f"{row['n']:,}",
            format_time(row["one_thread_mtokens_per_s"]),
            format_time(row["two_threads_mtokens_per_s"]),
            format_ratio(row["scaling"]),
        ]
        for row in results["threads"]["rows"]
    ]
    return [
        "Throughput of `encode_tokens` in million tokens per second, with one thread and with "
        "two threads encoding at once. Buffers are encoded with the GIL released, lists with "
        "the GIL held.",
        "",
        *markdown_table(["input", "n", "1 thread", "2 threads", "scaling"], rows),
    ]


def memory_section(results: dict[str, Any]) -> list[str]:
    rows = [
        [
            f"`{row['tool']}`",
            row["input"],
            f"{row['n']:,}",
            f"{row['output_bytes'] / 1e6:.2f}",
            f"{row['peak_increase_bytes'] / 1e6:.2f}",
            f"{row['increase_per_output_byte']:.2f}",
        ]
        for row in results["memory"]["rows"]
    ]
    return [
        "Peak resident memory that one call adds, measured as the rise of VmHWM in a fresh "
        "process, and that rise divided by the output's size:",
        "",
        *markdown_table(
            ["tool", "input", "n", "output MB", "peak increase MB", "per output byte"],
            rows,
            text_columns=2,
        ),
    ]


def loop_lag_section(results: dict[str, Any]) -> list[str]:
    section = results["loop_lag"]
    ratios = section["ratios"]
    rows = [
        [
            row["client"],
            format_time(row["wall_ms"]),
            format_time(row["max_lag_ms"]),
            format_time(row["p99_lag_ms"]),
            format_time(row["mean_lag_ms"]),
        ]
        for row in section["rows"]
    ]
    rows.append(
        [
            "stock / accelerated",
            *(format_ratio(ratios[key]) for key in ("wall", "max_lag", "p99_lag", "mean_lag")),
        ]
    )
    if section["rounds"] == 1:
        selected_round = "the only round"
    else:
        selected_round = f"the round with the median wall time of {section['rounds']}"
    return [
        f"{section['tasks']} asyncio tasks each send one `SampleRequest` with a "
        f"{section['n']:,}-token prompt through one `AsyncTinker` client to a loopback server "
        "in a child process, with the accelerator off and then on. Meanwhile a ticker task on "
        f"the same event loop sleeps {section['tick_ms']:g} ms at a time, and its lag is how "
        "much later than that each tick wakes up. These are not best-of-N times, and the "
        f"garbage collector stays on. Times in ms, from {selected_round}:",
        "",
        *markdown_table(["client", "wall ms", "max lag ms", "p99 lag ms", "mean lag ms"], rows),
    ]


SECTIONS: tuple[tuple[str, Callable[[dict[str, Any]], list[str]]], ...] = (
    ("Lists", lists_section),
    ("Buffers", buffers_section),
    ("tinker request body", tinker_body_section),
    ("pydantic", pydantic_section),
    ("Chunk from a reloaded module", foreign_chunk_section),
    ("Threads", threads_section),
    ("Memory", memory_section),
    ("Event loop lag", loop_lag_section),
    ("Floats", floats_section),
)


def readme_block(results: dict[str, Any], json_name: str) -> str:
    lines = [
        START_MARKER,
        f"<!-- Written by benches/report.py from {json_name}. Edits here are overwritten. -->",
        "",
        describe_run(results),
        "Each time is the best of many calls with the garbage collector off, cycling over "
        "several inputs of the same size, and token IDs are uniform in the range shown. "
        '"vs X" is the time of X divided by the time of tinker-accel, so 2.00x means twice '
        "as fast. `benches/README.md` describes the method.",
    ]
    for title, section in SECTIONS:
        lines += ["", f"### {title}", "", *section(results)]
    lines += ["", END_MARKER]
    return "\n".join(lines)


def replace_block(readme: str, block: str) -> str:
    """Return ``readme`` with the text from the start marker to the end marker replaced."""
    if readme.count(START_MARKER) != 1 or readme.count(END_MARKER) != 1:
        raise ReportError(
            f"expected exactly one {START_MARKER} and one {END_MARKER} line in the README, "
            f"found {readme.count(START_MARKER)} and {readme.count(END_MARKER)}. Put each "
            "marker once on its own line, where the tables should go."
        )
    start = readme.index(START_MARKER)
    end = readme.index(END_MARKER) + len(END_MARKER)
    if end < start:
        raise ReportError(
            f"{END_MARKER} comes before {START_MARKER} in the README. Swap the two markers."
        )
    return readme[:start] + block + readme[end:]


# ---------------------------------------------------------------------------
# Plot

# Each line of the numpy panel: tool, input, label and color. The int32 lines take the
# tool's color in the list panel (tab10 blue and orange), the int64 lines a lighter one.
NUMPY_LINES = (
    ("encode_tokens", "numpy int32", "encode_tokens int32", "#1f77b4"),
    ("encode_tokens", "numpy int64", "encode_tokens int64", "#8cc4ec"),
    ("peer", "numpy int32", "orjson int32", "#ff7f0e"),
    ("peer", "numpy int64", "orjson int64", "#ffbb78"),
)
RANGE_STYLES: tuple[Literal["-", "--", ":"], ...] = ("-", "--", ":")


def format_token_count(count: float, _position: object = None) -> str:
    """Label a power of two as 1K, 128K or 1M."""
    if count >= 2**20:
        return f"{count / 2**20:g}M"
    if count >= 2**10:
        return f"{count / 2**10:g}K"
    return f"{count:g}"


def format_minor_tick(value: float, _position: object = None) -> str:
    # Labels 2, 3 and 5 times each power of ten, which is enough to read values off a
    # log axis that spans one or two decades.
    leading = value / 10 ** math.floor(math.log10(value))
    return f"{value:g}" if round(leading) in (2, 3, 5) else ""


def plot_title(results: dict[str, Any]) -> str:
    versions = results["versions"]
    machine = results["machine"]
    return (
        f"Time per token, {machine['cpu']} ({machine['cpu_count']} CPUs), "
        f"{results['date'][:10]}\n"
        f"CPython {versions['python'].split()[0]}, tinker-accel {versions['tinker_accel']}, "
        f"orjson {versions['orjson']}, msgspec {versions['msgspec']}, "
        f"ujson {versions['ujson']}, numpy {versions['numpy']}"
    )


def write_plot(results: dict[str, Any], path: Path) -> bool:
    """Write the plot to ``path`` and return True, or return False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        return False

    token_ranges = results["settings"]["token_ranges"]
    figure, (lists_axes, numpy_axes) = plt.subplots(1, 2, figsize=(13, 5.5), sharey=True)
    tools = results["lists"]["tools"]
    colors = {tool: f"C{index}" for index, tool in enumerate(tools)}

    for token_range, style in zip(token_ranges, RANGE_STYLES, strict=False):
        rows = [row for row in results["lists"]["rows"] if row["token_range"] == token_range]
        for tool in tools:
            lists_axes.plot(
                [row["n"] for row in rows],
                [row["ns_per_token"][tool] for row in rows],
                style,
                marker="o",
                markersize=3,
                color=colors[tool],
            )
        buffer_rows = [
            row for row in results["buffers"]["rows"] if row["token_range"] == token_range
        ]
        for tool, input_name, _, color in NUMPY_LINES:
            rows = [row for row in buffer_rows if row["input"] == input_name]
            key = "encode_tokens_ns_per_token" if tool == "encode_tokens" else "peer_ns_per_token"
            numpy_axes.plot(
                [row["n"] for row in rows],
                [row[key] for row in rows],
                style,
                marker="o",
                markersize=3,
                color=color,
            )

    range_handles = [
        Line2D([], [], color="black", linestyle=style, label=f"IDs in {format_range(token_range)}")
        for token_range, style in zip(token_ranges, RANGE_STYLES, strict=False)
    ]
    list_handles = [Line2D([], [], color=colors[tool], label=tool) for tool in tools]
    numpy_handles = [Line2D([], [], color=color, label=label) for _, _, label, color in NUMPY_LINES]
    for axes, title, handles in (
        (lists_axes, "Python list of ints", list_handles),
        (numpy_axes, "numpy array (orjson with OPT_SERIALIZE_NUMPY)", numpy_handles),
    ):
        axes.set_xscale("log", base=2)
        axes.xaxis.set_major_formatter(FuncFormatter(format_token_count))
        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.yaxis.set_minor_formatter(FuncFormatter(format_minor_tick))
        axes.set_title(title)
        axes.set_xlabel("tokens per call (n)")
        axes.grid(True, which="major", alpha=0.4)
        axes.grid(True, which="minor", alpha=0.15)
        axes.legend(handles=handles + range_handles, fontsize=8, loc="upper left")
    lists_axes.set_ylabel("ns per token (best of N, log scale)")
    figure.suptitle(plot_title(results), fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


# ---------------------------------------------------------------------------
# Command line


def load_results(path: Path) -> dict[str, Any]:
    try:
        results: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ReportError(
            f"cannot read {path}: {error.strerror}. Run benches/peers.py first."
        ) from error
    except json.JSONDecodeError as error:
        raise ReportError(f"{path} is not valid JSON: {error}") from error
    version = results.get("schema_version")
    if version != SUPPORTED_SCHEMA_VERSION:
        raise ReportError(
            f"{path} has schema_version {version!r}, but this report reads version "
            f"{SUPPORTED_SCHEMA_VERSION}. Rerun benches/peers.py."
        )
    return results


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Write the README tables and the plot from the results of benches/peers.py."
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="PATH",
        help=f"results to read (default: {display_path(DEFAULT_JSON)})",
    )
    parser.add_argument(
        "--readme",
        type=Path,
        default=DEFAULT_README,
        metavar="PATH",
        help=(
            f"README whose text between {START_MARKER} and {END_MARKER} is replaced "
            f"(default: {display_path(DEFAULT_README)})"
        ),
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=DEFAULT_PLOT,
        metavar="PATH",
        help=f"PNG file to write (default: {display_path(DEFAULT_PLOT)})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        results = load_results(args.json)
        block = readme_block(results, display_path(args.json))
        readme = args.readme.read_text(encoding="utf-8")
        args.readme.write_text(replace_block(readme, block), encoding="utf-8")
    except (ReportError, OSError) as error:
        print(f"report.py: {error}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    print(f"updated the tables in {args.readme}")

    if write_plot(results, args.plot):
        print(f"wrote {args.plot}")
    else:
        print(
            "report.py: matplotlib is not installed, so no plot was written. Install it with "
            "`pip install matplotlib` (it is in the bench and test extras).",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
