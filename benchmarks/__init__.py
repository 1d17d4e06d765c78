"""``make bench``: pysstp's data path measured against a bare reference relay, plain veth and SoftEther.

The namespace, certificate, pysstp process, SoftEther and FreeRADIUS helpers live with the tests, in
tests/helpers/ (namespaces.py, loopback.py, server_process.py, connect_process.py, softether.py,
freeradius.py); the benchmark reuses them rather than keeping copies, so the tests directory goes on the
import path here, as it does under pytest (``from helpers.namespaces import ...``).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The checkout: benchmark subprocesses run from here."""

_TESTS = str(ROOT / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
