"""The architecture holds: import contracts, the store's walls, the lifecycle's one home."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = [p for d in ("worker", "tasks", "config") for p in sorted((ROOT / d).rglob("*.py"))
           if "sandbox" not in p.parts and "devstack" not in p.parts]
#: The CLI imports each subcommand's modules lazily, so ``headswap healthcheck`` (a
#: Kubernetes probe run every few seconds) stays fast; nothing else may.
LAZY_IMPORTS_ALLOWED = {"worker/cli.py", "worker/demo.py"}


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_import_contracts_hold():
    """Layers (entry points -> tasks -> flows -> jobs -> store / Akool client -> leaves),
    only the store imports redis, the producer is independent of the flows."""
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_module_outside_the_store_touches_the_redis_client():
    offenders = []
    for path in PRODUCT:
        if "store" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("redis", "_redis"):
                offenders.append(f"{rel(path)}:{node.lineno} .{node.attr}")
    assert offenders == []


def test_only_the_lifecycle_moves_jobs():
    """No module but worker/jobs.py calls the store's transition or create step."""
    offenders = []
    for path in PRODUCT:
        if rel(path) == "worker/jobs.py" or "store" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("transition", "create")
                    and isinstance(node.func.value, ast.Attribute)
                    and node.func.value.attr == "store"):
                offenders.append(f"{rel(path)}:{node.lineno}")
    assert offenders == []


def test_key_names_are_built_only_by_the_store():
    offenders = []
    for path in PRODUCT:
        if "store" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
                if text.startswith((":job:", ":analysis:", ":nonce:")) or "}:" in text:
                    offenders.append(f"{rel(path)}:{node.lineno}")
    assert offenders == []


def test_no_function_level_import_hides_a_cycle():
    offenders = []
    for path in PRODUCT:
        if rel(path) in LAZY_IMPORTS_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.ImportFrom) and (sub.module or "").startswith(
                            ("worker", "tasks", "config")):
                        offenders.append(f"{rel(path)}:{sub.lineno} {sub.module}")
    assert offenders == []


def loaded_after(statement: str) -> list[str]:
    """The modules of interest a fresh interpreter holds after ``statement``."""
    code = (f"import sys; {statement}; "
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('worker', 'tasks', 'config', 'headswap_client', 'redis', 'requests', 'celery', "
            "'kombu', 'marshmallow', 'opentelemetry'))))")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True).stdout.split()


def test_a_producer_checking_callback_signatures_loads_only_the_signing_module():
    """``from headswap_client import verify_callback_signature`` in a producer's receiver
    (or the older ``from worker.callbacks import ...``) loads no delivery, store, Redis,
    broker or HTTP client code."""
    assert loaded_after("from headswap_client import verify_callback_signature") == [
        "headswap_client", "headswap_client.signing"]
    assert loaded_after("from worker.callbacks import verify_callback_signature") == [
        "headswap_client", "headswap_client.signing", "worker", "worker.callbacks"]


def test_the_client_loads_nothing_of_the_worker_nor_celery():
    """The light client's import graph, as Python sees it (the import contract in
    pyproject.toml states the same rule for import-linter)."""
    loaded = loaded_after("from headswap_client import Producer; Producer(redis_url="
                          "'redis://127.0.0.1:1/0').close()")
    assert "headswap_client.producer" in loaded
    assert not [m for m in loaded if m.split(".")[0] in ("worker", "tasks", "config",
                                                          "celery", "requests")]
    assert "opentelemetry" not in loaded, "tracing is the host's choice, not imported here"
