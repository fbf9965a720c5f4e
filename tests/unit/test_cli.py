"""The ``headswap`` command line: worker and beat pass Celery's options through."""

import os
import subprocess
import sys

import pytest

from config.celery import QUEUES
from worker.cli import (
    DEFAULT_CONCURRENCY,
    beat_command,
    http_pool_env,
    parse_args,
    worker_command,
)


def celery_argv(argv):
    args = parse_args(argv)
    if args.command == "worker":
        return worker_command(args.concurrency, args.queues, args.celery_args)
    return beat_command(args.schedule, args.celery_args)


def test_every_unknown_worker_option_reaches_celery_verbatim_and_in_order():
    argv = celery_argv(["worker", "--include", "your.module", "-l", "INFO", "-n", "w1@%h",
                        "--autoscale", "4,1", "--hostname=x@y", "-Ofair"])
    assert argv[:5] == [sys.executable, "-m", "celery", "-A", "worker.app"]
    assert argv[-10:] == ["--include", "your.module", "-l", "INFO", "-n", "w1@%h",
                          "--autoscale", "4,1", "--hostname=x@y", "-Ofair"]


def test_our_own_worker_options_still_apply_wherever_they_stand():
    argv = celery_argv(["worker", "--include", "m", "-c", "3", "-Q", "headswap.poll"])
    assert argv[argv.index("-c") + 1] == "3" and argv[argv.index("-Q") + 1] == "headswap.poll"
    assert argv[-2:] == ["--include", "m"]


def test_the_default_pool_is_threads_at_the_measured_concurrency():
    argv = celery_argv(["worker"])
    assert argv[argv.index("-P") + 1] == "threads"
    assert argv[argv.index("-c") + 1] == str(DEFAULT_CONCURRENCY) == "64"


def test_the_akool_http_pool_follows_the_concurrency_unless_it_is_set():
    assert http_pool_env(64, {}) == {"HEADSWAP_HTTP_POOL_SIZE": "64"}
    assert http_pool_env(8, {"OTHER": "1"}) == {"HEADSWAP_HTTP_POOL_SIZE": "8"}
    assert http_pool_env(64, {"HEADSWAP_HTTP_POOL_SIZE": "100"}) == {}


def test_the_default_queues_are_the_celery_config_queues():
    argv = celery_argv(["worker"])
    assert argv[argv.index("-Q") + 1] == ",".join(QUEUES)


def test_a_leading_double_dash_is_not_passed_on_as_a_literal():
    argv = celery_argv(["worker", "--", "--include", "m", "-l", "INFO"])
    assert "--" not in argv and argv[-4:] == ["--include", "m", "-l", "INFO"]


def test_beat_passes_its_celery_options_through():
    argv = celery_argv(["beat", "-s", "/tmp/sched", "--pidfile", "/tmp/b.pid", "-l", "INFO"])
    assert argv[argv.index("-s") + 1] == "/tmp/sched"
    assert argv[-4:] == ["--pidfile", "/tmp/b.pid", "-l", "INFO"]


def test_other_commands_still_refuse_unknown_options():
    proc = subprocess.run([sys.executable, "-m", "worker.cli", "status", "j1", "--bogus"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr


BAD_SETTINGS = {"HEADSWAP_READ_TIMEOUT": "soon", "HEADSWAP_POLL_MIN_INTERVAL_SECONDS": "90",
                "HEADSWAP_LOG_LEVEL": "LOUD"}


@pytest.mark.parametrize("argv", [["worker"], ["beat"], ["webhook"], ["demo"],
                                  ["status", "j1"], ["requeue", "j1"]])
def test_bad_settings_stop_every_command_with_one_message_and_no_traceback(argv):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADSWAP_")}
    proc = subprocess.run([sys.executable, "-m", "worker.cli", *argv], capture_output=True,
                          text=True, check=False, timeout=60, env={**env, **BAD_SETTINGS})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"headswap {argv[0]}: invalid settings (3 problems")
    for name in BAD_SETTINGS:
        assert f"  {name}: " in proc.stderr


def test_a_redis_that_does_not_answer_is_one_line_not_a_traceback():
    from worker.devstack.procs import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADSWAP_")}
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"  # nothing listens there
    proc = subprocess.run([sys.executable, "-m", "worker.cli", "status", "j1"],
                          capture_output=True, text=True, check=False, timeout=60,
                          env={**env, "HEADSWAP_REDIS_URL": url})
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "hunter2" not in proc.stderr
    assert proc.stderr.startswith("headswap status: Redis failed (ConnectionError")
