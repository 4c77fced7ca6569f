"""Shared fixtures: run the real program (__main__.py) under Pulumi mocks for a stack file.

The mocks (components/tools/render.py) stand in for the engine only: they record every resource the
program registers, with its inputs as the engine would receive them (secret values still marked
secret), and the stack's exports. Everything the program renders is then checked for real here.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The mock engine lives in the product (components/tools/render.py); the tests use it as it is.
from components.tools.render import (  # noqa: E402
    CONTROLLERS,
    MOCK_NAME_SUFFIX,
    RecordingMocks,
    RecordingMonitor,
    Resource,
    Run,
    container_files,
    controller,
    is_secret,
    run_program,
    stack_config,
    unwrap,
)
STACKS = ("dev", "staging", "prod")
NAMESPACE = "observability"

# Stand-in secret values: distinctive, so a test can search every input and file for them.
SECRETS = {
    "slack_webhook_url": "https://hooks.slack.example/T000/B000/slack-secret-4f1c",
    "pagerduty_routing_key": "pagerduty-secret-77aa",
    "watchdog_url": "https://deadman.example/ping/watchdog-secret-0d9e",
    "postgres_password": "postgres-secret-9b2e",
    "redis_password": "redis-secret-c3d4",
    "remote_write_password": "remote-write-secret-e5f6",
    "loki_s3_access_key_id": "AKIAEXAMPLESECRET123",
    "loki_s3_secret_access_key": "loki-s3-secret-a1b2",
    "loki_gcs_service_account": '{"type": "service_account", "private_key": "gcs-secret-d4e5"}',
    "grafana_admin_password": "grafana-secret-f7a8",
    "grafana_api_token": "glsa_grafana-token-secret-b9c0",
    "grafana_database_password": "grafana-db-secret-3e7d",
    "long_term_metrics_password": "long-term-secret-5a6b",
    "jaeger_elasticsearch_password": "jaeger-es-secret-8c1d",
    "jaeger_cassandra_password": "jaeger-cassandra-secret-2f9e",
}


def merge(base: Any, override: Any) -> Any:
    """Deep merge: dicts merge key by key; anything else in the override replaces the base."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base.get(key), value) if key in base else value
        return merged
    return copy.deepcopy(override)


STACK_SECRETS = {
    "dev": (),
    "staging": ("slack_webhook_url", "postgres_password", "redis_password"),
    "prod": tuple(SECRETS),
}


def stack_secrets(stack: str) -> dict:
    return {name: SECRETS[name] for name in STACK_SECRETS[stack]}


@pytest.fixture(scope="session")
def stack_runs() -> dict[str, Run]:
    """Each shipped stack file, run once with the secrets it asks for."""
    return {stack: run_program(stack, stack_config(stack), stack_secrets(stack)) for stack in STACKS}


def require_tool(name: str) -> str:
    """Path of an upstream tool; under CI a missing tool fails the test instead of skipping it."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed; the README's test command installs it")
        pytest.skip(f"{name} is not installed (the README's test command installs it)")
    return path


def write_files(files: dict[str, str], root: Path) -> dict[str, Path]:
    """Write container files under `root`, keeping their absolute paths below it."""
    written = {}
    for path, content in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        written[path] = target
    return written


def relocate(text: str, root: Path, prefixes: tuple[str, ...]) -> str:
    """Point absolute container paths in a config file at their copies under `root`."""
    for prefix in prefixes:
        # Whole paths only: /run/secrets is not the tail of /var/run/secrets.
        text = re.sub(rf"(?<![\w./-]){re.escape(prefix)}", lambda m: str(root) + m[0], text)
    return text


def inline_webhook_url_files(path: Path) -> None:
    """Debian's Alertmanager is 0.25, older than webhook `url_file` (0.26, used by the deployed
    image). For it, put each webhook's URL into the (relocated) config itself: same meaning."""
    config = yaml.safe_load(path.read_text())
    for receiver in config.get("receivers", []):
        for webhook in receiver.get("webhook_configs", []):
            if "url_file" in webhook:
                webhook["url"] = Path(webhook.pop("url_file")).read_text().strip()
    path.write_text(yaml.safe_dump(config, sort_keys=False))


# --- the real tools' copies of a stack's configs (shared by the services' tests and the examples')

# Kubernetes mounts the service account's token and the cluster's CA for a pod that calls the
# API; the kubelet and API server jobs read them.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
PROMETHEUS_PREFIXES = ("/etc/prometheus", "/run/secrets", SERVICE_ACCOUNT_DIR)

# Kubernetes service discovery as Prometheus v3.14.0 has it (discovery/kubernetes/): the roles,
# the meta labels each role offers, and the selector roles each accepts (Config.Validate's
# allowedSelectors). Debian's promtool is built without it, so it is checked here instead.
KUBERNETES_SD_META = {
    "pod": ("__meta_kubernetes_pod_", "__meta_kubernetes_namespace"),
    "endpoints": (
        "__meta_kubernetes_endpoint",
        "__meta_kubernetes_service_",
        "__meta_kubernetes_pod_",
        "__meta_kubernetes_namespace",
    ),
    "endpointslice": (
        "__meta_kubernetes_endpointslice_",
        "__meta_kubernetes_service_",
        "__meta_kubernetes_pod_",
        "__meta_kubernetes_namespace",
    ),
    "node": ("__meta_kubernetes_node_",),
}
KUBERNETES_SD_SELECTORS = {
    "pod": {"pod", "node"}, "endpoints": {"pod", "service", "endpoints"},
    "endpointslice": {"pod", "service", "endpointslice"}, "node": {"node"},
}


def promtool_copy(run, tmp_path):
    """The container's files under tmp_path, the config pointing at them; Kubernetes SD blocks
    checked against the documented schema and replaced by empty static groups for promtool."""
    files = write_files(container_files(run, "prometheus"), tmp_path)
    account = tmp_path / SERVICE_ACCOUNT_DIR.lstrip("/")
    account.mkdir(parents=True)
    (account / "token").write_text("a-service-account-token")
    (account / "ca.crt").write_text("")
    config = yaml.safe_load(relocate(files["/etc/prometheus/prometheus.yml"].read_text(), tmp_path, PROMETHEUS_PREFIXES))
    # storage.tsdb.retention is newer (3.8) than Debian's promtool (2.42), which rejects it; the
    # block is checked against Prometheus's own config keys in tests/test_upstream_metrics_traces.py.
    assert set(config.pop("storage")) == {"tsdb"}
    for job in config["scrape_configs"]:
        for sd in job.pop("kubernetes_sd_configs", []):
            assert set(sd) <= {"role", "namespaces", "selectors"}, job["job_name"]
            assert sd["role"] in KUBERNETES_SD_META, job["job_name"]
            if "namespaces" in sd:
                assert set(sd["namespaces"]) == {"names"} and sd["namespaces"]["names"]
            roles = [selector["role"] for selector in sd.get("selectors", [])]
            assert len(roles) == len(set(roles)), job["job_name"]
            for selector in sd.get("selectors", []):
                assert set(selector) <= {"role", "label", "field"}, job["job_name"]
                assert selector["role"] in KUBERNETES_SD_SELECTORS[sd["role"]], job["job_name"]
            for relabel in job.get("relabel_configs", []):
                for label in relabel.get("source_labels", []):
                    if label.startswith("__meta_kubernetes"):
                        assert label.startswith(KUBERNETES_SD_META[sd["role"]]), (job["job_name"], label)
            job.setdefault("static_configs", []).append({"targets": []})
    path = tmp_path / "prometheus-checked.yml"
    path.write_text(yaml.safe_dump(config))
    return path


ALERTMANAGER_PREFIXES = ("/etc/alertmanager", "/run/secrets")


def amtool_config(run, tmp_path):
    """The container's files under tmp_path, with the config's paths pointing at them."""
    files = write_files(container_files(run, "alertmanager"), tmp_path)
    path = files["/etc/alertmanager/alertmanager.yml"]
    path.write_text(relocate(path.read_text(), tmp_path, ALERTMANAGER_PREFIXES))
    inline_webhook_url_files(path)
    return path


def planned_workload(settings, name: str):
    """The workload the stack renders for its component `name` (None: the stack has none)."""
    from components import platforms, stack

    for cls, planned, inputs in stack.exporters(settings):
        if planned == name:
            return cls.render(name, platforms.create(settings), **inputs)
    return None


def container_args(run: Run, service: str) -> list[str]:
    """The command-line arguments a service's container starts with, on either platform."""
    containers = [r for r in run.of_type("docker:index/container:Container") if r.name == service]
    if containers:
        return containers[0].inputs.get("command") or []
    return controller(run, service).inputs["spec"]["template"]["spec"]["containers"][0].get("args", [])


def prometheus_config(run: Run) -> dict:
    return yaml.safe_load(container_files(run, "prometheus")["/etc/prometheus/prometheus.yml"])


def scrape_jobs(run: Run) -> dict[str, dict]:
    """Prometheus's scrape jobs by name, as rendered for the run's stack."""
    return {job["job_name"]: job for job in prometheus_config(run)["scrape_configs"]}


def pytest_configure(config):
    # Mutation testing (tests/mutation/run.py): during mutmut's stats run, credit what shared
    # fixtures run to every test that uses them, so each mutant meets all the tests that can kill it.
    # Programs the tests start (the render CLI, the policy pack) run outside that bookkeeping, so
    # they must not inherit it: mutmut keeps the mode in this process without the variable.
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":
        from tests.mutation.fixture_credit import FixtureCredit

        config.pluginmanager.register(FixtureCredit(), "mutation-fixture-credit")
        del os.environ["MUTANT_UNDER_TEST"]
    # While mutmut runs one mutant: the mutated module's own tests first (order only).
    if "__mutmut_" in os.environ.get("MUTANT_UNDER_TEST", ""):
        from tests.mutation.killers_first import KillersFirst

        config.pluginmanager.register(KillersFirst(), "mutation-killers-first")
    # pulumiverse_grafana warns at import about its own deprecated resources, none of which we use.
    config.addinivalue_line("filterwarnings", r"ignore::DeprecationWarning:pulumiverse_grafana\..*")
