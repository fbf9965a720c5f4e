"""The light client, installed as a producer would install it: ``pip install ./client``
into a fresh virtualenv (no system site-packages), used from a Django-style project that
has top-level packages of its own named ``config`` (with ``config/celery.py``), ``worker``
and ``tasks``, against a real stack (redis-server, the sandbox, ``headswap worker`` and
``headswap beat`` from the project's venv).

The client venv is built once and kept under pytest's cache directory; it is reinstalled
only when something under ``client/`` changes, so later runs take seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import textwrap
import venv
from pathlib import Path

import pytest

from tests.support.procs import ROOT
from tests.support.stack import running_stack

CLIENT = ROOT / "client"
#: What a producer must not get with the client: the worker's own dependencies.
NOT_PULLED = ("worker", "tasks", "celery", "werkzeug", "rich", "prometheus_client",
              "environs", "gunicorn", "requests")

pytestmark = pytest.mark.integration


def client_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(CLIENT.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and ".egg-info" not in str(path):
            digest.update(str(path.relative_to(CLIENT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def client_python(request: pytest.FixtureRequest) -> Path:
    """The interpreter of a venv holding headswap-client and nothing of the worker."""
    home = Path(request.config.cache.mkdir("headswap-client-venv"))
    python = home / "bin" / "python"
    stamp = home / "installed-from"
    if stamp.exists() and stamp.read_text() == client_digest() and python.exists():
        return python
    if not python.exists():
        venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         str(CLIENT)],
        capture_output=True, text=True, timeout=600, env=env, cwd=home)
    if result.returncode != 0:
        pytest.fail(f"pip install ./client failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    stamp.write_text(client_digest())
    return python


def django_style_project(root: Path) -> Path:
    """A backend whose own top-level ``config``, ``worker`` and ``tasks`` packages would
    have shadowed (or been shadowed by) the worker distribution's."""
    project = root / "backend"
    for package in ("config", "worker", "tasks"):
        (project / package).mkdir(parents=True)
        (project / package / "__init__.py").write_text(f"OWNER = 'backend {package}'\n")
    (project / "config" / "celery.py").write_text("app = 'the backend own celery app'\n")
    (project / "submit_one.py").write_text(textwrap.dedent('''
        import importlib.metadata, importlib.util, json, sys

        from config.celery import app                    # the project's own config package
        import headswap_client
        from headswap_client import JobValidationError, Producer

        job = {"video_url": "https://cdn.example.com/in/light.mp4?duration=4",
               "mappings": [{"obj_id": 0, "img_url": "https://cdn.example.com/face.jpg"}],
               "resolution": "720p", "idempotency_key": sys.argv[1]}
        out = {"config_app": app, "client_file": headswap_client.__file__}
        with Producer() as producer:
            producer.ensure_group("backend", start="0")
            job_id = producer.submit(**job)
            out["same_key_same_id"] = producer.submit(**job) == job_id
            try:
                producer.submit(**{**job, "resolution": "1080p", "idempotency_key": None})
            except JobValidationError as exc:
                out["field_errors"] = exc.errors
            record = producer.wait(job_id, timeout=60)
            out["record"] = {k: record.get(k) for k in ("job_id", "state", "output_url")}
            out["event_states"] = [e["state"] for _, e in
                                   producer.read_events("backend", "c1", count=1000, block_ms=1)
                                   if e.get("job_id") == job_id]
            out["dead_letters"] = producer.dead_letters()
        out["job_id"] = job_id
        out["loaded"] = sorted({m.split(".")[0] for m in sys.modules})
        out["installed"] = {name: importlib.util.find_spec(name) is not None
                            for name in json.loads(sys.argv[2])}
        out["distributions"] = sorted(d.metadata["Name"]
                                      for d in importlib.metadata.distributions())
        print(json.dumps(out))
    '''))
    return project


def test_a_backend_with_its_own_config_package_runs_a_job_with_the_light_client(
        redis_server, sandbox, client_python, tmp_path):
    project = django_style_project(tmp_path)
    with running_stack(redis_server.url, sandbox, workers=1, beats=1) as stack:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("HEADSWAP_", "PYTHON", "VIRTUAL_ENV"))}
        env["HEADSWAP_REDIS_URL"] = stack.redis_url
        run = subprocess.run(
            [str(client_python), "submit_one.py", "order-light-1", json.dumps(NOT_PULLED)],
            cwd=project, env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-4000:]
        out = json.loads(run.stdout.strip().splitlines()[-1])

    assert out["config_app"] == "the backend own celery app"
    assert Path(out["client_file"]).is_relative_to(client_python.parent.parent)  # installed
    assert out["record"]["state"] == "succeeded", out["record"]
    assert out["record"]["output_url"].startswith(sandbox.url + "/_sandbox/output/")
    assert out["same_key_same_id"] is True
    assert list(out["field_errors"]) == ["resolution"]
    assert out["event_states"][0] == "queued" and out["event_states"][-1] == "succeeded"
    assert out["dead_letters"] == []
    assert sandbox.stats()["create_requests"] == 1  # one job, one create, key reused
    assert not [m for m in out["loaded"] if m in ("celery", "werkzeug", "rich",
                                                  "prometheus_client", "requests")]
    assert "headswap-client" in out["distributions"]
    assert "headswap-worker" not in out["distributions"]
    assert out["installed"] == {
        name: name in ("worker", "tasks") for name in NOT_PULLED}  # only the backend's own
