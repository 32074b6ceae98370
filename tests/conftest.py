from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import tinker_accel
from tinker_accel import _plain


@pytest.fixture
def accelerated() -> Iterator[None]:
    """Switch the accelerator on for one test and off again afterwards."""
    tinker_accel.enable()
    try:
        yield
    finally:
        tinker_accel.disable()


@pytest.fixture(autouse=True)
def _accelerator_off_between_tests() -> Iterator[None]:
    # A test that fails halfway must not leave the switch on for the next one.
    yield
    tinker_accel.disable()


class _CountingPlan:
    def __init__(self, plan: Any, bodies: list[str]) -> None:
        self._plan = plan
        self._bodies = bodies

    def dumps(self, model: Any, exclude_none: bool, exclude_unset: bool = False) -> bytes | None:
        body: bytes | None = self._plan.dumps(model, exclude_none, exclude_unset)
        if body is not None:
            self._bodies.append(type(model).__name__)
        return body


@pytest.fixture
def plan_bodies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the class name of every model whose body a plan wrote, without pydantic."""
    bodies: list[str] = []
    plan_for = _plain.plan_for

    def counting_plan_for(model_class: Any) -> Any:
        plan = plan_for(model_class)
        return None if plan is None else _CountingPlan(plan, bodies)

    monkeypatch.setattr(_plain, "plan_for", counting_plan_for)
    return bodies
