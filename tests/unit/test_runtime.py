"""The start-up freeze keeps the collector off long-lived objects but still frees later cycles."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from pysstp.runtime import freeze_start_up_objects


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


class _Node:
    def __init__(self) -> None:
        self.me = self


@pytest.mark.usefixtures("unfrozen")
def test_frozen_objects_are_left_out_and_new_cycles_still_collected() -> None:
    freeze_start_up_objects()
    assert gc.get_freeze_count() > 0
    before = gc.get_freeze_count()
    node = _Node()
    gone = weakref.ref(node)
    del node
    gc.collect()
    assert gone() is None
    assert gc.get_freeze_count() == before
