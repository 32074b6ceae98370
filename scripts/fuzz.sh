#!/usr/bin/env bash
# Fuzz the Rust encoders for SECONDS seconds each (default 60) with cargo-fuzz, which
# is installed first if missing: the integer target, then the float one.
#
# It runs without a sanitizer ("--sanitizer none"), because AddressSanitizer needs a
# nightly toolchain. The targets check every output against a reference, and the
# integer target checks guard bytes past each bounded write.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
for target in encode floats; do
    mkdir -p "fuzz/corpus/$target"
    cargo fuzz run --sanitizer none -O "$target" -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1
done
