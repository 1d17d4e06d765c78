"""Call numbers (NAS-Port): with several workers each carries its worker's index in its high bits, so no
two workers number calls alike (docs/scaling.md, "Workers")."""

from __future__ import annotations

from pysstp.server.config import MAX_WORKERS
from pysstp.server.session import CALL_BITS, CallNumbers


def test_a_single_server_counts_from_one() -> None:
    numbers = CallNumbers()
    assert [numbers.next() for _ in range(3)] == [1, 2, 3]


def test_the_workers_numbers_differ_and_fit_nas_port() -> None:
    workers = [CallNumbers(worker=index) for index in range(MAX_WORKERS)]
    seen = [numbers.next() for numbers in workers for _ in range(3)]
    assert len(set(seen)) == len(seen)
    assert all(0 < number < 2**32 for number in seen)  # NAS-Port is a 32-bit integer (RFC 2865 §5.5)
    assert [number >> CALL_BITS for number in seen[:6]] == [0, 0, 0, 1, 1, 1]


def test_a_workers_count_wraps_inside_its_own_range() -> None:
    numbers = CallNumbers(worker=5)
    numbers.count = iter([2**CALL_BITS - 1, 2**CALL_BITS + 1])  # type: ignore[assignment]
    assert [number >> CALL_BITS for number in (numbers.next(), numbers.next())] == [5, 5]
