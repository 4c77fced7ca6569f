"""Shared fixtures: run the real program (__main__.py) under Pulumi mocks for a stack file.

The mocks stand in for the engine only: they record every resource the program registers, with
its inputs as the engine would receive them (secret values still marked secret), and the stack's
exports. Everything the program renders is then checked for real by the tests.
"""

from __future__ import annotations

import copy
import json
import os
import runpy
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pulumi
import pytest
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
STACKS = ("dev", "staging", "prod")
NAMESPACE = "observability"

# Stand-in secret values: distinctive, so a test can search every input and file for them.
SECRETS = {
    "slack_webhook_url": "https://hooks.slack.example/T000/B000/slack-secret-4f1c",
    "pagerduty_routing_key": "pagerduty-secret-77aa",
    "postgres_password": "postgres-secret-9b2e",
    "redis_password": "redis-secret-c3d4",
    "remote_write_password": "remote-write-secret-e5f6",
    "loki_s3_access_key_id": "AKIAEXAMPLESECRET123",
    "loki_s3_secret_access_key": "loki-s3-secret-a1b2",
    "loki_gcs_service_account": '{"type": "service_account", "private_key": "gcs-secret-d4e5"}',
    "grafana_admin_password": "grafana-secret-f7a8",
    "grafana_api_token": "glsa_grafana-token-secret-b9c0",
}


def is_secret(value: Any) -> bool:
    return rpc.is_rpc_secret(value)


def unwrap(value: Any) -> Any:
    """Inputs with secret markers removed, for reading what the resource will receive."""
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


@dataclass
class Resource:
    type: str
    name: str
    raw_inputs: dict
    urn: str = ""
    parent: str = ""
    delete_before_replace: bool = False
    protect: bool = False
    retain_on_delete: bool = False
    # The provider reference ("<urn>::<id>") and the urns the resource depends on.
    provider: str = ""
    dependencies: tuple = ()

    @property
    def inputs(self) -> dict:
        return unwrap(self.raw_inputs)


@dataclass
class Run:
    stack: str
    resources: list[Resource] = field(default_factory=list)
    outputs: dict = field(default_factory=dict)
    secret_outputs: set = field(default_factory=set)

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str) -> Resource:
        found = [r for r in self.of_type(type_) if r.name == name]
        assert len(found) == 1, f"{self.stack}: expected one {type_} named {name}, found {len(found)}"
        return found[0]

    def names(self, type_: str) -> set[str]:
        return {r.name for r in self.of_type(type_)}


class RecordingMonitor(MockMonitor):
    """The mock engine, also noting each resource's options (plain mocks do not see them)."""

    def __init__(self, mocks: "RecordingMocks"):
        super().__init__(mocks)
        self.run = mocks.run

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.run.resources.append(
                Resource(
                    type=request.type,
                    name=request.name,
                    raw_inputs=rpc.deserialize_properties(request.object),
                    urn=response.urn,
                    parent=request.parent,
                    delete_before_replace=request.deleteBeforeReplace,
                    protect=request.protect,
                    retain_on_delete=request.retainOnDelete,
                    provider=request.provider,
                    dependencies=tuple(request.dependencies),
                )
            )
        return response


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, run: Run):
        self.run = run

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        state = dict(unwrap(args.inputs))
        if args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = "generated-grafana-password-7c1d"
        if args.typ == "docker:index/remoteImage:RemoteImage":
            state["imageId"] = f"sha256:{args.name}"
        if args.typ.startswith("kubernetes:") and "metadata" in state:
            # The engine would auto-name objects that have no name: do the same.
            meta = dict(state.get("metadata") or {})
            meta.setdefault("name", f"{args.name}-0a1b2c3d")
            state["metadata"] = meta
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


def stack_config(stack: str) -> dict:
    """The `config:` block of stacks/Pulumi.<stack>.yaml, keys without the namespace."""
    document = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    prefix = NAMESPACE + ":"
    return {k[len(prefix):]: v for k, v in document["config"].items() if k.startswith(prefix)}


def merge(base: Any, override: Any) -> Any:
    """Deep merge: dicts merge key by key; anything else in the override replaces the base."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base.get(key), value) if key in base else value
        return merged
    return copy.deepcopy(override)


def run_program(
    stack: str,
    config: dict,
    secrets: Optional[dict] = None,
    plain_keys: frozenset = frozenset(),
    run: Optional[Run] = None,
) -> Run:
    """Run __main__.py as `pulumi up` would, with `config` (keys without the namespace).

    `secrets` becomes the secret `secrets` key; `plain_keys` lists keys to hand over as if they
    had been set without --secret (to test that mistake). Pass `run` to keep what was recorded
    when the program raises.
    """
    run = run if run is not None else Run(stack)
    # A fresh root stack resource: exports must not carry over from an earlier run.
    pulumi.runtime.settings.ROOT.set(None)
    mocks = RecordingMocks(run)
    pulumi.runtime.set_mocks(
        mocks, project=NAMESPACE, stack=stack, preview=False, monitor=RecordingMonitor(mocks)
    )
    values = dict(config)
    if secrets:
        values["secrets"] = secrets
    pulumi_config = {
        f"{NAMESPACE}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in values.items()
    }
    secret_keys = [f"{NAMESPACE}:secrets"] if secrets and "secrets" not in plain_keys else []
    pulumi.runtime.set_all_config(pulumi_config, secret_keys)

    def program():
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        root = pulumi.runtime.get_root_resource()
        exported = dict(root.outputs) if root is not None else {}

        async def collect():
            for name, value in exported.items():
                output = pulumi.Output.from_input(value)
                run.outputs[name] = await output.future()
                if await output.is_secret():
                    run.secret_outputs.add(name)

        return collect()

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        pulumi.runtime.test(program)()
    finally:
        os.chdir(cwd)
        pulumi.runtime.set_all_config({}, [])
    return run


# The secrets each shipped stack needs before `pulumi up`, as its header comment tells the operator.
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


CONTROLLERS = ("kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:DaemonSet")
MOCK_NAME_SUFFIX = "-0a1b2c3d"


def controller(run: Run, service: str) -> Resource:
    found = [r for r in run.resources if r.type in CONTROLLERS and r.name == service]
    assert len(found) == 1, f"{run.stack}: no single controller for {service}"
    return found[0]


def container_files(run: Run, service: str) -> dict[str, str]:
    """Every file the program gives a service's container, by its path inside the container.

    On docker: the container's uploads. On kubernetes: follow the pod's volume mounts to the
    ConfigMaps and Secrets they name, so the mount wiring is checked too.
    """
    containers = [r for r in run.of_type("docker:index/container:Container") if r.name == service]
    if containers:
        return {u["file"]: u["content"] for u in containers[0].inputs.get("uploads") or []}
    pod = controller(run, service).inputs["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    # Generated names, as the mocks give them.
    generated = {
        r.name + MOCK_NAME_SUFFIX: r
        for r in run.resources
        if r.type in ("kubernetes:core/v1:ConfigMap", "kubernetes:core/v1:Secret")
    }
    files = {}
    for mount in pod["containers"][0].get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        ref = (volume.get("configMap") or {}).get("name") or (volume.get("secret") or {}).get("secretName")
        if ref is None:
            continue
        source = generated[ref]
        data = source.inputs.get("data") or source.inputs.get("stringData") or {}
        for key, content in data.items():
            files[f"{mount['mountPath']}/{key}"] = content
    return files


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
        text = text.replace(prefix, str(root) + prefix)
    return text


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
    # pulumiverse_grafana warns at import about its own deprecated resources, none of which we use.
    config.addinivalue_line("filterwarnings", r"ignore::DeprecationWarning:pulumiverse_grafana\..*")
