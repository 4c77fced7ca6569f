"""Offline render: run the real program for a stack under Pulumi's mock engine, with no Pulumi
CLI, cloud account, Docker engine or cluster, and write down what it would deploy.

    python -m components.tools.render --out out/                      # every stack in stacks/
    python -m components.tools.render --stack dev --out out/          # one stack (repeat --stack)
    python -m components.tools.render --placeholder-secrets --out out/   # fill in every required secret
    python -m components.tools.render diff out-old/ out-new/          # what changed, per stack
    python -m components.tools.render diff --base origin/main         # against another git revision

For each stack, <out>/<stack>/ holds resources.json (every resource: urn, type, name, parent,
inputs, sorted by urn, secret values as "[secret]"), files/<service>/<path in the container> (every
file the program gives a container), manifests/ (kubernetes objects as YAML) and dashboards/
(Grafana dashboards as JSON). The same inputs give the same bytes on any machine. <out> holds
exactly the last render: the stack folders of an earlier one are removed first, and a folder
holding anything else is refused.

Secrets: the stack file's `secure:` values cannot be decrypted without the stack's key, so each is
rendered from a placeholder; a secret the stack requires but does not declare stops that stack as
it would stop `pulumi up`, unless --placeholder-secrets asks for placeholders. Outputs show every
secret as "[secret]".

Exit codes: 0 every stack rendered; 1 a stack failed (each failure is reported, the other stacks
are still rendered); 2 the command was misused (nothing rendered).
The mock engine here is also what the tests run the program under (tests/conftest.py).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, NoReturn, Optional

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

from components import ROOT, yaml_text
from components.settings import stack_file

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


# Integers a float64 holds exactly: every int up to this size comes back as the same number.
_EXACT_INTEGERS = 2**53


def integral(value: Any) -> Any:
    """Inputs with whole numbers as ints again.

    The engine protocol carries every number as a protobuf Struct number, a float64, so the
    program's `replicas=2` arrives here as 2.0. A float64 cannot say whether it was 2 or 2.0, and
    the providers do not ask: Go writes float64(2) as 2. So a whole number is an int (up to 2**53,
    where a float64 still holds every integer), and any other number, 0.5, stays as it is.
    """
    if isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT_INTEGERS:
        return int(value)
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
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

    def engine_urns(self) -> set[str]:
        """Each resource's URN as the Pulumi engine writes it into the state: its type follows the
        whole chain of its parents' types (the mock engine's URNs name only the parent's)."""
        by_urn = {r.urn: r for r in self.resources}

        def chain(r: Resource) -> str:
            parent = by_urn.get(r.parent)  # the stack itself is not recorded, nor in the chain
            return r.type if parent is None else f"{chain(parent)}${r.type}"

        return {r.urn.rsplit("::", 2)[0] + f"::{chain(r)}::{r.name}" for r in self.resources}


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
                    # Where the floats come in: the request's Struct holds every number as one.
                    raw_inputs=integral(rpc.deserialize_properties(request.object)),
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
    """The `config:` block of stacks/Pulumi.<stack>.yaml, keys without the namespace, read as
    strictly as Pulumi reads it (components/settings/stack_file.py): a mistake is a ConfigError."""
    return stack_file.read(stack, ROOT).values()


def run_program(
    stack: str,
    config: dict,
    secrets: Optional[dict] = None,
    plain_keys: frozenset = frozenset(),
    run: Optional[Run] = None,
    secret_keys: Collection[str] = frozenset(),
    program_dir: Path = ROOT,
    project: str = NAMESPACE,
) -> Run:
    """Run __main__.py as `pulumi up` would, with `config` (keys without the namespace).

    `secrets` becomes the secret `secrets` key; `plain_keys` lists keys to hand over as if they
    had been set without --secret (to test that mistake), `secret_keys` other keys to hand over
    as if they had been. Pass `run` to keep what was recorded when the program raises.
    `program_dir` and `project`: another Pulumi program (an example), in its own folder.
    """
    run = run if run is not None else Run(stack)
    values = dict(config)
    if secrets:
        values["secrets"] = secrets
    pulumi_config = {
        f"{project}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in values.items()
    }
    secret = {f"{project}:{k}" for k in secret_keys if k in values}
    if secrets and "secrets" not in plain_keys:
        secret.add(f"{project}:secrets")

    def program():
        runpy.run_path(str(program_dir / "__main__.py"), run_name="__main__")
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
    # set_mocks already registers the stack resource: on the run's own loop too.
    with event_loops():
        # A fresh root stack resource: exports must not carry over from an earlier run.
        pulumi.runtime.settings.ROOT.set(None)
        mocks = RecordingMocks(run)
        pulumi.runtime.set_mocks(
            mocks, project=project, stack=stack, preview=False, monitor=RecordingMonitor(mocks)
        )
        pulumi.runtime.set_all_config(pulumi_config, sorted(secret))
        os.chdir(program_dir)
        try:
            pulumi.runtime.test(program)()
        finally:
            os.chdir(cwd)
            pulumi.runtime.set_all_config({}, [])
    return run


@contextmanager
def event_loops():
    """The event loop of one run of the program, and one for each engine worker, all closed at
    the end.

    The SDK runs the program on the thread's event loop and calls the mock engine from that loop's
    worker threads, where it makes a loop per thread; it closes none of them. A loop left open is
    collected later together with its sockets, in no set order, and closing it then fails on a
    descriptor already closed ("Exception ignored ... Invalid file descriptor: -1" on stderr).
    """
    worker_loops: list[asyncio.AbstractEventLoop] = []

    def worker_loop():
        worker_loops.append(asyncio.new_event_loop())
        asyncio.set_event_loop(worker_loops[-1])

    workers = ThreadPoolExecutor(initializer=worker_loop, thread_name_prefix="mock-engine")
    # The thread's loop, made now if it has none: Outputs made before the run (settings parsed
    # outside it, as tests do) wait on that loop, and the run is where they resolve.
    loop = asyncio.get_event_loop_policy().get_event_loop()
    loop.set_default_executor(workers)
    try:
        yield
    finally:
        # As asyncio.run ends: what a failed program left waiting is cancelled, then closed.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        workers.shutdown(wait=True)
        for worker in worker_loops:
            worker.close()
        loop.close()
        # Leave the thread as a fresh process has it: with no loop set, the next caller gets one
        # on demand (the SDK outside a run, as tests use it), not this closed one.
        asyncio.set_event_loop_policy(None)


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

# Written into each stack folder of a render: the mark of a folder this tool may replace.
MARKER = ".rendered"
MARKER_TEXT = "Written by `python -m components.tools.render`; the next render into this folder replaces it.\n"


def stack_names() -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))


def placeholder(name: str) -> str:
    """A stand-in for the secret `name`, of the shape the settings expect of it (a URL secret is a
    URL); it never reaches the output, where every secret is "[secret]"."""
    from components import settings as settings_module

    shaped = getattr(settings_module, "placeholder_secret", None)
    return shaped(name) if shaped is not None else f"placeholder-{name}"


def placeholder_secrets(stack: str, values: dict) -> dict:
    """A placeholder for every secret the stack file declares (set with --secret, so `secure:`)
    and every one its configuration requires; values never leave as anything but "[secret]"."""
    from components import settings as settings_module

    declared = values.get("secrets") or {}
    names = set(declared if isinstance(declared, dict) else ())
    config = {k: v for k, v in values.items() if k != "secrets"}
    names |= settings_module.required_secrets(stack, config)
    return {name: placeholder(name) for name in sorted(names)}


@dataclass(frozen=True)
class ProgramInputs:
    """What `pulumi up` would hand the program for a stack file, secure values as placeholders."""

    config: dict
    secrets: Any  # the `secrets` key (None: not set)
    plain_keys: frozenset  # `secrets` when it holds no secure value
    secret_keys: frozenset  # other keys that hold a secure value (the program refuses them)


def program_inputs(stack: str, placeholders: bool) -> ProgramInputs:
    """The stack file's config as the program would receive it.

    A `secure:` value cannot be decrypted here, so it becomes a placeholder: the secret counts as
    set. A required secret the file does not declare stays unset, and the program reports it as
    it would under `pulumi up`, unless `placeholders` fills in every required secret, as if each
    had been set with `pulumi config set --secret`.
    """
    from components import settings as settings_module

    values = stack_config(stack)
    secure = {key for key, value in values.items() if stack_file.holds_secret(value)}
    config = {k: stack_file.with_placeholders(v, k, placeholder) for k, v in values.items() if k != "secrets"}
    secrets = values.get("secrets")
    if secrets is not None:
        secrets = stack_file.with_placeholders(secrets, "secrets", placeholder)
    if placeholders:
        required = settings_module.required_secrets(stack, config)
        if required and (secrets is None or isinstance(secrets, dict)):
            secrets = {**{name: placeholder(name) for name in sorted(required)}, **(secrets or {})}
            secure.add("secrets")
    plain = frozenset({"secrets"}) if secrets is not None and "secrets" not in secure else frozenset()
    return ProgramInputs(config, secrets, plain, frozenset(secure - {"secrets"}))


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


def render_stack(stack: str, out: Path, placeholders: bool = True) -> Run:
    """Run the program for `stack` and write what it would deploy under `out`.

    `placeholders`: fill in every secret the configuration requires (the command line's
    --placeholder-secrets); without it, only the secrets the stack file declares are set.
    """
    inputs = program_inputs(stack, placeholders)
    run = run_program(stack, inputs.config, inputs.secrets, plain_keys=inputs.plain_keys, secret_keys=inputs.secret_keys)
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


def _is_stack_render(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and (path / MARKER).is_file()


def prepare_out(out: Path) -> None:
    """Make `out` an empty folder for a render, removing an earlier render in it.

    Only stack folders this tool wrote (they carry MARKER) are removed; a folder holding anything
    else is refused, so `--out ~/` or a mistyped path never loses a file.
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if not _is_stack_render(p))
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise UsageError(f"--out {out} holds files that are not an earlier render ({shown}); "
                             "give a new or empty folder")
        for earlier in out.iterdir():
            shutil.rmtree(earlier)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out {out}: {error.strerror}") from None


@dataclass
class Outcome:
    rendered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def render_stacks(stacks: list[str], out: Path, placeholders: bool) -> Outcome:
    """Render each stack into out/<stack>; a stack that fails is reported on stderr and skipped.

    A configuration error (any pulumi.RunError, as the program raises it) prints as its message
    alone, as `pulumi up` prints it; anything else is a bug and keeps its traceback.
    """
    outcome = Outcome()
    for stack in stacks:
        target = out / stack
        try:
            render_stack(stack, target, placeholders)
        except pulumi.RunError as error:
            print(f"error: {error}", file=sys.stderr)
        except Exception:  # a bug in the program: its traceback is the report
            print(f"error: stack {stack!r}: the program failed:", file=sys.stderr)
            traceback.print_exc()
        else:
            (target / MARKER).write_text(MARKER_TEXT)
            outcome.rendered.append(stack)
            continue
        outcome.failed.append(stack)
        shutil.rmtree(target, ignore_errors=True)
    return outcome


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


def diff(old: Path, new: Path, failed: Collection[str] = ()) -> str:
    """A short summary per stack of two render trees (one folder per stack in each).

    `failed`: stacks the later render could not render; they are named, not shown as removed.
    """
    folders = {p.name for p in old.iterdir() if p.is_dir()} | {p.name for p in new.iterdir() if p.is_dir()}
    report = []
    for stack in sorted(folders | set(failed)):
        if stack in failed:
            report += [f"## {stack}: not rendered (its error is above)", ""]
            continue
        lines = diff_stack(old / stack, new / stack)
        counts = {sign: sum(line.startswith(sign) for line in lines) for sign in "+-~"}
        report.append(f"## {stack}: {counts['+']} to add, {counts['-']} to remove, {counts['~']} to change")
        report += lines or ["(no changes)"]
        report.append("")
    return "\n".join(report)


# The render tool's module in a revision (a package is looked for too, should it become one).
# Where the render tool has lived in this repository's history, and the module that runs it there.
TOOLS = {
    "components/tools/render.py": "components.tools.render",
    "components/render.py": "components.render",
    "components/render/__init__.py": "components.render",
}


def _git(*args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True)
    except FileNotFoundError:
        raise UsageError("--base needs git, which is not installed") from None


def resolve_revision(revision: str) -> str:
    """The commit a revision names, if it has the render tool; else a UsageError."""
    found = _git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}")
    if found.returncode != 0:
        if b"not a git repository" in found.stderr:
            raise UsageError(f"--base {revision}: {ROOT} is not a git repository")
        raise UsageError(f"--base {revision}: no such revision in this repository")
    commit = found.stdout.decode().strip()
    if not any(_git("cat-file", "-e", f"{commit}:{path}").returncode == 0 for path in TOOLS):
        raise UsageError(f"--base {revision}: that revision is older than the render tool "
                         "(it has no components/tools/render.py); compare against a later one")
    return commit


def render_revision(revision: str, out: Path, placeholders: bool = False) -> None:
    """Render every stack as another git revision of this repository would, with its own code.

    The revision's files are exported (`git archive`), so neither the working tree nor the
    repository changes. A revision that cannot render is a UsageError naming its last words.
    """
    commit = resolve_revision(revision)
    with tempfile.TemporaryDirectory() as tree:
        archive = _git("archive", "--format=tar", commit)
        if archive.returncode != 0:
            raise UsageError(f"--base {revision}: git archive failed: {archive.stderr.decode().strip()}")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tree, filter="data")
        path, module = next((p, m) for p, m in TOOLS.items() if Path(tree, p).is_file())
        tool = Path(tree, path)
        command = [sys.executable, "-m", module, "--out", str(out)]
        # Renders older than the flag always filled every secret in: the same as passing it.
        if placeholders and "--placeholder-secrets" in tool.read_text():
            command.append("--placeholder-secrets")
        done = subprocess.run(command, cwd=tree, capture_output=True, text=True)
    if done.returncode != 0:
        said = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        last = said[-1] if said else f"exit code {done.returncode}"
        raise UsageError(f"--base {revision}: that revision cannot render ({last})")


# --- the command line ----------------------------------------------------------------------------


class UsageError(Exception):
    """The command was misused: one line, a usage hint, exit code 2."""

    def __init__(self, message: str, prog: Optional[str] = None, usage: Optional[str] = None):
        super().__init__(message)
        # Filled in by the command line from the (sub)command misused, when not given here.
        self.prog = prog
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.prog, self.format_usage().strip())


USAGE = "%(prog)s [--stack STACK]... [--placeholder-secrets] --out DIR  |  %(prog)s diff ..."
DIFF_USAGE = "%(prog)s (OLD [NEW] | --base REVISION [NEW]) [--placeholder-secrets]"


def _parser() -> tuple[_Parser, _Parser]:
    parser = _Parser(prog="python -m components.tools.render", usage=USAGE, description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", metavar="diff")
    compare = commands.add_parser("diff", prog=f"{parser.prog} diff", usage=DIFF_USAGE,
                                  help="summarise what changed between two renders")
    compare.add_argument("old", nargs="?", type=Path, help="an earlier render (a folder per stack)")
    compare.add_argument("new", nargs="?", type=Path, help="a later render; default: render the working tree")
    compare.add_argument("--base", metavar="REVISION", help="render this git revision as the earlier render")
    # Given after `diff` too; SUPPRESS keeps the subcommand from resetting a flag given before it.
    compare.add_argument("--placeholder-secrets", action="store_true", default=argparse.SUPPRESS,
                         help="as for a render")
    parser.add_argument("--stack", action="append", help="a stack in stacks/ (repeat; default: all)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="where to write the render (a new or empty "
                        "folder, or an earlier render, which is replaced)")
    parser.add_argument("--placeholder-secrets", action="store_true",
                        help="fill in every secret the configuration requires with a placeholder; without "
                        "it only the secrets the stack file declares (secure:) are set")
    return parser, compare


def _stacks(requested: Optional[list[str]]) -> list[str]:
    known = stack_names()
    if not known:
        raise UsageError(f"no stack files in {ROOT / 'stacks'}")
    chosen = list(dict.fromkeys(requested or known))
    for stack in chosen:
        if stack not in known:
            raise UsageError(f"no stack file {stack_file.display_name(stack)}; the stacks are {', '.join(known)}")
    return chosen


def _report(outcome: Outcome, where: str) -> None:
    done = f"rendered {', '.join(outcome.rendered) or 'no stack'} {where}"
    if outcome.failed:
        done += f"; failed: {', '.join(outcome.failed)}"
    print(done, file=sys.stderr)


def _render_command(parser: _Parser, args: argparse.Namespace) -> int:
    if args.out is None:
        parser.error("--out DIR is required: the folder to write the render to")
    stacks = _stacks(args.stack)
    prepare_out(args.out)
    outcome = render_stacks(stacks, args.out, args.placeholder_secrets)
    _report(outcome, f"into {args.out}")
    return 1 if outcome.failed else 0


def _diff_command(parser: _Parser, args: argparse.Namespace) -> int:
    # Every misuse is found before anything is rendered.
    old, new = args.old, args.new
    if args.base is not None:
        if new is not None:
            parser.error("with --base, give at most one folder: the later render")
        old, new = None, old
    elif old is None:
        parser.error("diff needs OLD (a folder with an earlier render) or --base REVISION")
    for folder in (old, new):
        if folder is not None and not folder.is_dir():
            parser.error(f"no folder {folder}")
    outcome = Outcome()
    with tempfile.TemporaryDirectory() as scratch:
        if args.base is not None:
            # First, before anything is rendered: the revision is checked (resolve_revision).
            old = Path(scratch) / "base"
            render_revision(args.base, old, args.placeholder_secrets)
        if new is None:
            new = Path(scratch) / "head"
            new.mkdir()
            outcome = render_stacks(stack_names(), new, args.placeholder_secrets)
            if outcome.failed:
                _report(outcome, "from the working tree")
        text = diff(old, new, outcome.failed)
    print(text)
    return 1 if outcome.failed else 0


def main(argv: Optional[list[str]] = None) -> int:
    parser, compare = _parser()
    args: Optional[argparse.Namespace] = None
    try:
        try:
            args = parser.parse_args(argv)
            if args.command == "diff":
                code = _diff_command(compare, args)
            else:
                code = _render_command(parser, args)
        except UsageError as error:
            command = compare if args is not None and args.command == "diff" else parser
            print(f"{error.prog or command.prog}: error: {error}", file=sys.stderr)
            print(f"{error.usage or command.format_usage().strip()}  (--help for more)", file=sys.stderr)
            return 2
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, with the status a shell gives a program
        # stopped by SIGPIPE. Python would try stdout again at exit, so it goes to /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
