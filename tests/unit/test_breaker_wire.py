"""The per-process slow-create gate (worker.breaker.OnTheWire / slow_hold): pure, no I/O."""

from __future__ import annotations

import threading
import time

from config.settings import load_settings
from worker.breaker import OnTheWire, slow_hold


def settings(**env: str):
    return load_settings({"HEADSWAP_READ_TIMEOUT": "0.4", **env})


def test_no_create_on_the_wire_holds_nothing():
    assert OnTheWire().longest_wait() == 0.0
    assert slow_hold(settings(), OnTheWire()) is None


def test_a_create_waiting_half_the_read_timeout_holds_the_next_one():
    wire, entered, release = OnTheWire(), threading.Event(), threading.Event()

    def send() -> None:
        with wire.sending():
            entered.set()
            release.wait(5)

    sender = threading.Thread(target=send)
    sender.start()
    entered.wait(5)
    assert slow_hold(settings(), wire) is None  # just sent: nothing known yet
    time.sleep(0.25)  # past half the 0.4 s read timeout
    held = slow_hold(settings(), wire)
    release.set()
    sender.join()
    assert held is not None and held > 0
    assert slow_hold(settings(), wire) is None  # answered: creates go again
    assert wire.longest_wait() == 0.0


def test_the_slow_threshold_is_a_setting_and_off_with_the_breaker():
    wire = OnTheWire()
    with wire.sending():
        time.sleep(0.06)
        assert slow_hold(settings(HEADSWAP_AKOOL_SLOW_CREATE_SECONDS="0.05"), wire)
        assert slow_hold(settings(HEADSWAP_AKOOL_SLOW_CREATE_SECONDS="0.05",
                                  HEADSWAP_AKOOL_BREAKER_FAILURES="0"), wire) is None


def test_a_failed_create_leaves_the_wire():
    wire = OnTheWire()
    try:
        with wire.sending():
            raise TimeoutError
    except TimeoutError:
        pass
    assert wire.longest_wait() == 0.0


def test_a_process_that_knows_its_creates_answer_fast_sees_a_freeze_sooner():
    wire = OnTheWire()
    assert wire.slow_after(1.5) == 1.5  # nothing known yet: half the read timeout
    for _ in range(OnTheWire.MIN_SAMPLES):
        with wire.sending():
            pass  # answered at once
    assert wire.slow_after(1.5) == 0.25  # the floor: ten typical answers are less
    entered, release = threading.Event(), threading.Event()

    def send() -> None:
        with wire.sending():
            entered.set()
            release.wait(5)

    sender = threading.Thread(target=send)
    sender.start()
    entered.wait(5)
    time.sleep(0.3)
    held = slow_hold(settings(HEADSWAP_READ_TIMEOUT="3"), wire)  # ceiling 1.5 s, slow at 0.25
    release.set()
    sender.join()
    assert held is not None


def test_timeouts_do_not_teach_the_wire_that_creates_are_slow():
    wire = OnTheWire()
    for _ in range(OnTheWire.MIN_SAMPLES):
        with wire.sending():
            pass
    for _ in range(5):
        try:
            with wire.sending():
                raise TimeoutError
        except TimeoutError:
            pass
    assert wire.answered == OnTheWire.MIN_SAMPLES and wire.slow_after(1.5) == 0.25
