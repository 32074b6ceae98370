#!/usr/bin/env bash
# Set up .venv and run `tinker-accel bench` on its built-in data; arguments pass through.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh bench
exec .venv/bin/tinker-accel bench "$@"
