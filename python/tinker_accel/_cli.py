"""The `tinker-accel` command line tool. Its one subcommand, `bench`, compares request bodies.

For each prompt, `tinker-accel bench` sends a sample request through the real tinker client
to a loopback server on 127.0.0.1, once with the accelerator off and once with it on. It
fails unless the two bodies are byte-identical. It then times how long each path takes to
produce the request body and prints a table to stdout. Progress and errors go to stderr.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinker_accel._data import default_prompts, load_prompts

if TYPE_CHECKING:
    from tinker.types import SampleRequest

# The whole default run should finish within about a minute on a 2-core machine. With 100
# runs it took 5 s on a 2 vCPU AMD EPYC, where the stock body cost ~106 ns per token. If the
# stock body cost 280 ns per token, the stock timings would add about 7 s (an estimate).
DEFAULT_REPEAT = 100

# Exit status when a request body fails a check: the accelerated body differs from the stock
# one, or the loopback server rejected a body.
EXIT_BODY_CHECK_FAILED = 1
# Exit status for invalid arguments, unreadable data and missing dependencies. argparse also
# exits with 2 on invalid arguments.
EXIT_USAGE = 2

# Matches the raw bytes of each token array in a request body.
_TOKENS_ARRAY = re.compile(rb'"tokens":\[([^\]]*)\]')

_TABLE_HEADER = ("prompt tokens", "stock µs", "accelerated µs", "speedup")
_MIN_COLUMN_WIDTH = 10


class BodyCheckError(Exception):
    """A request body differs between the stock and the accelerated client, or the loopback
    server rejected one."""


@dataclass(frozen=True)
class BenchResult:
    """Best-of-N times to produce the request body for one prompt, in nanoseconds."""

    prompt_tokens: int
    stock_ns: int
    accelerated_ns: int

    @property
    def speedup(self) -> float:
        return self.stock_ns / max(self.accelerated_ns, 1)


def main(argv: list[str] | None = None) -> int:
    """Run the `tinker-accel` command line tool and return its exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    status: int = args.run(args)
    return status


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinker-accel",
        description="Tools for tinker-accel, which speeds up tinker's sample request bodies.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_own_version()}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")

    doctor = subcommands.add_parser(
        "doctor",
        help="show what is installed and active, and check the encoder against json.dumps",
        description=(
            "Print the encoder backend, the tinker and pydantic versions, whether the "
            "accelerator is on, and the result of a quick self-check that compares "
            "encode_tokens with json.dumps on lists, tuples, ranges and buffers. Exits with "
            "1 if the self-check fails."
        ),
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(run=_run_doctor)

    bench = subcommands.add_parser(
        "bench",
        help="check and time the request bodies of the stock and the accelerated client",
        description=(
            "Send one sample request per prompt through the tinker client to a loopback "
            "server on 127.0.0.1, with the accelerator off and on, and check that the bodies "
            "match. Then time the production of the request body on both paths and print a "
            "table. Without --data, the prompts are one conversation growing from 1K to 128K "
            "o200k_base tokens, built from the docstrings and code of the Python standard "
            "library. Exits with 1 if the bodies differ."
        ),
    )
    bench.add_argument(
        "--data",
        metavar="PATH",
        help=(
            "read prompts from PATH instead: a JSONL file whose lines are JSON lists of token "
            'IDs or objects with a "tokens" list, or a .npy file holding a 1-D integer array '
            "(one prompt) or a 2-D one (one prompt per row)"
        ),
    )
    bench.add_argument(
        "--repeat",
        type=_positive_int,
        default=DEFAULT_REPEAT,
        metavar="N",
        help=f"time each request body N times and report the fastest (default: {DEFAULT_REPEAT})",
    )
    bench.add_argument(
        "--json",
        metavar="PATH",
        help="also write the results, versions and machine details to PATH as JSON",
    )
    bench.add_argument(
        "--plot",
        metavar="PATH",
        help="also draw the stock and accelerated times per prompt size into a PNG at PATH",
    )
    bench.set_defaults(run=_run_bench)
    return parser


def _own_version() -> str:
    try:
        return metadata.version("tinker-accel")
    except metadata.PackageNotFoundError:
        return "unknown"


def _self_check() -> list[str]:
    """Return the inputs on which encode_tokens differs from json.dumps, if any."""
    import array

    from tinker_accel import encode_tokens

    values = [0, 9, 10, 151_643, 2**31 - 1, 2**63 - 1, 2**64, -(2**63), 99_999_999]
    small = [value for value in values if 0 <= value < 2**31]
    cases: dict[str, Any] = {
        "list": values,
        "tuple": tuple(values),
        "range": range(-5, 300, 7),
        "array.array('i')": array.array("i", small),
        "memoryview of array.array('q'), reversed": memoryview(array.array("q", small))[::-1],
    }
    failures = []
    for name, tokens in cases.items():
        expected = json.dumps([int(token) for token in tokens], separators=(",", ":")).encode()
        try:
            if encode_tokens(tokens) != expected:
                failures.append(f"{name}: output differs from json.dumps")
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
    return failures


def _run_doctor(args: argparse.Namespace) -> int:
    import tinker_accel

    try:
        report: dict[str, Any] = dict(tinker_accel.status())
    except ImportError as exc:
        report = {"enabled": False, "problem": f"tinker is not installed: {exc}"}
    report["tinker_accel_version"] = _own_version()
    report["python"] = f"{platform.python_version()} ({platform.python_implementation()})"
    failures = _self_check()
    report["self_check"] = failures if failures else "passed"
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        width = max(len(key) for key in report)
        for key, value in report.items():
            print(f"{key:<{width}}  {value}")
    return 0 if not failures else EXIT_BODY_CHECK_FAILED


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _run_bench(args: argparse.Namespace) -> int:
    try:
        prompts = load_prompts(args.data) if args.data else default_prompts()
    except (OSError, ValueError, ImportError, RuntimeError) as exc:
        _print_error(f"cannot load prompts: {exc}")
        return EXIT_USAGE

    try:
        import tinker_accel
        from tinker_accel import _loopback
    except ImportError as exc:
        _print_error(f"cannot import the accelerator or the loopback server: {exc}")
        return EXIT_USAGE

    was_enabled = tinker_accel.is_enabled()
    try:
        with _loopback.LoopbackServer() as server:
            results = _bench_prompts(prompts, args.repeat, server)
    except BodyCheckError as exc:
        _print_error(f"FAILED: {exc}")
        return EXIT_BODY_CHECK_FAILED
    finally:
        if was_enabled:
            tinker_accel.enable()
        else:
            tinker_accel.disable()

    report = _build_report(results, args.repeat, args.data)
    _print_report(report, results)
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            _print_error(f"cannot write the results to {args.json}: {exc}")
            return EXIT_USAGE
    if args.plot:
        try:
            _write_plot(report, results, args.plot)
        except ImportError:
            _print_error("--plot needs matplotlib: pip install matplotlib")
            return EXIT_USAGE
        except OSError as exc:
            _print_error(f"cannot write the plot to {args.plot}: {exc}")
            return EXIT_USAGE
    return 0


def _write_plot(report: dict[str, Any], results: list[BenchResult], path: str) -> None:
    """Write a PNG of the request body time per prompt size, stock against accelerated."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    tokens = [result.prompt_tokens for result in results]
    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    axes.plot(tokens, [result.stock_ns / 1000 for result in results], "o-", label="stock tinker")
    axes.plot(
        tokens, [result.accelerated_ns / 1000 for result in results], "o-", label="tinker-accel"
    )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("prompt tokens")
    axes.set_ylabel("µs per request body (best of N)")
    versions = report["versions"]
    axes.set_title(
        f"tinker {versions['tinker']}, pydantic {versions['pydantic']}, "
        f"Python {versions['python']}\n{report['machine']['cpu']}, "
        f"{report['machine']['cpu_count']} CPUs"
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)


def _bench_prompts(prompts: Sequence[list[int]], repeat: int, server: Any) -> list[BenchResult]:
    import tinker_accel

    progress = _Progress(total=sum(len(prompt) for prompt in prompts))
    results = []
    try:
        for seq_id, tokens in enumerate(prompts):
            request = _build_sample_request(tokens, seq_id)

            tinker_accel.disable()
            stock_sent = _send_sample_request(server, request, "stock")
            stock_formula = _stock_request_body(request)
            tinker_accel.enable()
            accelerated_sent = _send_sample_request(server, request, "accelerated")
            server.clear()
            _check_bodies(request, tokens, stock_sent, accelerated_sent, stock_formula)

            # Each path is timed in its own state: with the accelerator on, even the
            # stock formula would use the encoder for the token field.
            tinker_accel.disable()
            stock_ns = _best_time_ns(functools.partial(_stock_request_body, request), repeat)
            tinker_accel.enable()
            accelerated = functools.partial(tinker_accel.request_body, request)
            accelerated_ns = _best_time_ns(accelerated, repeat)
            results.append(BenchResult(len(tokens), stock_ns, accelerated_ns))
            progress.update(len(tokens))
    finally:
        progress.close()
    return results


def _send_sample_request(server: Any, request: SampleRequest, client_name: str) -> list[bytes]:
    """Send `request` through tinker's client and return the bodies the server received."""
    import tinker

    from tinker_accel import _loopback

    try:
        bodies: list[bytes] = _loopback.send_sample_requests(server, [request])
    except tinker.APIError as exc:
        tokens = request.prompt.length
        raise BodyCheckError(
            f"the {client_name} client's sample request for the {tokens:,}-token prompt "
            f"(seq_id {request.seq_id}) failed: {exc}"
        ) from exc
    return bodies


def _build_sample_request(tokens: list[int], seq_id: int) -> SampleRequest:
    """Build a sample request with the fields that tinker 0.38.0's SamplingClient sets.

    The sampling parameters are typical of RL rollouts on the default conversation.
    """
    from tinker.types import ModelInput, SampleRequest, SamplingParams

    return SampleRequest(
        sampling_session_id="tinker-accel-bench-sampler",
        seq_id=seq_id,
        # A group of samples per prompt, as in GRPO-style training.
        num_samples=8,
        prompt=ModelInput.from_ints(tokens),
        sampling_params=SamplingParams(
            max_tokens=2048, temperature=1.0, top_p=1.0, stop=["\n\nUser:"]
        ),
        prompt_logprobs=False,
        topk_prompt_logprobs=0,
        topk_sample_logprobs=0,
        prompt_alt_tokens_k=0,
        record_stability_info=False,
    )


def _stock_request_body(request: SampleRequest) -> bytes:
    """Serialize `request` as tinker 0.38.0 does with the accelerator off.

    `AsyncSamplingResource.asample` calls `model_dump`, and httpx 0.29.0 calls `json.dumps`
    on the result, which `stock_dumps` repeats. `_check_bodies` confirms that the result
    equals the body that the server received.
    """
    from tinker_accel import stock_dumps

    return stock_dumps(request, exclude_none=True)


def _check_bodies(
    request: SampleRequest,
    tokens: list[int],
    stock_sent: list[bytes],
    accelerated_sent: list[bytes],
    stock_formula: bytes,
) -> None:
    """Raise BodyCheckError, listing every problem found, unless both bodies agree.

    Besides comparing the two bodies that the server received, this checks that the bodies
    carry `tokens`, and that the timed functions produce exactly the bodies that were sent.
    `stock_formula` is what `_stock_request_body` returned with the accelerator off.
    """
    import tinker_accel

    where = f"for the {len(tokens):,}-token prompt (seq_id {request.seq_id})"
    if len(stock_sent) != 1 or len(accelerated_sent) != 1:
        raise BodyCheckError(
            f"expected one body per client {where}, the server received "
            f"{len(stock_sent)} from the stock client and {len(accelerated_sent)} from the "
            "accelerated one"
        )
    stock_body = stock_sent[0]
    accelerated_body = accelerated_sent[0]

    problems = []
    stock_json = json.loads(stock_body)
    try:
        accelerated_json = json.loads(accelerated_body)
    except ValueError as exc:
        problems.append(f"the accelerated body is not valid JSON: {exc}")
        accelerated_json = None
    if not isinstance(accelerated_json, dict):
        if accelerated_json is not None:
            kind = type(accelerated_json).__name__
            problems.append(f"the accelerated body is a JSON {kind}, not an object")
    elif stock_json != accelerated_json:
        keys = sorted(set(stock_json) | set(accelerated_json))
        differing = [key for key in keys if stock_json.get(key) != accelerated_json.get(key)]
        problems.append(f"the JSON values differ in the keys {differing}")
    elif stock_body != accelerated_body:
        problems.append(
            "the bodies parse to the same JSON but differ byte for byte: "
            + _describe_difference(("stock", stock_body), ("accelerated", accelerated_body))
        )

    stock_arrays = _TOKENS_ARRAY.findall(stock_body)
    accelerated_arrays = _TOKENS_ARRAY.findall(accelerated_body)
    if stock_arrays != accelerated_arrays:
        problems.append(
            "the token arrays differ byte for byte: "
            + _describe_difference(
                ("stock", b"|".join(stock_arrays)), ("accelerated", b"|".join(accelerated_arrays))
            )
        )

    sent_tokens = [token for chunk in stock_json["prompt"]["chunks"] for token in chunk["tokens"]]
    if sent_tokens != tokens:
        problems.append("the stock body does not carry the prompt's token IDs")

    if stock_formula != stock_body:
        problems.append(
            "the benchmark's stock serialization no longer matches what tinker sends, so its "
            "stock time would measure the wrong work: "
            + _describe_difference(("json.dumps", stock_formula), ("sent", stock_body))
        )
    produced = tinker_accel.request_body(request)
    if produced != accelerated_body:
        problems.append(
            "tinker_accel.request_body() differs from the body that the accelerated client "
            "sent: "
            + _describe_difference(("request_body()", produced), ("sent", accelerated_body))
        )

    if problems:
        details = "".join(f"\n  - {problem}" for problem in problems)
        raise BodyCheckError(f"request bodies differ {where}:{details}")


def _describe_difference(first: tuple[str, bytes], second: tuple[str, bytes]) -> str:
    """Describe where two named byte strings first differ, with 20 bytes of context."""
    first_name, first_bytes = first
    second_name, second_bytes = second
    offset = next(
        (i for i, (a, b) in enumerate(zip(first_bytes, second_bytes, strict=False)) if a != b),
        min(len(first_bytes), len(second_bytes)),
    )
    start = max(offset - 20, 0)
    end = offset + 20
    return (
        f"first difference at byte {offset} ({first_name}: {len(first_bytes)} bytes, "
        f"{second_name}: {len(second_bytes)} bytes): {first_name} {first_bytes[start:end]!r} "
        f"vs {second_name} {second_bytes[start:end]!r}"
    )


def _best_time_ns(function: Callable[[], object], repeat: int) -> int:
    """Return the fastest of `repeat` calls, in nanoseconds.

    As in timeit, the garbage collector is off while the calls run, so a collection
    triggered by earlier allocations does not land in one path's time.
    """
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        best = None
        for _ in range(repeat):
            start = time.perf_counter_ns()
            function()
            elapsed = time.perf_counter_ns() - start
            if best is None or elapsed < best:
                best = elapsed
    finally:
        if gc_was_enabled:
            gc.enable()
    assert best is not None  # repeat >= 1 is enforced by the argument parser
    return best


def _build_report(results: list[BenchResult], repeat: int, data: str | None) -> dict[str, Any]:
    import pydantic

    import tinker_accel

    return {
        "data": data or "default",
        "repeat": repeat,
        "versions": {
            "tinker": metadata.version("tinker"),
            "pydantic": pydantic.VERSION,
            "tinker_accel": _tinker_accel_version(tinker_accel),
            "python": f"{platform.python_version()} ({platform.python_implementation()})",
        },
        "machine": {
            "platform": platform.platform(),
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
        },
        "results": [{**asdict(result), "speedup": round(result.speedup, 2)} for result in results],
    }


def _tinker_accel_version(module: Any) -> str:
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        return metadata.version("tinker-accel")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo on Linux, or what `platform` reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _print_report(report: dict[str, Any], results: list[BenchResult]) -> None:
    versions = report["versions"]
    machine = report["machine"]
    print(
        f"tinker {versions['tinker']}, pydantic {versions['pydantic']}, "
        f"tinker_accel {versions['tinker_accel']}, Python {versions['python']}"
    )
    print(f"{machine['platform']}, {machine['cpu']}, {machine['cpu_count']} CPUs")
    print(f"request body time, best of {report['repeat']} runs, data: {report['data']}")
    print()

    widths = [max(len(title), _MIN_COLUMN_WIDTH) for title in _TABLE_HEADER]
    print("  ".join(title.rjust(width) for title, width in zip(_TABLE_HEADER, widths, strict=True)))
    for result in results:
        cells = (
            f"{result.prompt_tokens:,}",
            f"{result.stock_ns / 1000:,.1f}",
            f"{result.accelerated_ns / 1000:,.1f}",
            f"{result.speedup:,.1f}x",
        )
        print("  ".join(cell.rjust(width) for cell, width in zip(cells, widths, strict=True)))


def _print_error(message: str) -> None:
    print(f"tinker-accel bench: {message}", file=sys.stderr)


class _Progress:
    """Progress bar on stderr in prompt tokens, with tqdm when it is installed.

    tqdm hides the bar when stderr is not a terminal. Without tqdm, one line per prompt
    goes to stderr.
    """

    def __init__(self, total: int) -> None:
        self._total = total
        self._done = 0
        try:
            from tqdm import tqdm
        except ImportError:
            self._bar: Any = None
        else:
            self._bar = tqdm(
                total=total,
                unit="token",
                unit_scale=True,
                desc="bench",
                file=sys.stderr,
                disable=None,
            )

    def update(self, tokens: int) -> None:
        self._done += tokens
        if self._bar is not None:
            self._bar.update(tokens)
        else:
            print(f"bench: {self._done:,} of {self._total:,} tokens", file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
