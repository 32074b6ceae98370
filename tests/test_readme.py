"""The README's API examples give the results their comments show."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import tinker_accel

README = Path(__file__).resolve().parents[1] / "README.md"


def example_block() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"Examples, with each result in a comment.*?```python\n(.*?)```", text, re.S)
    assert match is not None, "README has no API examples block"
    return match.group(1)


@pytest.mark.skipif(not README.exists(), reason="runs from a checkout only")
def test_readme_examples_match_comments() -> None:
    namespace: dict[str, Any] = {}
    checked = 0
    # Statements without a result comment run together, so a class body stays whole.
    pending: list[str] = []
    try:
        for line in example_block().splitlines():
            code, _, comment = line.partition("  # ")
            if not comment or not code.strip():
                pending.append(line)
                continue
            exec("\n".join(pending), namespace)
            pending = []
            result = eval(code.strip(), namespace)
            assert repr(result) == comment.strip(), code
            checked += 1
        exec("\n".join(pending), namespace)
    finally:
        tinker_accel.disable()
    assert checked == 14
