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


def test_request_larger_than_burst_needs_a_full_bucket() -> None:
    bucket = TokenBucket(rate_per_s=1, burst=3, now=0.0)
    assert bucket.try_take(8, 0.0)
    assert not bucket.try_take(8, 2.0)
    assert bucket.try_take(8, 3.0)
