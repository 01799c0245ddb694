import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgw.smpp_server.throttle import TokenBucket


def test_burst_then_rate() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=5, now=0.0)
    assert [bucket.try_take(1, 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert not bucket.try_take(1, 0.05)  # half a token
    assert bucket.try_take(1, 0.1)
    assert not bucket.try_take(1, 0.1)


def test_refused_request_takes_nothing() -> None:
    bucket = TokenBucket(rate_per_s=1, burst=3, now=0.0)
    assert bucket.try_take(2, 0.0)
    assert not bucket.try_take(2, 0.0)
    assert bucket.try_take(1, 0.0)


def test_refill_is_capped_at_burst() -> None:
    bucket = TokenBucket(rate_per_s=100, burst=2, now=0.0)
    assert bucket.try_take(2, 1000.0)
    assert not bucket.try_take(1, 1000.0)


def test_request_larger_than_burst_needs_a_full_bucket_and_costs_its_whole_amount() -> None:
    bucket = TokenBucket(rate_per_s=1, burst=3, now=0.0)
    assert bucket.try_take(8, 0.0)  # 5 tokens in debt
    assert bucket.wait_s(8, 0.0) == 8.0
    assert not bucket.try_take(1, 5.5)  # 0.5 tokens
    assert not bucket.try_take(8, 7.5)
    assert bucket.try_take(8, 8.0)  # 8 segments every 8 s: the rate, however large the requests


@settings(max_examples=200, deadline=None)
@given(st.floats(0.5, 50), st.floats(0.5, 20), st.lists(st.tuples(st.floats(0, 3), st.integers(1, 200)), max_size=40))
def test_what_is_taken_never_exceeds_the_burst_plus_the_refill_plus_one_request(
    rate: float, burst: float, requests: list[tuple[float, int]]
) -> None:
    bucket = TokenBucket(rate, burst, 0.0)
    now = taken = 0.0
    for elapsed, amount in requests:
        now += elapsed
        if bucket.try_take(amount, now):
            taken += amount
            # Only the last request may overdraw: the bucket must be full again before another goes.
            assert taken <= burst + rate * now + amount + 1e-6


def test_resize_refills_at_the_old_rate_until_then_and_drops_tokens_beyond_the_new_burst() -> None:
    bucket = TokenBucket(rate_per_s=10, burst=10, now=0.0)
    assert bucket.try_take(10, 0.0)
    bucket.resize(2, 4, 0.5)  # 5 tokens came at 10/s; 4 are kept
    assert bucket.try_take(4, 0.5) and not bucket.try_take(1, 0.5)
    assert not bucket.try_take(2, 1.49) and bucket.try_take(2, 1.5)  # 2/s from now on
    with pytest.raises(ValueError):
        bucket.resize(0, 4, 2.0)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.1, 100),
    st.floats(0.5, 50),
    st.lists(st.tuples(st.floats(0, 2), st.lists(st.integers(0, 12), max_size=20)), max_size=6),
)
def test_take_each_is_try_take_in_turn(rate: float, burst: float, steps: list[tuple[float, list[int]]]) -> None:
    # Whole segment counts below the burst: every subtraction is exact, so one step and several agree exactly.
    batched, single = TokenBucket(rate, burst, 0.0), TokenBucket(rate, burst, 0.0)
    now = 0.0
    for elapsed, amounts in steps:
        now += elapsed
        assert batched.take_each(amounts, now) == [single.try_take(amount, now) for amount in amounts]
        assert batched._tokens == single._tokens
