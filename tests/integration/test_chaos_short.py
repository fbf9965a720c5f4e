"""The short chaos suite inside ``make test``: the kill -9 row and the 5xx row, a few
hundred jobs each, poison entries among jobs, and three of issue 12's rows at small volume
(Redis down with creates in flight and the kombu reconnect, Akool frozen, Redis restarted
empty). Fails the build on any lost job or duplicate create, on a bad queue entry that
stopped a worker or was not kept, and on a row's own target (``target_misses``)."""

from __future__ import annotations

import pytest

from tests.chaos.harness import run_scenario, scenarios


@pytest.mark.parametrize("scenario", scenarios(short=True), ids=lambda s: s.name)
def test_no_job_is_lost_or_created_twice_under_faults(scenario):
    result = run_scenario(scenario, seed=2)
    print(f"\n{result['scenario']}: {result['jobs']} jobs, {result['succeeded']} succeeded, "
          f"failed {result['failed_by_reason']}, lost {result['lost']}, "
          f"duplicate creates {result['duplicate_creates']}, paid but failed "
          f"{result['paid_but_failed']}, in flight at fault "
          f"{result.get('creates_in_flight_at_fault')}, exits {result['worker_exits']}, "
          f"figures {result['figures']}, p50 {result['p50_s']}s, p99 {result['p99_s']}s; "
          f"faults: {result['faults']}")
    assert result["lost"] == 0
    assert result["duplicate_creates"] == 0
    assert result["terminal"] == result["jobs"]
    assert result["succeeded"] + result["failed"] + result["figures"].get(
        "orphaned_at_akool", 0) == result["jobs"]
    # Every ambiguous failure is one the worker could not have resolved safely.
    for item in result["ambiguous_explained"]:
        assert item["akool_tasks_created"] <= 1
    assert result.get("target_misses", []) == []
    if scenario.fault is not None:  # the fault met the jobs
        assert result["faults"]
    if scenario.poison:  # every bad entry kept with its reason and queue, no worker lost
        assert result["dead_messages"] == result["poison"] == scenario.poison
        assert result["dead_as_expected"]
        assert result["worker_exits"] == 0 and result["supervisor_restarts"] == 0
        assert result["succeeded"] == result["jobs"]
    if "kill" in scenario.name:  # issue 15: a worker killed mid-copy leaves no partial
        assert result["stored_problems"] == []  # object; every success has exactly one
        assert result["stored_ok"] == result["succeeded"]
    if "kill" in scenario.name:
        assert any("kill -9" in line for line in result["faults"])
