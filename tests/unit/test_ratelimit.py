"""The per-session policer: a token bucket with the time passed in, and bit rates as written."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysstp.server.ratelimit import (
    BURST_WINDOW,
    MIN_BURST_PACKETS,
    TokenBucket,
    parse_bit_rate,
    session_bucket,
)

MTU = 1500


def allow(bucket: TokenBucket, size: int, now: float) -> bool:
    """Whether one packet of ``size`` bytes passes at ``now``."""
    passed, _ = bucket.police([bytes(size)], now)
    return bool(passed)


@pytest.mark.parametrize(
    ("text", "bits"),
    [("0", 0), ("100000", 100_000), ("512k", 512_000), ("10M", 10_000_000), ("1.5G", 1_500_000_000),
     ("20m", 20_000_000), (" 8 Mbit/s ", 8_000_000), ("64kbps", 64_000)],
)  # fmt: skip
def test_bit_rates_take_si_prefixes(text: str, bits: int) -> None:
    assert parse_bit_rate(text) == bits


@pytest.mark.parametrize("text", ["", "fast", "-1M", "10 MB", "1e6", "10Mi"])
def test_a_bad_bit_rate_says_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="not a bit rate like 10M, 512k or 0"):
        parse_bit_rate(text)


def test_the_burst_is_a_window_of_the_rate_but_at_least_two_packets() -> None:
    assert TokenBucket(80_000_000, MTU, 0.0).burst == 10_000_000 * BURST_WINDOW  # 80 Mbit/s = 10 MB/s
    assert TokenBucket(8_000, MTU, 0.0).burst == MIN_BURST_PACKETS * MTU


def test_a_full_bucket_passes_its_burst_then_the_rate() -> None:
    bucket = TokenBucket(8_000_000, MTU, 0.0)  # 1 MB/s
    burst_packets = round(1_000_000 * BURST_WINDOW / 1000)
    passed = sum(allow(bucket, 1000, 0.0) for _ in range(2 * burst_packets))
    assert passed == burst_packets
    assert not allow(bucket, 1000, 0.0005)  # half a packet's worth of tokens
    assert allow(bucket, 1000, 0.001)


def test_police_keeps_the_order_and_counts_the_drops() -> None:
    bucket = TokenBucket(8_000, 100, 0.0)  # burst of two 100-byte packets
    packets = [bytes([n]) * 100 for n in range(4)]
    assert bucket.police(packets, 0.0) == (packets[:2], 2)


def test_no_rate_is_no_bucket() -> None:
    with pytest.raises(ValueError, match="more than 0"):
        TokenBucket(0, MTU, 0.0)


@given(
    rate=st.integers(8_000, 10_000_000_000),
    mtu=st.integers(576, 9000),
    arrivals=st.lists(
        st.tuples(st.floats(0.0, 0.5, allow_nan=False), st.integers(1, 9000)), min_size=1, max_size=300
    ),
)
def test_never_more_than_rate_times_time_plus_burst_passes(
    rate: int, mtu: int, arrivals: list[tuple[float, int]]
) -> None:
    start = 1000.0
    bucket = TokenBucket(rate, mtu, start)
    now, passed = start, 0
    for gap, size in arrivals:
        now += gap
        if allow(bucket, size, now):
            passed += size
        assert passed <= rate / 8 * (now - start) + bucket.burst + 1e-6 * (now - start + 1) * rate


@given(rate=st.integers(8_000, 20_000_000), seconds=st.floats(0.1, 2.0))
def test_a_sender_that_always_has_more_gets_the_rate_and_the_burst(rate: int, seconds: float) -> None:
    """A policer, not a brake: offered more than it passes, a session gets all of rate * t + burst but
    the tokens short of one packet."""
    bucket = TokenBucket(rate, MTU, 0.0)
    passed, steps = 0, 200
    for step in range(steps + 1):
        while allow(bucket, MTU, seconds * step / steps):
            passed += MTU
    assert passed > rate / 8 * seconds + bucket.burst - MTU - 1e-6 * rate


def test_a_users_own_limit_wins_over_the_servers_and_zero_is_no_bucket() -> None:
    assert session_bucket(None, 0, MTU, 0.0) is None
    assert session_bucket(0, 20_000_000, MTU, 0.0) is None  # the user is exempt
    server = session_bucket(None, 20_000_000, MTU, 0.0)
    own = session_bucket(5_000_000, 20_000_000, MTU, 0.0)
    assert server is not None and server.rate == 20_000_000
    assert own is not None and own.rate == 5_000_000
    assert session_bucket(1_000_000, 0, MTU, 0.0) is not None
