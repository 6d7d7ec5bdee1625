"""The failed-login limiter: a sliding window per key, exact retry times."""

from __future__ import annotations

import pytest

from corec.core.clock import NS_PER_S
from corec.plugins.user_management.limiter import FailedLoginLimiter

S = NS_PER_S


def test_a_key_locks_at_the_limit_until_its_oldest_failure_leaves_the_window() -> None:
    limiter = FailedLoginLimiter(3, 60)
    for t in (0, 10, 20):
        assert limiter.retry_after_s(["user:a"], t * S) is None
        limiter.record_failure(["user:a"], t * S)
    assert limiter.retry_after_s(["user:a"], 20 * S) == 40
    assert limiter.retry_after_s(["user:a"], 59 * S + 1) == 1  # rounded up
    assert limiter.retry_after_s(["user:a"], 60 * S) is None
    assert limiter.retry_after_s(["user:b"], 20 * S) is None


def test_the_longest_wait_of_several_keys_is_given() -> None:
    limiter = FailedLoginLimiter(2, 60)
    limiter.record_failure(["user:a", "client:x"], 0)
    limiter.record_failure(["user:a"], 30 * S)
    limiter.record_failure(["client:x"], 40 * S)
    assert limiter.retry_after_s(["user:a", "client:x"], 40 * S) == 20
    limiter.record_failure(["client:x"], 45 * S)
    assert limiter.retry_after_s(["user:a", "client:x"], 45 * S) == 55  # client's 2nd-newest


def test_forget_one_failure_or_all_and_empty_keys_are_dropped() -> None:
    limiter = FailedLoginLimiter(2, 60)
    limiter.record_failure(["k"], 1)
    limiter.record_failure(["k"], 2)
    assert limiter.retry_after_s(["k"], 2) is not None
    limiter.forget("k", 2)
    assert limiter.retry_after_s(["k"], 2) is None
    limiter.forget("k", 99)  # not there: nothing happens
    limiter.forget("k")
    assert len(limiter) == 0
    limiter.record_failure(["j"], 0)
    assert limiter.retry_after_s(["j"], 61 * S) is None
    assert len(limiter) == 0


@pytest.mark.parametrize(("failures", "window"), [(0, 60), (5, 0)])
def test_bad_settings_are_refused(failures: int, window: int) -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        FailedLoginLimiter(failures, window)
