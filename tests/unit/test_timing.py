import random

from worker.timing import first_poll_delay, next_poll_interval, retry_delay


def test_retry_delay_grows_exponentially_within_jitter_and_cap():
    rng = random.Random(1)
    delays = [retry_delay(a, base=1, cap=8, rng=rng) for a in range(1, 7)]
    for attempt, delay in zip(range(1, 7), delays, strict=True):
        exp = min(8, 2 ** (attempt - 1))
        assert exp / 2 <= delay <= exp


def test_retry_after_is_honoured():
    assert retry_delay(1, base=1, cap=8, retry_after=30, rng=random.Random(0)) == 30


def test_first_poll_follows_the_video_length_within_bounds():
    assert first_poll_delay(10, per_video_second=3, minimum=2, maximum=60) == 30
    assert first_poll_delay(100, per_video_second=3, minimum=2, maximum=60) == 60
    assert first_poll_delay(None, per_video_second=0.01, minimum=2, maximum=60) == 2


def test_poll_interval_backs_off_with_age_and_drops_to_safety_net_with_webhook():
    kw = {"minimum": 2, "maximum": 60, "safety_net": 300}
    assert next_poll_interval(4, webhook_expected=False, **kw) == 2
    assert next_poll_interval(100, webhook_expected=False, **kw) == 25
    assert next_poll_interval(10_000, webhook_expected=False, **kw) == 60
    assert next_poll_interval(4, webhook_expected=True, **kw) == 300


def test_a_transient_pause_honours_retry_after_and_never_repeats_in_step():
    from worker.timing import transient_pause

    rng = random.Random(3)
    pauses = [transient_pause(0.5, 2.0, rng) for _ in range(50)]
    assert all(2.0 <= p <= 4.0 for p in pauses)
    assert len({round(p, 3) for p in pauses}) > 40  # jittered: no fixed period to lock onto
    assert 0.5 <= transient_pause(0.5, None, rng) <= 1.0
