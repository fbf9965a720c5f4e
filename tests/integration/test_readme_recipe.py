"""The README's "Running the stack by hand" recipe, run as written (issue 13's Done-when:
a new user can run the stack from the README alone).

The four commands are read from README.md itself, only their ports swapped for free ones
(and ``redis-server`` for the one the dev stack finds, on a machine without it on PATH);
a job submitted as the README says then succeeds, and the worker logs INFO JSON lines.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil

import pytest

from tests.support.procs import ROOT, VENV_BIN, spawn, stop, wait_until
from worker.devstack.procs import free_port
from worker.devstack.redis_server import find_redis_server

pytestmark = pytest.mark.integration


def recipe() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Running the stack by hand", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the README's recipe has no sh block"
    return [line.strip() for line in block.group(1).replace("\\\n", " ").splitlines()
            if line.strip()]


def test_the_readme_recipe_has_four_commands_a_user_can_type():
    commands = recipe()
    assert len(commands) == 4
    assert commands[0].startswith("redis-server ")
    assert any("headswap sandbox" in c for c in commands)
    assert any("headswap worker" in c for c in commands)
    assert any("headswap beat" in c for c in commands)


def test_the_stack_run_by_hand_from_the_readme_runs_a_job(tmp_path):
    redis_port, sandbox_port = free_port(), free_port()
    commands = [c.replace("6379", str(redis_port)).replace("8765", str(sandbox_port))
                for c in recipe()]
    if not shutil.which("redis-server"):
        commands[0] = commands[0].replace("redis-server", shlex.quote(find_redis_server()), 1)
    # A fresh terminal: no HEADSWAP_* of the test run, the venv's bin first on PATH
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADSWAP_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["HEADSWAP_SPOOL_DIR"] = str(tmp_path / "spool")  # not the machine's shared default
    env["HEADSWAP_HEARTBEAT_FILE"] = str(tmp_path / "heartbeat")
    commands[-1] += f" -s {tmp_path / 'beat-schedule'}"
    logs = [tmp_path / f"{i}.log" for i in range(len(commands))]
    procs = []
    try:
        for command, log in zip(commands, logs, strict=True):
            procs.append(spawn(["bash", "-c", command], env=env, log=log,
                               cwd=tmp_path))
        from config.settings import load_settings
        from worker.producer import Producer

        url = f"redis://127.0.0.1:{redis_port}/0"
        wait_until(lambda: _answers(url), 20, what="the README's redis-server")
        producer = Producer(load_settings({"HEADSWAP_REDIS_URL": url}))
        try:
            job_id = producer.submit(
                video_url="https://cdn.example.com/readme.mp4?duration=4",
                mappings=[{"obj_id": 0, "img_url": "https://cdn.example.com/face.jpg"}],
                resolution="720p")
            record = producer.wait(job_id, timeout=120)
        finally:
            producer.close()
    finally:
        for proc in reversed(procs):
            stop(proc)
    assert record["state"] == "succeeded", record
    worker_lines = [json.loads(line) for line in logs[2].read_text().splitlines()
                    if line.startswith("{")]
    assert any(line.get("level") == "INFO" and line.get("job_id") == job_id
               for line in worker_lines), logs[2].read_text()[-2000:]


def _answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False
