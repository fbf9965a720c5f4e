"""Monitoring as files (deploy/k8s/components/monitoring): the alert rules pass ``promtool
check rules`` and their unit tests (``promtool test rules``, tests/monitoring/), every alert
has a runbook section, and the rules and the Grafana dashboard query only metrics that
worker/metrics.py defines.

promtool comes from Debian's ``prometheus`` package: found on PATH, or fetched once with
``apt-get download prometheus`` and unpacked (``dpkg-deb -x``, no root needed) into
``~/.cache/headswap-tests/prometheus``; the promtool tests skip, saying so, only where
neither works.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "deploy" / "k8s" / "components" / "monitoring"
RULES = MONITORING / "prometheusrule.yaml"
DASHBOARD = MONITORING / "headswap-dashboard.json"
RULE_TESTS = ROOT / "tests" / "monitoring" / "alerts.test.yaml"
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"
METRICS_SOURCE = ROOT / "worker" / "metrics.py"
STORAGE_METRICS_SOURCE = ROOT / "worker" / "storage" / "metrics.py"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "headswap-tests"

#: What the issue asks the rules to cover, by alert name.
REQUIRED_ALERTS = {
    "HeadswapCreditsExhausted", "HeadswapAkoolBreakerOpen", "HeadswapStoreLost",
    "HeadswapOldestJobInFlightTooOld", "HeadswapAmbiguousCreates", "HeadswapPaidButFailed",
    "HeadswapCallbackDeadLetters", "HeadswapPoisonMessages", "HeadswapSubmitBacklogGrowing",
    "HeadswapNoWorkerConsuming", "HeadswapBeatSilent", "HeadswapPollLagHigh",
}  # fmt: skip
#: Metrics the queries may use that are not ours (none today: kube-state-metrics and
#: redis_exporter alerts are the operator's own).
FOREIGN_METRICS: set[str] = set()


# --------------------------------------------------------------------------- promtool


def _promtool_from_debian() -> Path | None:
    """Unpack Debian's prometheus package into the cache (once; a lock keeps two test
    processes from doing it at the same time). None when apt cannot fetch it."""
    target = CACHE / "prometheus"
    binary = target / "usr" / "bin" / "promtool"
    if binary.exists():
        return binary
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "prometheus.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():
            return binary
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            if not _apt_download(Path(tmp)):
                return None
            debs = sorted(Path(tmp).glob("prometheus_*.deb"))
            unpacked = Path(tmp) / "root"
            subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True,
                           capture_output=True, timeout=300)  # fmt: skip
            if target.exists():
                shutil.rmtree(target)
            unpacked.rename(target)
    return binary if binary.exists() else None


def _apt_download(folder: Path) -> bool:
    def download() -> bool:
        proc = subprocess.run(["apt-get", "download", "prometheus"], cwd=folder,
                              capture_output=True, text=True, timeout=600, check=False)
        return proc.returncode == 0 and any(folder.glob("prometheus_*.deb"))

    if download():
        return True
    if os.geteuid() == 0:  # a fresh machine may not have fetched the package lists yet
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600,
                       check=False)  # fmt: skip
        return download()
    return False


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    binary = _promtool_from_debian()
    if binary is None:
        pytest.skip("promtool not found: not on PATH, and `apt-get download prometheus` "
                    "(Debian's package, which ships it) failed here; install it to run "
                    "the alert rule tests")
    return str(binary)


def _run(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


# --------------------------------------------------------------------------- the files


def _rule_spec() -> dict[str, Any]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    return dict(doc["spec"])


def _alerts() -> dict[str, dict[str, Any]]:
    out = {}
    for group in _rule_spec()["groups"]:
        for rule in group["rules"]:
            assert rule["alert"] not in out, f"alert {rule['alert']} defined twice"
            out[rule["alert"]] = rule
    return out


def _rule_tests() -> dict[str, Any]:
    return dict(yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8")))


def _tests_with_fixed_annotations() -> dict[str, Any]:
    """promtool compares annotations whole: each expected alert gets its rule's fixed
    (untemplated) annotations; templated ones are written out in the test file."""
    fixed = {name: {k: v for k, v in rule.get("annotations", {}).items() if "{{" not in v}
             for name, rule in _alerts().items()}  # fmt: skip
    tests = copy.deepcopy(_rule_tests())
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            for alert in check.get("exp_alerts") or []:
                given = alert.get("exp_annotations") or {}
                alert["exp_annotations"] = {**fixed[check["alertname"]], **given}
    return tests


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """rules.yaml (the PrometheusRule's spec) and the unit tests, side by side."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rule_spec()), encoding="utf-8")
    (tmp_path / "alerts.test.yaml").write_text(
        yaml.safe_dump(_tests_with_fixed_annotations()), encoding="utf-8")
    return tmp_path


def _defined_metrics() -> set[str]:
    sources = (METRICS_SOURCE, STORAGE_METRICS_SOURCE)
    return {name for source in sources
            for name in re.findall(r"\"(headswap_[a-z0-9_]+)\"", source.read_text("utf-8"))}


def _metric_base(name: str) -> str:
    return re.sub(r"_(bucket|sum|count|created)$", "", name)


def _dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text(encoding="utf-8")))


def _dashboard_exprs() -> list[str]:
    return [t["expr"] for p in _dashboard()["panels"] for t in p.get("targets", [])]


def _metrics_in(expr: str) -> set[str]:
    return {_metric_base(m) for m in re.findall(r"\b(headswap_[a-z0-9_]+)\b", expr)}


# --------------------------------------------------------------------------- promtool tests


def test_the_rules_pass_promtool_check(promtool: str, workdir: Path) -> None:
    proc = _run(promtool, "check", "rules", "rules.yaml", cwd=workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in proc.stdout


def test_every_alert_passes_its_promtool_unit_tests(promtool: str, workdir: Path) -> None:
    proc = _run(promtool, "test", "rules", "alerts.test.yaml", cwd=workdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_the_unit_tests_can_fail(promtool: str, workdir: Path) -> None:
    """A rule whose threshold is wrong fails its unit test (the tests are not vacuous)."""
    spec = _rule_spec()
    for group in spec["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == "HeadswapCreditsExhausted":
                rule["expr"] = "max(headswap_credits_circuit_open) == 2"
    (workdir / "rules.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    proc = _run(promtool, "test", "rules", "alerts.test.yaml", cwd=workdir)
    assert proc.returncode != 0 and "HeadswapCreditsExhausted" in proc.stdout + proc.stderr


def test_the_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """Each panel query, its Grafana variables filled in, as a recording rule for promtool."""
    rules = [{"record": f"headswap:dashboard_query_{i}:check",
              "expr": expr.replace("$__rate_interval", "5m").replace("$namespace", ".*")}
             for i, expr in enumerate(_dashboard_exprs())]  # fmt: skip
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = _run(promtool, "check", "rules", path.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- rules


def test_the_rules_cover_what_operators_must_hear_about() -> None:
    missing = REQUIRED_ALERTS - set(_alerts())
    assert not missing, f"alerts missing: {sorted(missing)}"


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    fired: set[str] = set()
    silent: set[str] = set()
    for case in _rule_tests()["tests"]:
        for check in case["alert_rule_test"]:
            (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = set(_alerts())
    assert alerts - fired == set(), "never shown firing"
    assert alerts - silent == set(), "never shown silent"
    assert (fired | silent) <= alerts, "tests of alerts that do not exist"


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    out = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section() -> None:
    anchors = _anchors(OPERATIONS.read_text(encoding="utf-8"))
    for name, rule in _alerts().items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        annotations = rule["annotations"]
        assert annotations.get("summary") and annotations.get("description"), name
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == "docs/OPERATIONS.md", name
        assert anchor == name.lower() and anchor in anchors, f"{name}: no runbook section"


def test_the_rules_and_the_dashboard_use_only_defined_metrics() -> None:
    defined = _defined_metrics() | FOREIGN_METRICS
    used = {m for rule in _alerts().values() for m in _metrics_in(rule["expr"])}
    assert used - defined == set(), "rules use undefined metrics"
    dashboard = {m for expr in _dashboard_exprs() for m in _metrics_in(expr)}
    assert dashboard - defined == set(), "the dashboard uses undefined metrics"


def test_every_metric_is_documented_in_operations() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    undocumented = {m for m in _defined_metrics() if f"`{m}`" not in text}
    assert undocumented == set(), "metrics missing from docs/OPERATIONS.md"


# --------------------------------------------------------------------------- dashboard


def test_the_dashboard_is_a_grafana_dashboard_with_the_panels_operators_need() -> None:
    board = _dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)) and all(t["expr"] for t in panel["targets"])
    cells = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in panels]
    assert len(cells) == len(set(cells)), "no two panels in one place"
    used = {m for expr in _dashboard_exprs() for m in _metrics_in(expr)}
    for needed in ("headswap_jobs", "headswap_job_transitions_total",
                   "headswap_job_duration_seconds", "headswap_akool_calls_total",
                   "headswap_akool_call_seconds", "headswap_credits_circuit_open",
                   "headswap_queue_length", "headswap_callback_deliveries_total",
                   "headswap_poll_lag_seconds", "headswap_completion_signal_delay_seconds"):
        assert needed in used, f"the dashboard does not show {needed}"


def test_the_component_ships_the_dashboard_file_itself() -> None:
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    files = [f for gen in kustomization["configMapGenerator"] for f in gen["files"]]
    assert files == [DASHBOARD.name]
    listed = set(kustomization["resources"]) | set(files) | {"kustomization.yaml"}
    on_disk = {p.name for p in MONITORING.iterdir() if p.is_file()}
    assert on_disk == listed, "every file of the component is used"
    options = kustomization["configMapGenerator"][0]["options"]
    assert options["labels"]["grafana_dashboard"] == "1", "Grafana's sidecar finds it"
    assert options["disableNameSuffixHash"] is True, "a stable name to refer to"
