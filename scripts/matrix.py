"""Run the compatibility tests against many (tinker, pydantic) pairs.

Each pair gets its own virtual environment under target/matrix/, made with uv, with
the tinker-accel wheel, that tinker release, the newest patch of that pydantic line,
and pytest. The environment runs tests/compat (one request of each kind through the
real client, with the accelerator off and on), and for pydantic lines from 2.11 on,
scripts/foreign_chunk_probe.py. The results go to a JSON file, and --report writes
the README's matrix table from it.

    python scripts/matrix.py --pairs corners        # the four corners, as CI runs
    python scripts/matrix.py --pairs full --report  # every release, then the README
    python scripts/matrix.py --pairs 0.22.3:2.9,0.30.0:2.12
    python scripts/matrix.py --from benches/results/matrix.json  # the README table only
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ElementTree
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "matrix"
DEFAULT_OUT = ROOT / "benches" / "results" / "matrix.json"
README = ROOT / "README.md"
OLDEST_TINKER = "0.10.0"
OLDEST_PYDANTIC_LINE = (2, 7)
# The first pydantic line whose union serializer formats a warning per token.
QUADRATIC_PYDANTIC_LINE = (2, 11)
TABLE_START = "<!-- matrix-table:start -->"
TABLE_END = "<!-- matrix-table:end -->"


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def is_final(version: str) -> bool:
    return re.fullmatch(r"\d+\.\d+(\.\d+)?", version) is not None


def pypi_versions(package: str) -> list[str]:
    """Return the final, not yanked releases of `package` on PyPI, oldest first."""
    with urllib.request.urlopen(f"https://pypi.org/pypi/{package}/json", timeout=60) as reply:
        releases = json.load(reply)["releases"]
    versions = [
        version
        for version, files in releases.items()
        if is_final(version) and files and not all(file.get("yanked") for file in files)
    ]
    return sorted(versions, key=version_key)


def tinker_releases() -> list[str]:
    return [v for v in pypi_versions("tinker") if version_key(v) >= version_key(OLDEST_TINKER)]


def pydantic_lines() -> list[str]:
    """Return the newest release of each pydantic 2 minor line from the oldest one
    supported, oldest line first."""
    newest: dict[tuple[int, ...], str] = {}
    for version in pypi_versions("pydantic"):
        line = version_key(version)[:2]
        if line[0] == 2 and line >= OLDEST_PYDANTIC_LINE:
            newest[line] = version
    return [newest[line] for line in sorted(newest)]


def choose_pairs(spec: str) -> list[tuple[str, str]]:
    if spec not in ("corners", "full"):
        pairs = []
        for item in spec.split(","):
            tinker, _, pydantic = item.partition(":")
            pairs.append((tinker.strip(), pydantic.strip()))
        return pairs
    tinkers = tinker_releases()
    lines = pydantic_lines()
    edges = [
        (tinker, pydantic)
        for tinker in (tinkers[0], tinkers[-1])
        for pydantic in (lines[0], lines[-1])
    ]
    if spec == "corners":
        return edges
    # Every tinker release with the newest pydantic, and every pydantic line with the
    # oldest and the newest tinker release.
    pairs = [(tinker, lines[-1]) for tinker in tinkers]
    pairs += [(tinker, pydantic) for pydantic in lines for tinker in (tinkers[0], tinkers[-1])]
    return list(dict.fromkeys(pairs))


def find_wheel(explicit: str | None) -> Path:
    """Return the given wheel, or build one from the checkout."""
    if explicit:
        return Path(explicit).resolve()
    out = WORK / "wheel"
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run(["maturin", "build", "--release", "--out", str(out)], cwd=ROOT, check=True)
    return Path(next(iter(glob.glob(str(out / "*.whl")))))


def pinned_pydantic(version: str) -> str:
    """Return the pip requirement for a pydantic version, or for a whole line (2.9)."""
    parts = version.split(".")
    return f"pydantic=={version}" if len(parts) >= 3 else f"pydantic=={version}.*"


def run_pair(tinker: str, pydantic: str, wheel: Path, uv: str) -> dict[str, Any]:
    started = time.monotonic()
    venv = WORK / f"tinker-{tinker}-pydantic-{pydantic}"
    shutil.rmtree(venv, ignore_errors=True)
    python = venv / "bin" / "python"
    log_path = venv.parent / f"{venv.name}.log"
    result: dict[str, Any] = {
        "tinker": tinker,
        "pydantic_requested": pydantic,
        "log": str(log_path.relative_to(ROOT)),
    }
    with open(log_path, "w", encoding="utf-8") as log:

        def run(command: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
            log.write("$ " + " ".join(command) + "\n")
            log.flush()
            return subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, text=True, **options
            )

        if run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)]).returncode != 0:
            return {**result, "outcome": "setup failed"}
        install = run(
            [uv, "pip", "install", "--quiet", "--python", str(python), str(wheel),
             f"tinker=={tinker}", pinned_pydantic(pydantic), "pytest"]
        )  # fmt: skip
        if install.returncode != 0:
            return {**result, "outcome": "install failed"}
        versions = subprocess.run(
            [str(python), "-c",
             "import json, importlib.metadata as m; print(json.dumps({n: m.version(n) "
             "for n in ('tinker', 'pydantic', 'pydantic-core', 'httpx')}))"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        result["installed"] = json.loads(versions.stdout)
        checks = venv / "checks.jsonl"
        junit = venv / "junit.xml"
        tests = run(
            [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
             f"--junitxml={junit}", "tests/compat"],
            cwd=ROOT, env={**os.environ, "TINKER_ACCEL_MATRIX_REPORT": str(checks)},
        )  # fmt: skip
        suite = ElementTree.parse(junit).getroot()
        suite = suite if suite.tag == "testsuite" else suite[0]
        counts = {
            key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")
        }
        result.update(counts)
        result["checks"] = (
            [json.loads(line)["check"] for line in checks.read_text().splitlines()]
            if checks.exists()
            else []
        )
        result["outcome"] = "passed" if tests.returncode == 0 else "failed"
        line = version_key(result["installed"]["pydantic"])[:2]
        if tests.returncode == 0 and line >= QUADRATIC_PYDANTIC_LINE:
            probe = subprocess.run(
                [str(python), str(ROOT / "scripts" / "foreign_chunk_probe.py")],
                capture_output=True, text=True,
            )  # fmt: skip
            if probe.returncode == 0:
                result["foreign_chunk"] = json.loads(probe.stdout)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def outcome_text(pair: dict[str, Any]) -> str:
    if pair["outcome"] != "passed":
        return str(pair["outcome"])
    return f"passed ({pair['tests'] - pair['skipped']} run, {pair['skipped']} skipped)"


def grouped_rows(pairs: list[dict[str, Any]]) -> list[str]:
    """Return table rows, one per run of consecutive pairs that differ only in the
    tinker release."""
    groups: list[tuple[list[str], tuple[str, ...]]] = []
    for pair in pairs:
        installed = pair.get("installed", {})
        key = (
            installed.get("pydantic", pair["pydantic_requested"]),
            installed.get("httpx", "?"),
            outcome_text(pair),
            "; ".join(pair.get("checks", [])),
        )
        if groups and groups[-1][1] == key:
            groups[-1][0].append(pair["tinker"])
        else:
            groups.append(([pair["tinker"]], key))
    rows = []
    for releases, (pydantic, httpx, outcome, checks) in groups:
        if len(releases) == 1:
            tinker = releases[0]
        else:
            tinker = f"{releases[0]} to {releases[-1]} ({len(releases)} releases)"
        rows.append(f"| {tinker} | {pydantic} | {httpx} | {outcome} | {checks} |")
    return rows


def foreign_chunk_rows(results: dict[str, Any]) -> list[str]:
    """Return the table of the foreign chunk probe: per pydantic line, its pairs with
    the oldest and the newest tinker."""
    seeds: dict[tuple[str, str], dict[str, Any]] = {}
    tinkers = sorted({pair["tinker"] for pair in results["pairs"]}, key=version_key)
    for pair in results["pairs"]:
        if "foreign_chunk" in pair and pair["tinker"] in (tinkers[0], tinkers[-1]):
            seeds[(pair["installed"]["pydantic"], pair["tinker"])] = pair
    seed_rows = [
        "| pydantic | tinker | stock ms at n = 250 / 500 / 1000 | stock exponent "
        "| accelerated µs at n = 1000 | accelerated exponent |",
        "|:---|:---|:---|---:|---:|---:|",
    ]
    for (pydantic, tinker), pair in sorted(
        seeds.items(), key=lambda item: (version_key(item[0][0]), version_key(item[0][1]))
    ):
        probe = pair["foreign_chunk"]
        stock = " / ".join(f"{seconds * 1000:,.1f}" for seconds in probe["stock_seconds"])
        seed_rows.append(
            f"| {pydantic} | {tinker} | {stock} | {probe['stock_exponent']:.2f} "
            f"| {probe['accelerated_seconds'][-1] * 1e6:,.1f} "
            f"| {probe['accelerated_exponent']:.2f} |"
        )
    return seed_rows


def write_readme_table(results: dict[str, Any]) -> None:
    rows = [
        "| tinker | pydantic | httpx | result | requests checked |",
        "|:---|:---|:---|:---|:---|",
        *grouped_rows(results["pairs"]),
    ]
    passed = sum(pair["outcome"] == "passed" for pair in results["pairs"])
    block = "\n".join(
        [
            TABLE_START,
            "<!-- Written by scripts/matrix.py --report from benches/results/matrix.json. -->",
            "",
            f"Run on {results['date']} with `python scripts/matrix.py --pairs {results['spec']}`: "
            f"{passed} of {len(results['pairs'])} pairs passed. CPython {results['python']}, "
            f"{results['machine']}.",
            "",
            *rows,
            "",
            "A chunk from a reloaded copy of tinker's chunk module (see above), on each "
            "pydantic line from 2.11 on with the oldest and newest tinker. The exponent is "
            "the slope of log(time) over log(n); the accelerated time is mostly the fixed "
            "cost of a request body, so its exponent is near 0:",
            "",
            *foreign_chunk_rows(results),
            TABLE_END,
        ]
    )

    text = README.read_text(encoding="utf-8")
    start, end = text.index(TABLE_START), text.index(TABLE_END) + len(TABLE_END)
    README.write_text(text[:start] + block + text[end:], encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="corners", help="corners, full, or TINKER:PYDANTIC,...")
    parser.add_argument("--jobs", type=int, default=2, help="pairs set up and run at once")
    parser.add_argument(
        "--wheel", help="the tinker-accel wheel to test (default: dist/ or a new build)"
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="where to write the JSON results")
    parser.add_argument("--report", action="store_true", help="rewrite the README matrix table")
    parser.add_argument(
        "--from", dest="source", help="write the README table from this JSON file; run nothing"
    )
    args = parser.parse_args()
    if args.source:
        write_readme_table(json.loads(Path(args.source).read_text(encoding="utf-8")))
        return 0

    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(uv).exists():
        parser.error("uv is not installed: pip install uv (it is in the dev extra)")
    pairs = choose_pairs(args.pairs)
    wheel = find_wheel(args.wheel)
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"testing {wheel.name} with {len(pairs)} (tinker, pydantic) pairs", flush=True)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_pair, tinker, pydantic, wheel, uv) for tinker, pydantic in pairs]
        outcomes = []
        for (tinker, pydantic), future in zip(pairs, futures, strict=True):
            outcome = future.result()
            outcomes.append(outcome)
            seconds = outcome.get("seconds", "?")
            print(
                f"tinker {tinker}, pydantic {pydantic}: {outcome['outcome']} "
                f"({seconds} s, log {outcome['log']})",
                flush=True,
            )
    results = {
        "schema": 1,
        "date": datetime.date.today().isoformat(),
        "spec": args.pairs,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs",
        "wheel": wheel.name,
        "pairs": outcomes,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if args.report:
        write_readme_table(results)
    failed = [pair for pair in outcomes if pair["outcome"] != "passed"]
    for pair in failed:
        print(f"FAILED: tinker {pair['tinker']}, pydantic {pair['pydantic_requested']}: "
              f"{pair['outcome']}, see {pair['log']}", file=sys.stderr)  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
