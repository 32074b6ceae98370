#!/usr/bin/env bash
# Set up .venv and run every test: the Rust core's with cargo, then the Python suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
cargo test --release
.venv/bin/python -m pytest "$@"
