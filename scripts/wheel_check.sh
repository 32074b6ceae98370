#!/usr/bin/env bash
# Build the release artifacts into dist/: an abi3 manylinux2014 wheel, linked with zig
# from PyPI, and an sdist. Then install the wheel into a fresh virtual environment with
# no Rust toolchain on PATH, and run the test suite against the installed package.
# Needs .venv from `scripts/setup.sh dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

rm -rf dist
zig_dir=$(.venv/bin/python -c "import os, ziglang; print(os.path.dirname(ziglang.__file__))")
PATH="$zig_dir:$PATH" .venv/bin/maturin build --release --zig --compatibility manylinux2014 --out dist
.venv/bin/maturin sdist --out dist
wheel=$(ls dist/*.whl)
echo "built: $(cd dist && ls)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${PYTHON:-python3}" -m venv "$work/venv"
# Only the new environment and the system directories: no cargo, rustc or maturin.
clean_path="$work/venv/bin:/usr/bin:/bin"
env PATH="$clean_path" sh -c '! command -v cargo && ! command -v rustc' >/dev/null
env PATH="$clean_path" pip install --quiet "$wheel[test]"

# The tests run from a copy outside the checkout, so that only the installed package
# can be imported. The tests of the benchmarks and of the generated table of powers of
# ten need the checkout's scripts and sources, so they stay behind.
cp -r tests "$work/tests"
rm "$work/tests/test_benches.py" "$work/tests/test_pow10_table.py"
cd "$work"
env PATH="$clean_path" python -c '
import sys, tinker_accel
location = tinker_accel.__file__
assert "site-packages" in location, location
print("testing", location, "backend", tinker_accel.status()["backend"])
'
env PATH="$clean_path" python -m pytest -q -p no:cacheprovider tests
echo "wheel check passed in a clean environment, from $repo"
