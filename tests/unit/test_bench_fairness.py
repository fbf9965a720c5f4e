"""The fairness benchmark's figures (``bench/fairness.py``), on made-up records: Jain's
index, the all-backlogged span, the equal-share expectation, censored medians."""

from __future__ import annotations

import pytest

from bench import fairness
from bench.fairness import (
    admission_time,
    arrival_time,
    backlogged_span,
    censored_median,
    expected_waits,
    figures,
    jain,
)


def test_jain_index() -> None:
    assert jain([5, 5, 5]) == 1.0
    assert jain([9, 0, 0]) == pytest.approx(1 / 3)
    assert jain([2, 1, 1]) == pytest.approx(16 / 18)
    assert jain([0, 0, 0]) is None


def test_admission_and_arrival_fall_back_to_the_fifo_stamps() -> None:
    fair = {"created_at": 1.0, "queued_at": 1.5, "admitted_at": 4.0, "submitting_at": 4.2}
    assert (arrival_time(fair), admission_time(fair)) == (1.5, 4.0)
    fifo = {"created_at": 1.0, "queued_at": 1.5, "submitting_at": 6.0}
    assert (arrival_time(fifo), admission_time(fifo)) == (1.0, 6.0)
    assert admission_time({"created_at": 1.0}) is None


def test_the_backlogged_span_ends_when_one_producer_has_nothing_waiting() -> None:
    arrivals = {"a": [0.0] * 100, "b": [10.0, 10.0], "c": [11.0]}
    admissions = {"a": [1.0, 2.0, 3.0, 12.0, 13.0], "b": [12.5, 14.0], "c": [15.0]}
    assert backlogged_span(arrivals, admissions, end=30.0) == (11.0, 14.0)
    # c arrives after b is done: never all three waiting
    assert backlogged_span({"a": [0.0] * 9, "b": [1.0], "c": [5.0]},
                           {"a": [], "b": [2.0], "c": []}, end=9.0) is None
    # nobody runs dry before the end
    assert backlogged_span({"a": [0.0] * 9, "b": [1.0] * 3, "c": [2.0] * 3},
                           {"a": [3.0], "b": [4.0], "c": [5.0]}, end=9.0) == (2.0, 9.0)


def test_expected_waits_follow_the_fluid_share() -> None:
    # three jobs at once, served at 2/s: 0.5, 1.0, 1.5 s
    assert expected_waits([0.0, 0.0, 0.0], 2.0) == [0.5, 1.0, 1.5]
    # a job that arrives after the others went waits one slot
    assert expected_waits([0.0, 10.0], 2.0) == [0.5, 0.5]


def test_censored_median() -> None:
    assert censored_median([1.0, 2.0, 3.0], []) == (2.0, False)
    assert censored_median([1.0, 2.0], [9.0]) == (2.0, False)  # the unadmitted one is above
    assert censored_median([1.0], [5.0, 6.0]) == (5.0, True)  # at least 5 s


def _round_robin(weights: dict[str, int], slots: int, rate: float,
                 b_c_jobs: int) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """A backlogged from 0, b and c (b_c_jobs each) from 1 s; admissions at ``rate`` per
    second dealt out in weighted round robin while b and c have jobs waiting."""
    records: dict[str, dict[str, float]] = {}
    owner: dict[str, str] = {}
    waiting = {"a": [f"a{i}" for i in range(2000)],
               "b": [f"b{i}" for i in range(b_c_jobs)], "c": [f"c{i}" for i in range(b_c_jobs)]}
    for name, ids in waiting.items():
        for job_id in ids:
            owner[job_id] = name
            records[job_id] = {"created_at": 0.0 if name == "a" else 1.0,
                               "queued_at": 0.0 if name == "a" else 1.0}
    order = [name for name, w in weights.items() for _ in range(w)]
    t = 1.0
    for k in range(slots):
        name = order[k % len(order)]
        if not waiting[name]:
            name = "a"
        t += 1 / rate
        records[waiting[name].pop(0)]["admitted_at"] = t
    return records, owner


def test_figures_of_a_fair_round_robin() -> None:
    records, owner = _round_robin({"a": 1, "b": 1, "c": 1}, slots=200, rate=9.0, b_c_jobs=50)
    out = figures(records, owner, {"a": 1, "b": 1, "c": 1}, window_s=5.0, end=60.0)
    assert out["backlogged"]["rate_per_s"] == pytest.approx(9.0, rel=0.02)
    assert out["jain"]["min"] >= 0.99 and out["jain"]["windows"] == 3
    for name in ("b", "c"):
        fig = out["producers"][name]
        assert fig["admitted"] == 50 and not fig["median_is_lower_bound"]
        assert fig["vs_equal_share"] == pytest.approx(1.0, abs=0.05)
        assert abs(fig["share_error_pct"]) < 3
    assert out["a_waiting_when_others_done"] == 2000 - 50  # a had its third meanwhile


def test_figures_of_a_weighted_round_robin() -> None:
    weights = {"a": 2, "b": 1, "c": 1}
    records, owner = _round_robin(weights, slots=300, rate=9.0, b_c_jobs=50)
    out = figures(records, owner, weights, window_s=5.0, end=60.0)
    assert out["jain"]["min"] >= 0.99  # fair once normalised by weight
    assert out["producers"]["a"]["share"] == pytest.approx(0.5, abs=0.01)
    assert out["producers"]["b"]["vs_weighted_share"] == pytest.approx(1.0, abs=0.05)
    assert out["producers"]["b"]["vs_equal_share"] == pytest.approx(4 / 3, abs=0.06)


def test_figures_when_b_and_c_wait_behind_the_backlog() -> None:
    records, owner = _round_robin({"a": 1}, slots=300, rate=9.0, b_c_jobs=50)
    out = figures(records, owner, {"a": 1, "b": 1, "c": 1}, window_s=5.0, end=40.0)
    assert out["jain"]["mean"] == pytest.approx(1 / 3, abs=0.01)
    b = out["producers"]["b"]
    assert b["admitted"] == 0 and b["median_is_lower_bound"] and b["median_wait_s"] == 39.0
    assert b["vs_equal_share"] > 3  # and only a lower bound


def test_the_quick_plan_is_small() -> None:
    plan = fairness.QUICK
    assert plan.backlog * plan.processing_s / plan.max_in_flight < 30
    assert plan.rows == ("fair_equal",) and not plan.overhead_jobs
    assert set(fairness.FULL.rows) == set(fairness.ROWS)


def test_the_section_and_the_targets_render_from_the_figures() -> None:
    from bench import markdown, report

    rows = {}
    for key, weights, order in (("fair_equal", {"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 1, "c": 1}),
                                ("fair_weighted", {"a": 2, "b": 1, "c": 1},
                                 {"a": 2, "b": 1, "c": 1}),
                                ("fifo", {"a": 1, "b": 1, "c": 1}, {"a": 1})):
        records, owner = _round_robin(order, slots=300, rate=9.0, b_c_jobs=50)
        rows[key] = {**figures(records, owner, weights, window_s=5.0, end=40.0),
                     "name": fairness.ROWS[key].name, "worker_cpu_ms_per_admitted": 6.5,
                     "duplicate_creates": 0}
    fair = {"plan": fairness.FULL.__dict__, "rows": rows, "overhead": {
        "jobs": 400, "worker_ratio": 1.04, "service_ratio": 1.06,
        "fifo": {"succeeded": 400, "jobs_per_s": 120.0, "worker_cpu_ms_per_job": 6.0,
                 "service_cpu_ms_per_job": 7.0, "other_cpu_ms_per_job": 0.5},
        "fair": {"succeeded": 400, "jobs_per_s": 115.0, "worker_cpu_ms_per_job": 6.24,
                 "service_cpu_ms_per_job": 7.42, "other_cpu_ms_per_job": 0.4}}}
    targets = report.fairness_targets(fair)
    assert [t["met"] for t in targets] == [True, True, True, True]
    assert "FIFO: b ≥ " in targets[0]["value"]
    text = markdown.fairness({"fairness": fair})
    assert "## 6. Fair admission across producers" in text
    assert text.count("\n| ") >= 3 + 2  # three rows, two cost rows
    assert "1.040" in text and "FIFO's worker CPU per job" in text
