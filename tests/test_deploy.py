"""Deployment files (deploy/): linters, schema validation and the invariants operators rely on.

Offline and fast: hadolint and yamllint from the dev extra, kubernetes-validate's bundled
schemas, PyYAML. The kustomize overlay is rendered with ``kubectl kustomize`` (or
``kustomize build``) when one is on PATH; without it the base is read file by file from
``kustomization.yaml`` and the rendered-overlay cases are skipped.

The manifests are also checked against the code: every ``HEADSWAP_*`` name must be a real
setting, the ConfigMap + Secret must load through ``config.settings.load_settings``, and
every command line (container args, probes, compose commands) must parse with
``headswap``'s own argument parser.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import typing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes_validate import utils as kv
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from config.celery import POLL_QUEUE, SUBMIT_QUEUE
from config.settings import Secret, Settings, load_settings
from worker.cli import http_pool_env, parse_args
from worker.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
CONSTRAINTS = DEPLOY / "constraints.txt"
COMPOSE = DEPLOY / "compose.yaml"
BASE = DEPLOY / "k8s" / "base"
OVERLAY = DEPLOY / "k8s" / "overlays" / "example"
MONITORING = DEPLOY / "k8s" / "components" / "monitoring"
YAMLLINT_CONFIG = ROOT / ".yamllint.yaml"
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"
VENV_BIN = Path(sys.executable).parent

#: Oldest Kubernetes minor the manifests must be valid for, and the newest bundled schema.
K8S_VERSIONS = ("1.30", kv.latest_version())
#: Custom resources kubernetes-validate has no schema for (KEDA, the Prometheus
#: Operator): the schema validator skips them and _check_crd checks what we rely on.
CRD_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
#: Environment variables read outside config.settings (worker.health, worker.lifecycle).
EXTRA_ENV = {"HEADSWAP_METRICS_PORT", "HEADSWAP_HEARTBEAT_FILE"}
SANDBOX_ENV = {
    "HEADSWAP_SANDBOX_API_KEY",
    "HEADSWAP_SANDBOX_CLIENT_ID",
    "HEADSWAP_SANDBOX_CLIENT_SECRET",
}
NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
SECRET_NAME_RE = re.compile(r"SECRET|PASSWORD|TOKEN|API_KEY|CLIENT_ID|CREDENTIAL")
URL_WITH_PASSWORD_RE = re.compile(r"://[^/@\s]*:[^/@\s]+@")

Doc = dict[str, Any]


# --------------------------------------------------------------------------- helpers


def _tool(name: str) -> str:
    path = VENV_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: install the dev extra (make install)")
    return found


def _settings_env_names() -> set[str]:
    return {f"HEADSWAP_{name.upper()}" for name in Settings.__dataclass_fields__}


def _secret_setting_names() -> set[str]:
    hints = typing.get_type_hints(Settings)
    names = {f"HEADSWAP_{name.upper()}" for name, hint in hints.items()
             if hint is Secret or hint == tuple[Secret, ...]}
    # Not a Secret-typed field, but the URL carries the Redis password.
    return names | {"HEADSWAP_REDIS_URL", "HEADSWAP_AKOOL_CLIENT_ID"}


def _load_yaml_docs(path: Path) -> list[Doc]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def _kustomization(folder: Path) -> Doc:
    return _load_yaml_docs(folder / "kustomization.yaml")[0]


def _base_docs() -> list[Doc]:
    docs: list[Doc] = []
    for entry in _kustomization(BASE)["resources"]:
        docs.extend(_load_yaml_docs(BASE / entry))
    return docs


def _kustomize_command() -> list[str] | None:
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize"]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build"]
    return None


_RENDERED: dict[Path, list[Doc]] = {}


def _render(folder: Path) -> list[Doc]:
    if folder not in _RENDERED:
        command = _kustomize_command()
        if command is None:
            pytest.skip("neither kubectl nor kustomize on PATH: overlay not rendered")
        proc = subprocess.run(
            [*command, str(folder)], capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, f"kustomize failed for {folder}:\n{proc.stderr}"
        _RENDERED[folder] = [d for d in yaml.safe_load_all(proc.stdout) if d is not None]
    return _RENDERED[folder]


def _one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected exactly one {kind}/{name}, found {len(found)}"
    return found[0]


def _of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def _deployment(docs: list[Doc], component: str) -> Doc:
    found = [
        d
        for d in _of_kind(docs, "Deployment")
        if d["spec"]["template"]["metadata"]["labels"].get(COMPONENT_LABEL) == component
    ]
    assert len(found) == 1, f"expected one Deployment with component={component}"
    return found[0]


def _container(deployment: Doc) -> Doc:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one container per headswap pod"
    return dict(containers[0])


def _parse_cli(argv: list[str]) -> Any:
    """Parse a ``headswap`` command line as ``headswap`` does (fails on unknown flags, except
    the Celery options worker and beat pass through into ``celery_args``)."""
    try:
        return parse_args(argv)
    except SystemExit as exc:  # argparse error
        pytest.fail(f"`headswap {' '.join(argv)}` does not parse (exit {exc.code})")


def _cli_argv(command: list[str]) -> list[str]:
    assert command[0] == "headswap", f"expected a headswap command, got {command}"
    return command[1:]


def _config_and_secret(docs: list[Doc]) -> tuple[dict[str, str], dict[str, str]]:
    config = _one(docs, "ConfigMap", "headswap-config")["data"]
    secret = _one(docs, "Secret", "headswap-secrets")
    return dict(config), dict(secret.get("stringData") or {})


def _timeout_budget(config: dict[str, str]) -> float:
    """Seconds the longest task (an Akool create) can block: connect + read timeout."""
    settings = load_settings(config)
    return settings.connect_timeout + settings.read_timeout


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(params=["base", "overlay"])
def manifests(request: pytest.FixtureRequest) -> list[Doc]:
    """The base read file by file, and the example overlay as kustomize renders it."""
    return _base_docs() if request.param == "base" else _render(OVERLAY)


@pytest.fixture(scope="module")
def compose() -> Doc:
    return _load_yaml_docs(COMPOSE)[0]


# --------------------------------------------------------------------------- Dockerfile


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def test_dockerfile_is_hadolint_clean() -> None:
    proc = subprocess.run(
        [_tool("hadolint"), "--no-color", "-f", "json", "-t", "style", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    findings = json.loads(proc.stdout or "[]")
    assert proc.returncode == 0 and findings == [], (
        "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings) or proc.stderr
    )


def test_dockerfile_is_multi_stage_on_pinned_python_311_slim() -> None:
    froms = [args for word, args in _dockerfile_instructions() if word == "FROM"]
    assert len(froms) >= 2, "builder stage + runtime stage"
    for args in froms:
        image = args.split()[0]
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", image), (
            f"{image}: pin python 3.11 to a patch release of the slim image"
        )
    assert " AS " in froms[0].upper(), "the builder stage is named"


def test_dockerfile_runtime_stage() -> None:
    final = _final_stage()
    words = [word for word, _ in final]
    env = " ".join(args for word, args in final if word == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env
    users = [args for word, args in final if word == "USER"]
    assert users, "the runtime stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, "numeric non-root UID (kubelet can verify it)"
    assert words.index("USER") < words.index("ENTRYPOINT")
    assert "HEALTHCHECK" in words, "HEALTHCHECK set explicitly (NONE: probes are per command)"
    entrypoint = [json.loads(args) for word, args in final if word == "ENTRYPOINT"]
    cmd = [json.loads(args) for word, args in final if word == "CMD"]
    assert entrypoint == [["headswap"]]
    assert cmd == [["worker"]]
    assert _parse_cli(cmd[0]).command == "worker"
    copies = [args for word, args in final if word == "COPY"]
    assert all(c.startswith("--from=") for c in copies), "runtime copies only from the builder"


def test_dockerfile_installs_runtime_dependencies_only() -> None:
    runs = " ".join(args for word, args in _dockerfile_instructions() if word == "RUN")
    assert "pip install" in runs
    assert "[dev]" not in runs and "redis-binary" not in runs, "no optional extras in the image"
    assert "-e " not in runs and "--editable" not in runs, "a real install, not editable"
    assert re.search(r"(--constraint|-c) +\S*constraints\.txt", runs), "pinned dependencies"


def test_dockerfile_copies_everything_the_package_needs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    copied = set()
    for word, args in _dockerfile_instructions():
        if word == "COPY" and not args.startswith("--from="):
            copied.update(p.rstrip("/").removeprefix("./") for p in args.split()[:-1])
    includes = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    needed = {pattern.rstrip("*").rstrip(".") for pattern in includes}
    needed |= {"pyproject.toml", pyproject["project"]["readme"], "deploy/constraints.txt"}
    assert needed <= copied, f"not copied into the build: {sorted(needed - copied)}"
    # The context filter starts from "exclude everything" and re-includes what is copied.
    ignore = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    assert "**" in ignore
    reincluded = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert needed <= reincluded, f"excluded from the context: {sorted(needed - reincluded)}"
    assert "headswap" in pyproject["project"]["scripts"], "ENTRYPOINT needs the console script"


def test_constraints_pin_every_runtime_dependency() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"{line!r}: constraints must be exact pins"
            pins[canonicalize_name(name)] = version
    extras = pyproject["project"]["optional-dependencies"]
    for spec in [*pyproject["project"]["dependencies"], *extras["tracing"]]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned in deploy/constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{req.name}=={pins[name]} does not satisfy {req.specifier}"
        )
    dev = {canonicalize_name(Requirement(s).name) for s in
           pyproject["project"]["optional-dependencies"]["dev"]}  # fmt: skip
    assert not dev & pins.keys(), "dev-only packages pinned for the image"


# --------------------------------------------------------------------------- YAML lint


def test_yamllint_clean() -> None:
    yamllint = _tool("yamllint")
    listed = subprocess.run(
        [yamllint, "-c", str(YAMLLINT_CONFIG), "--list-files", str(DEPLOY)],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    linted = {Path(p).resolve() for p in listed.stdout.split()}
    on_disk = {p.resolve() for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml")}
    assert COMPOSE.resolve() in on_disk and len(on_disk) > 10
    assert on_disk <= linted, f"not linted: {sorted(map(str, on_disk - linted))}"
    proc = subprocess.run(
        [yamllint, "-c", str(YAMLLINT_CONFIG), "-f", "parsable", "--strict", str(DEPLOY)],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- kustomize


def _files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_file() and p.name != "kustomization.yaml"}


def test_base_kustomization_lists_every_file() -> None:
    resources = _kustomization(BASE)["resources"]
    assert len(resources) == len(set(resources))
    assert set(resources) == _files_in(BASE)


def test_the_overlay_includes_the_monitoring_component_and_the_base_does_not() -> None:
    assert "../../components/monitoring" in _kustomization(OVERLAY).get("components", [])
    assert not _kustomization(BASE).get("components")
    base_kinds = {d["kind"] for d in _base_docs()}
    assert not base_kinds & {"PodMonitor", "PrometheusRule"}, "the base needs no Operator CRDs"
    component = _kustomization(MONITORING)
    assert component["kind"] == "Component"
    generated = {f for gen in component.get("configMapGenerator", []) for f in gen["files"]}
    assert set(component["resources"]) | generated == _files_in(MONITORING)


def test_overlay_kustomization_lists_every_file_and_patches_real_resources() -> None:
    kustomization = _kustomization(OVERLAY)
    local = {r for r in kustomization["resources"] if not r.startswith("..")}
    patches = [p["path"] for p in kustomization.get("patches", [])]
    assert local | set(patches) == _files_in(OVERLAY)
    assert "../../base" in kustomization["resources"]
    assert kustomization.get("namespace"), "the overlay sets a namespace"
    assert any(i.get("newTag") for i in kustomization.get("images", [])), "and an image tag"
    base = {(d["kind"], d["metadata"]["name"]) for d in _base_docs()}
    for entry in kustomization["patches"]:
        target = entry.get("target")
        if target:
            key = (target["kind"], target["name"])
        else:
            patch = _load_yaml_docs(OVERLAY / entry["path"])[0]
            key = (patch["kind"], patch["metadata"]["name"])
        assert key in base, f"{entry['path']} patches {key}, which the base does not define"


def _check_pod_monitor(spec: Doc, docs: list[Doc]) -> None:
    """It scrapes the metrics port of exactly the worker and webhook pods."""
    assert set(spec) <= {"selector", "podMetricsEndpoints", "podTargetLabels", "jobLabel",
                         "namespaceSelector", "sampleLimit"}  # fmt: skip
    selector = spec["selector"]
    scraped = set()
    for deployment in _of_kind(docs, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if not selector.get("matchLabels", {}).items() <= labels.items():
            continue
        if all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", [])
               if e["operator"] == "In"):  # fmt: skip
            scraped.add(labels[COMPONENT_LABEL])
            ports = {p["name"] for p in _container(deployment).get("ports", [])}
            for endpoint in spec["podMetricsEndpoints"]:
                assert endpoint["port"] in ports, f"{labels[COMPONENT_LABEL]} has no port"
                assert endpoint.get("path", "/metrics") == "/metrics"
    assert scraped == {"worker", "webhook"}, f"the PodMonitor scrapes {sorted(scraped)}"


def _check_crd(doc: Doc, docs: list[Doc]) -> None:
    """What we rely on in the KEDA and Prometheus Operator resources (no schema is bundled
    for them; the rules themselves are checked by promtool in tests/test_monitoring.py)."""
    spec = doc["spec"]
    if doc["kind"] == "PodMonitor":
        _check_pod_monitor(spec, docs)
    elif doc["kind"] == "PrometheusRule":
        assert set(spec) == {"groups"} and spec["groups"]
        for group in spec["groups"]:
            assert set(group) <= {"name", "interval", "rules"} and group["rules"]
            for rule in group["rules"]:
                assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations"}
                assert isinstance(rule["expr"], str) and rule.get("alert")
    elif doc["kind"] == "ScaledObject":
        known = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "minReplicaCount",
                 "maxReplicaCount", "idleReplicaCount", "advanced", "triggers", "fallback",
                 "initialCooldownPeriod"}  # fmt: skip
        assert set(spec) <= known, f"unknown ScaledObject fields {set(spec) - known}"
        for field in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
            assert isinstance(spec.get(field, 0), int)
        assert spec["triggers"], "at least one trigger"
        for trigger in spec["triggers"]:
            assert set(trigger) <= {"type", "metadata", "authenticationRef", "name"}
            assert all(isinstance(v, str) for v in trigger["metadata"].values()), (
                "KEDA trigger metadata values must be strings"
            )
            if ref := trigger.get("authenticationRef"):
                _one(docs, "TriggerAuthentication", ref["name"])
    else:
        for ref in spec["secretTargetRef"]:
            assert set(ref) == {"parameter", "name", "key"}
            secret = _one(docs, "Secret", ref["name"])
            keys = set(secret.get("stringData") or {}) | set(secret.get("data") or {})
            assert ref["key"] in keys, f"Secret {ref['name']} has no key {ref['key']}"


def _validate_all(docs: list[Doc]) -> None:
    assert docs
    problems = []
    for doc in docs:
        ident = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        for version in K8S_VERSIONS:
            try:
                kv.validate(doc, version, strict=True)
            except kv.SchemaNotFoundError as exc:
                if (doc["apiVersion"], doc["kind"]) not in CRD_KINDS:
                    problems.append(f"{ident}: {exc.message}")
                    break
                _check_crd(doc, docs)
                break
            except kv.ValidationError as exc:
                path = "/".join(map(str, exc.path))
                problems.append(f"{ident} (k8s {version}) at {path}: {exc.message}")
    assert not problems, "\n".join(problems)


def test_base_manifests_are_valid_kubernetes() -> None:
    _validate_all(_base_docs())


def test_rendered_overlay_is_valid_kubernetes() -> None:
    docs = _render(OVERLAY)
    _validate_all(docs)
    kinds = {d["kind"] for d in docs}
    assert {"PodMonitor", "PrometheusRule"} <= kinds, "the monitoring component is rendered"
    dashboard = _one(docs, "ConfigMap", "headswap-grafana-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["headswap-dashboard.json"])["uid"]
    namespace = _kustomization(OVERLAY)["namespace"]
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, doc["metadata"]["name"]
    for deployment in _of_kind(docs, "Deployment"):
        image = _container(deployment)["image"]
        assert re.fullmatch(r"[\w.\-/:]+:[\w.\-]+", image) and not image.endswith(":latest")


# --------------------------------------------------------------------------- operator invariants


def test_every_resource_is_labelled(manifests: list[Doc]) -> None:
    for doc in manifests:
        labels = doc["metadata"].get("labels", {})
        ident = f"{doc['kind']}/{doc['metadata']['name']}"
        assert labels.get(NAME_LABEL) == "headswap", ident
        assert labels.get(COMPONENT_LABEL), ident
    for deployment in _of_kind(manifests, "Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        template = deployment["spec"]["template"]["metadata"]["labels"]
        component = deployment["metadata"]["labels"][COMPONENT_LABEL]
        assert selector == {NAME_LABEL: "headswap", COMPONENT_LABEL: component}
        assert selector.items() <= template.items()


def test_configmap_holds_no_secrets(manifests: list[Doc]) -> None:
    config, secret = _config_and_secret(manifests)
    assert config and secret
    leaked = {k for k in config if SECRET_NAME_RE.search(k)} | (
        config.keys() & _secret_setting_names()
    )
    assert not leaked, f"secret settings in the ConfigMap: {sorted(leaked)}"
    assert not config.keys() & secret.keys(), "a key in both ConfigMap and Secret"
    for key, value in config.items():
        assert not URL_WITH_PASSWORD_RE.search(str(value)), f"{key} embeds a password"


def test_secret_holds_every_secret_setting_as_placeholder(manifests: list[Doc]) -> None:
    _, secret = _config_and_secret(manifests)
    missing = _secret_setting_names() - secret.keys()
    assert not missing, f"secret settings missing from the Secret: {sorted(missing)}"
    for doc in _of_kind(manifests, "Secret"):
        assert "data" not in doc, "placeholders as stringData, never base64 data"
        for key, value in doc["stringData"].items():
            assert "CHANGE_ME" in value, f"{doc['metadata']['name']}/{key}: not a placeholder"


def test_env_names_are_real_settings(manifests: list[Doc], compose: Doc) -> None:
    known = _settings_env_names() | EXTRA_ENV
    config, secret = _config_and_secret(manifests)
    names = set(config) | set(secret)
    for deployment in _of_kind(manifests, "Deployment"):
        names |= {e["name"] for e in _container(deployment).get("env", [])}
    for name, service in compose["services"].items():
        env = set(service.get("environment") or {})
        names |= env - SANDBOX_ENV if name == "sandbox" else env
    unknown = {n for n in names if n.startswith("HEADSWAP_")} - known
    assert not unknown, f"not read by headswap (typo?): {sorted(unknown)}"


def test_config_and_secret_load_as_valid_settings(manifests: list[Doc]) -> None:
    config, secret = _config_and_secret(manifests)
    # The callback secrets have a form (whsec_<base64>) a placeholder cannot have: applied
    # unchanged, they stop the process with a message naming the variable.
    with pytest.raises(ConfigError, match="HEADSWAP_CALLBACK_SECRETS"):
        load_settings({**config, **secret})
    secret["HEADSWAP_CALLBACK_SECRETS"] = "whsec_" + "A" * 44
    settings = load_settings({**config, **secret})
    assert settings.log_format == "json"
    assert settings.akool_base_url.startswith("https://")
    assert settings.webhook_public_url.startswith("https://")


def test_every_pod_is_locked_down_and_bounded(manifests: list[Doc]) -> None:
    deployments = _of_kind(manifests, "Deployment")
    assert {d["metadata"]["labels"][COMPONENT_LABEL] for d in deployments} == {
        "worker", "beat", "webhook"
    }  # fmt: skip
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        container = _container(deployment)
        pod_sc, sc = pod.get("securityContext", {}), container.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") or sc.get("runAsNonRoot"), name
        assert (sc.get("runAsUser") or pod_sc.get("runAsUser", 0)) >= 1000, name
        assert sc.get("readOnlyRootFilesystem") is True, name
        assert sc.get("allowPrivilegeEscalation") is False, name
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], name
        assert pod.get("automountServiceAccountToken") is False, name
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{name}: {kind}"
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{name}: writable /tmp"
        refs = {(k, v["name"]) for src in container.get("envFrom", []) for k, v in src.items()}
        assert refs == {("configMapRef", "headswap-config"), ("secretRef", "headswap-secrets")}
        assert container["image"].split("/")[-1].split(":")[0] == "headswap", name
        assert container.get("args"), f"{name}: the command is in args (ENTRYPOINT headswap)"
        assert "command" not in container, f"{name}: keep the image ENTRYPOINT"


def test_worker_deployment(manifests: list[Doc]) -> None:
    deployment = _deployment(manifests, "worker")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    config, _ = _config_and_secret(manifests)

    args = _parse_cli(container["args"])
    assert args.command == "worker" and not args.celery_args
    assert args.concurrency >= 1
    # `headswap worker -c N` sets the pool to N unless the ConfigMap names a size.
    effective = {**config, **http_pool_env(args.concurrency, config)}
    assert load_settings(effective).http_pool_size >= args.concurrency, (
        "HEADSWAP_HTTP_POOL_SIZE below worker concurrency: threads would queue for connections"
    )
    assert "replicas" not in deployment["spec"], "KEDA owns the worker replica count"

    grace = pod["terminationGracePeriodSeconds"]
    assert grace > 60 and grace > 2 * _timeout_budget(config), grace

    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        spec = container[probe]
        assert set(spec) & {"exec", "httpGet", "tcpSocket", "grpc"} == {"exec"}, probe
        parsed = _parse_cli(_cli_argv(spec["exec"]["command"]))
        assert parsed.command == "healthcheck", probe
        assert parsed.max_age >= 30, f"{probe}: heartbeat max age too tight"
        assert spec.get("timeoutSeconds", 1) >= 5, f"{probe}: a Python start needs time"

    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert env["HEADSWAP_METRICS_PORT"] == str(ports["metrics"]) == "9100"
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == env["HEADSWAP_METRICS_PORT"]
    heartbeat = env.get("HEADSWAP_HEARTBEAT_FILE", "/tmp/headswap-heartbeat")
    assert heartbeat.startswith("/tmp/"), "the heartbeat file lives on the /tmp emptyDir"


def test_beat_is_a_single_recreated_replica(manifests: list[Doc]) -> None:
    deployment = _deployment(manifests, "beat")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    args = _parse_cli(_container(deployment)["args"])
    assert args.command == "beat"
    assert args.schedule.startswith("/tmp/"), "the schedule file goes on the /tmp emptyDir"
    assert not [p for p in _of_kind(manifests, "PodDisruptionBudget")
                if p["spec"]["selector"]["matchLabels"].get(COMPONENT_LABEL) == "beat"], (
        "a PDB on a single replica would block node drains"
    )  # fmt: skip


def test_webhook_service_and_ingress(manifests: list[Doc]) -> None:
    deployment = _deployment(manifests, "webhook")
    container = _container(deployment)
    args = _parse_cli(container["args"])
    assert args.command == "webhook" and args.host == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == args.port
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz" and get["port"] in ("http", args.port), probe
    assert container["lifecycle"]["preStop"], "let the endpoint drain before SIGTERM"

    service = _one(manifests, "Service", "headswap-webhook")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert service_ports["http"]["targetPort"] in ("http", args.port)

    ingress = _one(manifests, "Ingress", "headswap-webhook")
    rules = ingress["spec"]["rules"]
    paths = [p for rule in rules for p in rule["http"]["paths"]]
    assert [p["path"] for p in paths] == ["/webhooks/akool"], "only the delivery path"
    for path in paths:
        backend = path["backend"]["service"]
        assert backend["name"] == service["metadata"]["name"]
        assert backend["port"].get("name") in service_ports or backend["port"].get("number") in {
            p["port"] for p in service_ports.values()
        }
    tls_hosts = {h for tls in ingress["spec"]["tls"] for h in tls["hosts"]}
    assert tls_hosts and all(tls.get("secretName") for tls in ingress["spec"]["tls"])
    assert {rule["host"] for rule in rules} <= tls_hosts, "every host is served over TLS"

    config, _ = _config_and_secret(manifests)
    public = urlsplit(config["HEADSWAP_WEBHOOK_PUBLIC_URL"])
    assert public.scheme == "https"
    assert public.hostname in {rule["host"] for rule in rules}, "public URL != Ingress host"
    assert public.path == paths[0]["path"]


def test_scaledobject_scales_workers_on_the_submit_queue(manifests: list[Doc]) -> None:
    worker = _deployment(manifests, "worker")
    scaled = _of_kind(manifests, "ScaledObject")
    assert len(scaled) == 1
    spec = scaled[0]["spec"]
    target = spec["scaleTargetRef"]
    assert target["name"] == worker["metadata"]["name"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert spec["minReplicaCount"] >= 1, "workers also follow jobs (poll queue): never zero"
    assert spec["maxReplicaCount"] > spec["minReplicaCount"]
    redis_triggers = {t["metadata"]["listName"]: t for t in spec["triggers"]
                      if t["type"] == "redis"}  # fmt: skip
    assert SUBMIT_QUEUE == "headswap.submit" and SUBMIT_QUEUE in redis_triggers
    assert set(redis_triggers) <= {SUBMIT_QUEUE, POLL_QUEUE}
    for trigger in redis_triggers.values():
        assert int(trigger["metadata"]["listLength"]) > 0
        assert trigger["metadata"].get("address") or trigger["metadata"].get("addressFromEnv")
        auth = _one(manifests, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        params = {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]}
        assert "password" in params


def test_disruption_budgets_cover_worker_and_webhook(manifests: list[Doc]) -> None:
    covered = set()
    for pdb in _of_kind(manifests, "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        matching = [
            d
            for d in _of_kind(manifests, "Deployment")
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matching) == 1, pdb["metadata"]["name"]
        covered.add(matching[0]["metadata"]["labels"][COMPONENT_LABEL])
    assert covered == {"worker", "webhook"}


def _policy_for(manifests: list[Doc], component: str) -> Doc:
    deployment = _deployment(manifests, component)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    found = [p for p in _of_kind(manifests, "NetworkPolicy")
             if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()]  # fmt: skip
    assert len(found) == 1, f"expected one NetworkPolicy for {component}"
    assert set(found[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    return found[0]


def _ports(rules: list[Doc]) -> set[tuple[str, int]]:
    return {(p.get("protocol", "TCP"), p["port"]) for r in rules for p in r.get("ports", [])}


def test_network_policies(manifests: list[Doc]) -> None:
    dns = {("UDP", 53), ("TCP", 53)}
    worker = _policy_for(manifests, "worker")["spec"]
    assert dns | {("TCP", 6379), ("TCP", 443)} <= _ports(worker["egress"])
    assert _ports(worker["ingress"]) == {("TCP", 9100)}, "only metrics reach a worker"
    beat = _policy_for(manifests, "beat")["spec"]
    assert _ports(beat["egress"]) == dns | {("TCP", 6379)} and not beat.get("ingress")
    webhook = _policy_for(manifests, "webhook")["spec"]
    assert _ports(webhook["ingress"]) == {("TCP", 8080), ("TCP", 9100)}, "deliveries + metrics"
    assert _ports(webhook["egress"]) == dns | {("TCP", 6379)}
    for rules in (worker["ingress"], webhook["ingress"]):
        assert all(r.get("from") for r in rules), "ingress only from named peers"


# --------------------------------------------------------------------------- compose


HEADSWAP_SERVICES = ("sandbox", "worker", "beat", "webhook")


def _compose_env(compose: Doc, service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (compose["services"][service].get("environment") or {}).items()}


def test_compose_services_share_one_locked_down_image(compose: Doc) -> None:
    services = compose["services"]
    assert set(services) == {"redis", *HEADSWAP_SERVICES}
    images = {services[name]["image"] for name in HEADSWAP_SERVICES}
    assert len(images) == 1
    for name in HEADSWAP_SERVICES:
        service = services[name]
        build = service["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT, name
        assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE.resolve(), name
        assert int(str(service["user"]).split(":")[0]) >= 1000, name
        assert service["read_only"] is True and "/tmp" in service["tmpfs"], name
        assert service["cap_drop"] == ["ALL"], name
        argv = service["command"]
        assert _parse_cli(argv).command == name, f"{name}: command {argv}"


def test_compose_redis_never_evicts_and_persists(compose: Doc) -> None:
    command = compose["services"]["redis"]["command"]
    text = " ".join(map(str, command))
    assert "--appendonly yes" in text
    assert "--appendfsync everysec" in text
    assert "--maxmemory-policy noeviction" in text
    assert any(v.endswith(":/data") for v in compose["services"]["redis"]["volumes"])


def test_compose_worker_talks_to_the_sandbox(compose: Doc) -> None:
    services = compose["services"]
    sandbox_args = _parse_cli(services["sandbox"]["command"])
    sandbox_env = _compose_env(compose, "sandbox")
    webhook_args = _parse_cli(services["webhook"]["command"])
    assert sandbox_args.host == "0.0.0.0" and webhook_args.host == "0.0.0.0"
    for name in ("worker", "beat", "webhook"):
        env = _compose_env(compose, name)
        settings = load_settings(env)  # every service's environment is a valid configuration
        base = urlsplit(settings.akool_base_url)
        assert (base.hostname, base.port) == ("sandbox", sandbox_args.port), name
        assert settings.akool_api_key.get() == sandbox_env["HEADSWAP_SANDBOX_API_KEY"], name
        assert settings.akool_client_id == sandbox_env["HEADSWAP_SANDBOX_CLIENT_ID"], name
        assert (
            settings.akool_client_secret.get() == sandbox_env["HEADSWAP_SANDBOX_CLIENT_SECRET"]
        ), name
        assert urlsplit(settings.redis_url).hostname == "redis", name
        hook = urlsplit(settings.webhook_public_url)
        assert (hook.hostname, hook.port, hook.path) == (
            "webhook", webhook_args.port, "/webhooks/akool"
        ), name  # fmt: skip
    # The sandbox only seals webhooks with a 16-byte client id and a 16/24/32-byte secret.
    assert len(sandbox_env["HEADSWAP_SANDBOX_CLIENT_ID"].encode()) == 16
    assert len(sandbox_env["HEADSWAP_SANDBOX_CLIENT_SECRET"].encode()) in (16, 24, 32)


def test_compose_worker_health_and_shutdown(compose: Doc) -> None:
    worker = compose["services"]["worker"]
    check = worker["healthcheck"]["test"]
    assert check[0] == "CMD"
    assert _parse_cli(_cli_argv(check[1:])).command == "healthcheck"
    grace = worker["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) > 2 * _timeout_budget(_compose_env(compose, "worker"))
    assert _compose_env(compose, "worker")["HEADSWAP_METRICS_PORT"] == "9100"
    depends = worker["depends_on"]
    assert depends["redis"]["condition"] == depends["sandbox"]["condition"] == "service_healthy"


# --------------------------------------------------------------------------- docs


def _defined_metrics() -> set[str]:
    source = "".join((ROOT / "worker" / name).read_text(encoding="utf-8")
                     for name in ("metrics.py", "storage/metrics.py"))
    return set(re.findall(r"\"(headswap_[a-z0-9_]+)\"", source))


def _metric_base(name: str) -> str:
    return re.sub(r"_(bucket|sum|count|created)$", "", name)


def test_operations_doc_names_only_real_or_planned_metrics() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    assert "docker build -f deploy/Dockerfile" in text
    defined = _defined_metrics()
    assert defined, "worker/metrics.py defines headswap_* metrics"
    unknown = []
    for line in text.splitlines():
        for name in re.findall(r"\bheadswap_[a-z0-9_]+", line):
            if _metric_base(name) not in defined and "planned" not in line.lower():
                unknown.append(name)
    assert not unknown, f"metrics named in OPERATIONS.md but not defined: {sorted(set(unknown))}"
