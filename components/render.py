"""Offline render: run the real program for a stack under Pulumi's mock engine, with no Pulumi
CLI, cloud account, Docker engine or cluster, and write down what it would deploy.

    python -m components.render --stack dev --out out/          # one stack (repeat --stack)
    python -m components.render --out out/                      # every stack in stacks/
    python -m components.render diff out-old/ out-new/          # what changed, per stack
    python -m components.render diff --base origin/main         # against another git revision

For each stack, <out>/<stack>/ holds resources.json (every resource: urn, type, name, parent,
inputs, sorted by urn, secret values as "[secret]"), files/<service>/<path in the container> (every
file the program gives a container), manifests/ (kubernetes objects as YAML) and dashboards/
(Grafana dashboards as JSON). The same inputs give the same bytes on any machine.

Secrets: the stack file's `secure:` values cannot be read without the stack's key, so every secret
the stack declares or requires is rendered from a placeholder; outputs show it as "[secret]".
The mock engine here is also what the tests run the program under (tests/conftest.py).
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

from components import yaml_text

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "observability"
SECRET = "[secret]"


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
    document = yaml_text.load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    prefix = NAMESPACE + ":"
    return {k[len(prefix):]: v for k, v in document["config"].items() if k.startswith(prefix)}


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


# --- rendering a stack to files ------------------------------------------------------------------


def stack_names() -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))


def placeholder_secrets(stack: str, values: dict) -> dict:
    """A placeholder for every secret the stack file declares (set with --secret, so `secure:`)
    and every one its configuration requires; values never leave as anything but "[secret]"."""
    from components import settings as settings_module

    declared = values.get("secrets") or {}
    names = set(declared if isinstance(declared, dict) else ())
    config = {k: v for k, v in values.items() if k != "secrets"}
    names |= settings_module.required_secrets(stack, config)
    return {name: f"placeholder-{name}" for name in sorted(names)}


def _masked(value: Any) -> Any:
    if is_secret(value):
        return SECRET
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _dump(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_stack(stack: str, out: Path) -> Run:
    """Run the program for `stack` and write what it would deploy under `out`."""
    values = stack_config(stack)
    secrets = placeholder_secrets(stack, values)
    run = run_program(stack, {k: v for k, v in values.items() if k != "secrets"}, secrets)
    resources = sorted(
        (
            {"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent, "inputs": _masked(r.raw_inputs)}
            for r in run.resources
        ),
        key=lambda r: r["urn"],
    )
    _write(out / "resources.json", _dump(resources))
    for service in sorted(run.outputs.get("services", [])):
        for path, content in sorted(container_files(run, service).items()):
            text = SECRET + "\n" if path.startswith("/run/secrets/") else content
            _write(out / "files" / service / path.lstrip("/"), text)
    for r in run.resources:
        if r.type.startswith("kubernetes:"):
            _, group_version, kind = r.type.split(":")
            manifest = {"apiVersion": group_version.removeprefix("core/"), "kind": kind, **_masked(r.raw_inputs)}
            text = yaml_text.dump(manifest)
            _write(out / "manifests" / f"{kind}-{r.name}.yaml", text)
        elif r.type == "grafana:oss/dashboard:Dashboard":
            model = json.loads(r.inputs["configJson"])
            _write(out / "dashboards" / f"{model['uid']}.json", _dump(model))
    return run


# --- comparing two renders -----------------------------------------------------------------------


def _changed_keys(old: Any, new: Any, path: str = "", depth: int = 3) -> list[str]:
    """Dotted paths where two inputs differ, down to `depth` levels."""
    if old == new:
        return []
    if depth == 0 or not (isinstance(old, dict) and isinstance(new, dict)):
        return [path or "(value)"]
    found = []
    for key in sorted(set(old) | set(new)):
        found += _changed_keys(old.get(key), new.get(key), f"{path}.{key}" if path else key, depth - 1)
    return found


def diff_stack(old: Path, new: Path) -> list[str]:
    """Lines saying which resources a stack adds, removes and changes, and the changed keys."""

    def load(directory: Path) -> dict[str, dict]:
        path = directory / "resources.json"
        return {r["urn"]: r for r in json.loads(path.read_text())} if path.exists() else {}

    before, after = load(old), load(new)
    lines = [f"+ {after[u]['type']} {after[u]['name']}" for u in sorted(set(after) - set(before))]
    lines += [f"- {before[u]['type']} {before[u]['name']}" for u in sorted(set(before) - set(after))]
    for urn in sorted(set(before) & set(after)):
        keys = _changed_keys(before[urn]["inputs"], after[urn]["inputs"])
        if keys:
            lines.append(f"~ {after[urn]['type']} {after[urn]['name']}: {', '.join(keys)}")
    return lines


def diff(old: Path, new: Path) -> str:
    """A short summary per stack of two render trees (one folder per stack in each)."""
    stacks = sorted({p.name for p in old.iterdir() if p.is_dir()} | {p.name for p in new.iterdir() if p.is_dir()})
    report = []
    for stack in stacks:
        lines = diff_stack(old / stack, new / stack)
        counts = {sign: sum(line.startswith(sign) for line in lines) for sign in "+-~"}
        report.append(f"## {stack}: {counts['+']} to add, {counts['-']} to remove, {counts['~']} to change")
        report += lines or ["(no changes)"]
        report.append("")
    return "\n".join(report)


def render_revision(revision: str, out: Path) -> None:
    """Render every stack as another git revision of this repository would."""
    with tempfile.TemporaryDirectory() as worktree:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", worktree, revision],
                       check=True, capture_output=True)
        try:
            subprocess.run([sys.executable, "-m", "components.render", "--out", str(out)], cwd=worktree, check=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", worktree], capture_output=True)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.render", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command")
    compare = commands.add_parser("diff", help="summarise what changed between two renders")
    compare.add_argument("old", nargs="?", type=Path, help="an earlier render (a folder per stack)")
    compare.add_argument("new", nargs="?", type=Path, help="a later render; default: render the working tree")
    compare.add_argument("--base", help="render this git revision as the earlier render")
    parser.add_argument("--stack", action="append", help="a stack in stacks/ (repeat; default: all)")
    parser.add_argument("--out", type=Path, help="where to write the render")
    args = parser.parse_args(argv)

    if args.command == "diff":
        with tempfile.TemporaryDirectory() as scratch:
            old = args.old
            if args.base:
                old = Path(scratch) / "base"
                render_revision(args.base, old)
            new = args.new
            if new is None:
                new = Path(scratch) / "head"
                for stack in stack_names():
                    render_stack(stack, new / stack)
            if old is None:
                parser.error("diff needs OLD (a folder) or --base (a git revision)")
            print(diff(old, new))
        return 0
    if args.out is None:
        parser.error("--out is required")
    for stack in args.stack or stack_names():
        if stack not in stack_names():
            parser.error(f"no stack file stacks/Pulumi.{stack}.yaml")
        render_stack(stack, args.out / stack)
    return 0


if __name__ == "__main__":
    sys.exit(main())
