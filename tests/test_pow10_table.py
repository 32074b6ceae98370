"""The committed table of powers of ten is what its generator writes."""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "gen_pow10_table", ROOT / "scripts" / "gen_pow10_table.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_table_matches_generator() -> None:
    generator = load_generator()
    committed = (ROOT / "rust" / "floats_pow10.rs").read_text()
    assert committed == generator.render()


def test_entries_bound_the_exact_powers() -> None:
    # g - 1 <= 10**e * 2**s < g with s = 127 - floor(log2(10**e)), checked with
    # exact integers on both sides.
    generator = load_generator()
    for e in range(generator.FIRST, generator.LAST + 1):
        g = generator.scaled(e)
        shift = 127 - generator.floor_log2_pow10(e)
        numerator = 10**e if e >= 0 else 1
        denominator = 1 if e >= 0 else 10**-e
        if shift >= 0:
            numerator *= 2**shift
        else:
            denominator *= 2**-shift
        assert (g - 1) * denominator <= numerator < g * denominator, e
        assert 2**127 <= g < 2**128, e


def test_floor_log2_of_powers_of_ten() -> None:
    generator = load_generator()
    for e in range(generator.FIRST, generator.LAST + 1):
        b = generator.floor_log2_pow10(e)
        power = Fraction(10) ** e
        assert Fraction(2) ** b <= power < Fraction(2) ** (b + 1), e
