#!/usr/bin/env bash
# Create .venv (if missing) and install tinker-accel into it with the given extras,
# building the Rust extension in release mode. Usage: scripts/setup.sh EXTRAS
# Set PYTHON to create the environment with another interpreter than python3.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-bench}
"${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet --editable ".[$extras]"
