from __future__ import annotations

from collections.abc import Iterator

import pytest

import tinker_accel


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
