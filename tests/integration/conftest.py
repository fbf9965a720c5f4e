"""Integration fixtures: the sandbox as a real process, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.sandbox import FAST_KNOBS, SandboxProcess


@pytest.fixture(scope="session")
def sandbox_process() -> Iterator[SandboxProcess]:
    sb = SandboxProcess.start(knobs=FAST_KNOBS, seed=7)
    yield sb
    sb.stop()


@pytest.fixture
def sandbox(sandbox_process: SandboxProcess) -> SandboxProcess:
    sandbox_process.reset(reset_config=True)
    return sandbox_process
