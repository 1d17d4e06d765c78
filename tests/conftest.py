"""Markers by folder: a test's folder says what it needs (docs/architecture.md, "Tests").

* ``unit/``: codecs, machines and settings in memory (no root, no network).
* ``loopback/``: the real asyncio server and client over TLS on 127.0.0.1 (no root).
* ``netns/`` (marker ``netns``): network namespaces and TUN devices (root).
* ``interop/`` (marker ``interop``): real third-party peers: sstpc, SoftEther, sorz's sstp-server (root).

``pytest -m "not netns and not interop"`` runs everything that needs no root. A test elsewhere that needs
a namespace carries ``@pytest.mark.netns`` itself.

The asyncio tests run on every event loop pysstp can run on (src/pysstp/runtime.py): the standard
library's, and uvloop where it is installed; ``PYSSTP_EVENT_LOOP=asyncio`` (or ``uvloop``) runs one.

Hypothesis runs without its deadline and its too-slow health check: both time the machine, and a loaded
or slower one (CI beside other work) would fail a test that is right. Speed is measured by ``make bench``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from pysstp.runtime import LOOP_ENVIRONMENT, event_loops

settings.register_profile("pysstp", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("pysstp")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every asyncio test runs on each event loop pysstp can run on: the standard library's, and uvloop
    where it is installed (``PYSSTP_EVENT_LOOP=asyncio`` or ``=uvloop`` picks one)."""
    return event_loops(os.environ.get(LOOP_ENVIRONMENT, ""))


_FOLDER_MARKERS = {"netns": pytest.mark.netns, "interop": pytest.mark.interop}
_TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its folder's marker."""
    for item in items:
        folder = item.path.relative_to(_TESTS).parts[0] if item.path.is_relative_to(_TESTS) else ""
        marker = _FOLDER_MARKERS.get(folder)
        if marker is not None:
            item.add_marker(marker)
