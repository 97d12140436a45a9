"""Fixtures of the namespace lab: one world per test module, always torn down."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab import world as W


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[W.World]:
    why = W.missing_tools()
    if why is not None:
        pytest.skip(f"namespace lab: {why}")
    with W.world_context(tmp_path_factory.mktemp("netns")) as w:
        yield w
