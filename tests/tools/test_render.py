"""The offline render: what `pulumi up` would deploy, written down without any engine, and a diff
a reviewer can read. The command line's own behaviour (exit codes, what stderr says, the output
folder, git revisions, a closed pipe) is tested by running it, in a copy of the project whose
stack files each test writes."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pulumi
import pytest
import yaml

from components import settings
from components.settings import stack_file
from components.tools import render
from conftest import ROOT, STACKS, container_files, run_program, stack_config

# The project as the render needs it: the program, its components and configs (stacks/ is the test's).
PROJECT = ("__main__.py", "Pulumi.yaml", "components", "configs")
# The smallest stack that renders: the docker platform, every key at its default.
DOCKER = "config:\n  observability:platform: docker\n"
# Every program run of a copy appends a line here when RENDER_LOG names a file: a test can see
# whether anything was rendered.
LOGGING_MAIN = 'import os\nif os.environ.get("RENDER_LOG"):\n    open(os.environ["RENDER_LOG"], "a").write("rendered\\n")\n'


def copy_project(dest: Path, stacks: dict[str, str]) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    (dest / "__main__.py").write_text(LOGGING_MAIN + (ROOT / "__main__.py").read_text())
    write_stacks(dest, stacks)
    return dest


def write_stacks(project: Path, stacks: dict[str, str]) -> None:
    folder = project / "stacks"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name, text in stacks.items():
        (folder / f"Pulumi.{name}.yaml").write_text(textwrap.dedent(text))


def cli(project: Path, *args: str, log: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "RENDER_LOG": str(log) if log else ""}
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "-m", "components.tools.render", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_usage_error(result: subprocess.CompletedProcess, says: str) -> None:
    """Exit code 2, a one-line error and a usage hint on stderr, nothing else."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert "error: " in lines[0] and says in lines[0], lines[0]
    assert lines[1].startswith("usage: python -m components.tools.render"), lines[1]
    assert result.stdout == ""


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under a folder with its bytes (symlinks as their target)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        if path.is_symlink():
            found[key] = os.readlink(path).encode()
        elif path.is_file():
            found[key] = path.read_bytes()
    return found


# --- the shipped stacks -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("render") / "out"
    # The shipped stacks name the secrets they need only in comments: placeholders stand in.
    result = subprocess.run([sys.executable, "-m", "components.tools.render", "--placeholder-secrets", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


def test_every_stack_is_rendered(rendered):
    assert sorted(p.name for p in rendered.iterdir()) == sorted(STACKS)


@pytest.mark.parametrize("stack", STACKS)
def test_resources_are_listed_by_urn_with_their_inputs(rendered, stack):
    resources = json.loads((rendered / stack / "resources.json").read_text())
    urns = [r["urn"] for r in resources]
    assert urns == sorted(urns) and len(set(urns)) == len(urns)
    assert all(set(r) == {"urn", "type", "name", "parent", "inputs"} for r in resources)
    types = {r["type"] for r in resources}
    platform = "docker:index/container:Container" if stack == "dev" else "kubernetes:apps/v1:StatefulSet"
    assert {platform, "grafana:oss/dashboard:Dashboard", "observability:index:Stack"} <= types


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_secrets_are_never_written(rendered, stack):
    text = "".join(p.read_text() for p in (rendered / stack).rglob("*") if p.is_file())
    assert "placeholder" not in text
    resources = json.loads((rendered / stack / "resources.json").read_text())
    secrets = [r for r in resources if r["type"] == "kubernetes:core/v1:Secret"]
    assert secrets and all(r["inputs"]["stringData"] == render.SECRET for r in secrets)
    assert (rendered / stack / "files/alertmanager/run/secrets/slack_webhook_url").read_text() == "[secret]\n"


def test_files_are_what_the_containers_get(rendered):
    run = run_program("dev", stack_config("dev"))
    for path, content in container_files(run, "prometheus").items():
        assert (rendered / "dev/files/prometheus" / path.lstrip("/")).read_text() == content
    assert (rendered / "dev/files/alloy/etc/alloy/config.alloy").read_text() == container_files(run, "alloy")["/etc/alloy/config.alloy"]


def test_kubernetes_stacks_get_manifests_and_every_stack_its_dashboards(rendered):
    assert not (rendered / "dev/manifests").exists()
    manifest = yaml.safe_load((rendered / "prod/manifests/StatefulSet-prometheus.yaml").read_text())
    assert manifest["apiVersion"] == "apps/v1" and manifest["kind"] == "StatefulSet"
    assert manifest["spec"]["replicas"] == 2
    assert yaml.safe_load((rendered / "prod/manifests/Service-loki-distributor.yaml").read_text())["apiVersion"] == "v1"
    for stack in STACKS:
        dashboards = {p.stem for p in (rendered / stack / "dashboards").glob("*.json")}
        assert {"system-overview", "logs", "observability-stack"} <= dashboards
        assert json.loads((rendered / stack / "dashboards/logs.json").read_text())["uid"] == "logs"


def test_the_render_is_byte_identical_across_runs(rendered, tmp_path):
    assert render.main(["--placeholder-secrets", "--out", str(tmp_path)]) == 0
    assert tree(tmp_path) == tree(rendered)


def write_resources(directory, resources):
    directory.mkdir(parents=True)
    (directory / "resources.json").write_text(json.dumps(resources))


def resource(name, **inputs):
    return {"urn": f"urn:pulumi:dev::observability::t::{name}", "type": "t", "name": name, "parent": "", "inputs": inputs}


def test_the_diff_names_what_is_added_removed_and_changed(tmp_path):
    write_resources(tmp_path / "old/dev", [resource("kept", a=1), resource("gone"), resource("changed", spec={"replicas": 1, "image": "x"})])
    write_resources(tmp_path / "new/dev", [resource("kept", a=1), resource("new"), resource("changed", spec={"replicas": 2, "image": "x"})])
    write_resources(tmp_path / "old/prod", [resource("same")])
    write_resources(tmp_path / "new/prod", [resource("same")])
    assert render.diff(tmp_path / "old", tmp_path / "new").splitlines() == [
        "## dev: 1 to add, 1 to remove, 1 to change",
        "+ t new",
        "- t gone",
        "~ t changed: spec.replicas",
        "",
        "## prod: 0 to add, 0 to remove, 0 to change",
        "(no changes)",
    ]


def test_a_stack_the_later_render_could_not_render_is_named_not_shown_as_removed(tmp_path):
    write_resources(tmp_path / "old/dev", [resource("kept")])
    write_resources(tmp_path / "old/prod", [resource("kept")])
    write_resources(tmp_path / "new/dev", [resource("kept")])
    (tmp_path / "new/prod").mkdir()
    lines = render.diff(tmp_path / "old", tmp_path / "new", failed=["prod"]).splitlines()
    assert lines[-1] == "## prod: not rendered (its error is above)"
    assert not [line for line in lines if line.startswith("- ")]


def test_a_threshold_change_shows_in_the_diff_as_the_one_config_that_carries_it(rendered, tmp_path):
    run = render.run_program("dev", {**stack_config("dev"), "alerts": {"overrides": {"HostHighCpu": {"threshold": 97}}}})
    resources = sorted(({"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent, "inputs": render._masked(r.raw_inputs)}
                        for r in run.resources), key=lambda r: r["urn"])
    write_resources(tmp_path / "dev", resources)
    lines = render.diff_stack(rendered / "dev", tmp_path / "dev")
    assert lines == ["~ docker:index/container:Container prometheus: labels, uploads"]


def test_the_diff_against_a_git_revision_renders_that_revision_without_touching_the_repository(tmp_path):
    before = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True).stdout
    render.render_revision("HEAD", tmp_path / "base", placeholders=True)
    assert sorted(p.name for p in (tmp_path / "base").iterdir()) == sorted(STACKS)
    assert json.loads((tmp_path / "base/dev/resources.json").read_text())
    assert subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True).stdout == before


# --- integers -----------------------------------------------------------------------------------


class TestIntegersStayIntegers:
    """The engine carries every number as a float64; whole numbers come back as ints, others as
    they were."""

    @pytest.mark.parametrize("number", [0.0, 1.0, 2.0, -3.0, 8888.0, 65535.0, float(2**53), -float(2**53)])
    def test_a_whole_number_becomes_an_int(self, number: float):
        restored = render.integral(number)
        assert type(restored) is int and restored == number

    @pytest.mark.parametrize("number", [0.5, -1.25, 1e-9, 99.9, 2.0**53 + 2, 1e300, float("inf"), -float("inf")])
    def test_any_other_number_stays_as_it_is(self, number: float):
        restored = render.integral(number)
        assert type(restored) is float and restored == number

    @pytest.mark.parametrize("value", [True, False, "2.0", "8888", None])
    def test_what_is_not_a_float_is_left_alone(self, value):
        restored = render.integral(value)
        assert type(restored) is type(value) and restored == value

    def test_numbers_at_any_depth_are_restored(self):
        value = {"spec": {"replicas": 2.0, "ports": [{"port": 8888.0, "weight": 0.5}]}, "list": [[1.0]]}
        assert render.integral(value) == {"spec": {"replicas": 2, "ports": [{"port": 8888, "weight": 0.5}]}, "list": [[1]]}
        assert type(render.integral(value)["spec"]["ports"][0]["port"]) is int

    def test_the_mock_engine_records_numbers_as_the_program_gave_them(self):
        class Probe(pulumi.CustomResource):
            def __init__(self, name: str, props: dict):
                super().__init__("test:index:Probe", name, props)

        props = {"replicas": 2, "port": 8888, "zero": 0, "negative": -3, "half": 0.5, "ratio": 1.25,
                 "flag": True, "nested": {"items": [1, 2.5, {"n": 3}]}, "secret": pulumi.Output.secret(7)}
        run = render.Run("probe")
        mocks = render.RecordingMocks(run)
        pulumi.runtime.settings.ROOT.set(None)
        pulumi.runtime.set_mocks(mocks, project=render.NAMESPACE, stack="probe", preview=False,
                                 monitor=render.RecordingMonitor(mocks))
        pulumi.runtime.test(lambda: Probe("probe", props))()
        inputs = run.one("test:index:Probe", "probe").inputs
        assert inputs == {"replicas": 2, "port": 8888, "zero": 0, "negative": -3, "half": 0.5, "ratio": 1.25,
                          "flag": True, "nested": {"items": [1, 2.5, {"n": 3}]}, "secret": 7}
        kinds = {k: type(v) for k, v in inputs.items() if k != "nested"}
        assert kinds == {"replicas": int, "port": int, "zero": int, "negative": int, "half": float, "ratio": float,
                         "flag": bool, "secret": int}
        assert [type(v) for v in inputs["nested"]["items"]] == [int, float, dict]

    @pytest.mark.parametrize("stack", STACKS)
    def test_no_whole_number_is_written_as_a_float(self, rendered, stack):
        def floats(value, path=""):
            if isinstance(value, float):
                yield path, value
            elif isinstance(value, dict):
                for k, v in value.items():
                    yield from floats(v, f"{path}.{k}")
            elif isinstance(value, list):
                for i, v in enumerate(value):
                    yield from floats(v, f"{path}[{i}]")

        documents = {"resources.json": json.loads((rendered / stack / "resources.json").read_text())}
        documents |= {p.name: yaml.safe_load(p.read_text()) for p in (rendered / stack / "manifests").glob("*.yaml")}
        for name, document in documents.items():
            whole = [(path, number) for path, number in floats(document) if number.is_integer()]
            assert not whole, f"{name}: {whole[:5]}"

    def test_replicas_and_ports_are_ints_in_the_manifests_and_resources(self, rendered):
        manifest = yaml.safe_load((rendered / "prod/manifests/StatefulSet-prometheus.yaml").read_text())
        assert type(manifest["spec"]["replicas"]) is int
        ports = manifest["spec"]["template"]["spec"]["containers"][0]["ports"]
        assert ports and all(type(p["containerPort"]) is int for p in ports)
        dev = json.loads((rendered / "dev/resources.json").read_text())
        published = [p for r in dev if r["type"] == "docker:index/container:Container" for p in r["inputs"].get("ports", [])]
        assert published and all(type(p["internal"]) is int and type(p["external"]) is int for p in published)


# --- configuration errors, and every stack that can be rendered ---------------------------------


BAD_STACKS = {
    # A value the settings refuse.
    "settings": ("""\
        config:
          observability:platform: docker
          observability:prometheus: {port: 70000}
        """, ["prometheus.port"]),
    # A problem found while the program renders (a RunError of its own).
    "program": ("""\
        config:
          observability:platform: docker
          observability:alerts: {overrides: {NoSuchAlert: {enabled: false}}}
        """, ["alerts.overrides.NoSuchAlert"]),
    # The stack file: a duplicate key, a YAML syntax error, a look-alike namespace.
    "duplicate": ("""\
        config:
          observability:platform: docker
          observability:platform: kubernetes
        """, ["stacks/Pulumi.bad.yaml", "line 3"]),
    "syntax": ("""\
        config:
          observability:platform: docker
          observability:cluster: "laptop
        """, ["stacks/Pulumi.bad.yaml", "line 4"]),
    "lookalike": ("""\
        config:
          observability:platform: docker
          observabilty:loki: {retention: 30d}
        """, ["stacks/Pulumi.bad.yaml", "line 3", "observabilty:loki"]),
    # A secret the configuration requires that the stack file does not declare.
    "secret": ("""\
        config:
          observability:platform: docker
          observability:alertmanager: {receivers: {slack: {enabled: true}}}
        """, ["secrets.slack_webhook_url"]),
}


class TestEventLoops:
    """Every event loop a run of the program opens is closed when the run ends, whether the program
    succeeded or failed. A loop left open is collected later with its sockets in no set order, and
    its close then prints "Exception ignored ... Invalid file descriptor" on a clean exit."""

    @staticmethod
    def open_loops() -> list:
        gc.collect()
        return [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and not o.is_closed()]

    def test_a_run_that_renders_leaves_no_event_loop_open(self):
        before = {id(loop) for loop in self.open_loops()}
        run_program("dev", {"platform": "docker"})
        assert [loop for loop in self.open_loops() if id(loop) not in before] == []

    def test_a_run_that_fails_leaves_no_event_loop_open(self):
        before = {id(loop) for loop in self.open_loops()}
        with pytest.raises(Exception, match="NoSuchAlert"):
            run_program("dev", {"platform": "docker", "alerts": {"overrides": {"NoSuchAlert": {"enabled": False}}}})
        assert [loop for loop in self.open_loops() if id(loop) not in before] == []


class TestConfigurationErrors:
    """A configuration error, wherever it is found, prints as its message alone (exit code 1), and
    the other stacks are still rendered: the failing stack (`bad`) renders first, so the next one
    also shows that a failure leaves nothing behind in the mock engine."""

    @pytest.mark.parametrize("kind", sorted(BAD_STACKS))
    def test_a_failing_stack_is_reported_cleanly_and_the_others_are_rendered(self, kind: str, tmp_path: Path):
        text, says = BAD_STACKS[kind]
        project = copy_project(tmp_path / "project", {"bad": text, "good": DOCKER})
        result = cli(project, "--out", str(tmp_path / "out"))
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("error: stack 'bad': ")
        for fragment in says:
            assert fragment in result.stderr
        assert result.stderr.splitlines()[-1] == f"rendered good into {tmp_path / 'out'}; failed: bad"
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good"]
        assert (tmp_path / "out/good/resources.json").is_file()

    def test_the_summary_names_every_failure(self, tmp_path: Path):
        stacks = {f"bad-{kind}": text for kind, (text, _) in BAD_STACKS.items()}
        project = copy_project(tmp_path / "project", {**stacks, "good": DOCKER})
        result = cli(project, "--out", str(tmp_path / "out"))
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.splitlines()[-1] == (
            f"rendered good into {tmp_path / 'out'}; failed: {', '.join(sorted(stacks))}"
        )
        for stack in stacks:
            assert f"error: stack '{stack}': " in result.stderr

    def test_a_render_of_good_stacks_exits_zero(self, tmp_path: Path):
        project = copy_project(tmp_path / "project", {"a": DOCKER, "b": DOCKER})
        result = cli(project, "--out", str(tmp_path / "out"))
        assert result.returncode == 0, result.stderr
        assert result.stderr == f"rendered a, b into {tmp_path / 'out'}\n"


# --- secrets ------------------------------------------------------------------------------------

# A feature that requires a secret, per stack: its keys (docker, so the render is quick) and the secret.
NEEDS_SECRET = {
    "slack": ("observability:alertmanager: {receivers: {slack: {enabled: true}}}", "slack_webhook_url"),
    "pagerduty": ("observability:alertmanager: {receivers: {pagerduty: {enabled: true}}}", "pagerduty_routing_key"),
    "watchdog": ("observability:alertmanager: {receivers: {watchdog: {enabled: true}}}", "watchdog_url"),
    "postgres": ("observability:exporters: {postgres: {enabled: true, host: db.example.com, user: exporter}}",
                 "postgres_password"),
    "remote-write": ("observability:prometheus: {remote_write: {url: 'https://mimir.example.com/api/v1/push', username: u}}",
                     "remote_write_password"),
    "grafana-external": ("observability:grafana: {mode: external, url: 'https://grafana.example.com'}", "grafana_api_token"),
}
CIPHERTEXT = "v1:AAAAAAAAAAAAAAAAAAAAAB+ciphertext-never-rendered"


def needs_secret(stack: str, declared: bool) -> str:
    keys, secret = NEEDS_SECRET[stack]
    text = f"config:\n  observability:platform: docker\n  {keys}\n"
    if declared:
        text += f"  observability:secrets:\n    {secret}:\n      secure: {CIPHERTEXT}\n"
    return text


@pytest.fixture(scope="module")
def secret_renders(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """The NEEDS_SECRET stacks rendered three ways: without the secret, with it declared
    (`secure:`), and without it but with --placeholder-secrets."""
    results = {}
    for mode, declared, flags in (("undeclared", False, []), ("declared", True, []),
                                  ("placeholders", False, ["--placeholder-secrets"])):
        base = tmp_path_factory.mktemp(mode)
        project = copy_project(base / "project", {s: needs_secret(s, declared) for s in NEEDS_SECRET})
        results[mode] = (cli(project, *flags, "--out", str(base / "out")), base / "out")
    return results


class TestSecrets:
    @pytest.mark.parametrize("stack", sorted(NEEDS_SECRET))
    def test_a_required_secret_the_stack_does_not_declare_is_reported_as_the_program_reports_it(self, secret_renders, stack):
        result, out = secret_renders["undeclared"]
        assert result.returncode == 1 and "Traceback" not in result.stderr
        values = stack_file.parse(stack, needs_secret(stack, declared=False)).values()
        with pytest.raises(settings.ConfigError) as program:
            settings.parse(stack, values)
        assert str(program.value) in result.stderr
        assert f"secrets.{NEEDS_SECRET[stack][1]}" in str(program.value)
        assert not (out / stack).exists()

    @pytest.mark.parametrize("stack", sorted(NEEDS_SECRET))
    def test_a_declared_secret_counts_as_set_and_is_never_written(self, secret_renders, stack):
        result, out = secret_renders["declared"]
        assert result.returncode == 0, result.stderr
        text = "".join(p.read_text() for p in (out / stack).rglob("*") if p.is_file())
        assert render.SECRET in text
        assert CIPHERTEXT not in text and "placeholder" not in text

    @pytest.mark.parametrize("stack", sorted(NEEDS_SECRET))
    def test_placeholder_secrets_fills_in_every_required_secret(self, secret_renders, stack):
        result, out = secret_renders["placeholders"]
        assert result.returncode == 0, result.stderr
        assert (out / stack / "resources.json").is_file()
        assert "placeholder" not in "".join(p.read_text() for p in (out / stack).rglob("*") if p.is_file())

    @pytest.mark.parametrize("text, says", [
        # `secrets` written in the file as plain text: it was not set with --secret.
        ("config:\n  observability:platform: docker\n  observability:secrets: {slack_webhook_url: 'https://hooks.example.com/x'}\n",
         "must be set with `pulumi config set --secret"),
        # A secure value under another key: only `secrets` may hold one.
        ("config:\n  observability:platform: docker\n  observability:grafana:\n    url:\n      secure: v1:abc\n",
         "only the `secrets` key may hold secret values"),
        ("config:\n  observability:platform: docker\n  observability:cluster:\n    secure: v1:abc\n",
         "only the `secrets` key may hold secret values"),
    ])
    def test_secrets_set_the_wrong_way_are_reported_as_the_program_reports_them(self, tmp_path, text, says):
        project = copy_project(tmp_path / "project", {"wrong": text})
        for flags in ([], ["--placeholder-secrets"]):
            result = cli(project, *flags, "--out", str(tmp_path / "out"))
            assert result.returncode == 1 and "Traceback" not in result.stderr
            assert says in result.stderr and "v1:abc" not in result.stderr


# --- the output folder --------------------------------------------------------------------------


def earlier_render(out: Path, *stacks: str) -> None:
    """What an earlier render left in `out`: a marked folder per stack."""
    for stack in stacks:
        write_resources(out / stack, [resource("earlier")])
        (out / stack / render.MARKER).write_text(render.MARKER_TEXT)


class TestOutputFolder:
    """The output folder holds exactly the current render, and only a folder the render wrote is
    ever emptied."""

    def test_a_new_render_replaces_the_earlier_one(self, tmp_path: Path):
        project = copy_project(tmp_path / "project", {"a": DOCKER, "b": DOCKER})
        out = tmp_path / "out"
        earlier_render(out, "a", "b", "gone")
        (out / "a" / "dashboards").mkdir()
        (out / "a" / "dashboards" / "from-an-earlier-render.json").write_text("{}")
        result = cli(project, "--stack", "a", "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in out.iterdir()) == ["a"]
        assert not (out / "a" / "dashboards" / "from-an-earlier-render.json").exists()
        assert "earlier" not in (out / "a" / "resources.json").read_text()

    def test_a_new_folder_is_made_with_its_parents(self, tmp_path: Path):
        project = copy_project(tmp_path / "project", {"a": DOCKER})
        out = tmp_path / "deep" / "er" / "out"
        assert cli(project, "--out", str(out)).returncode == 0
        assert sorted(p.name for p in out.iterdir()) == ["a"]

    def test_a_stack_that_now_fails_leaves_no_earlier_render_behind(self, tmp_path: Path):
        project = copy_project(tmp_path / "project", {"a": DOCKER, "b": BAD_STACKS["settings"][0]})
        out = tmp_path / "out"
        earlier_render(out, "a", "b")
        assert cli(project, "--out", str(out)).returncode == 1
        assert sorted(p.name for p in out.iterdir()) == ["a"]

    @pytest.mark.parametrize("foreign", ["file", "hidden", "folder", "unmarked-render", "symlink"])
    def test_a_folder_holding_anything_else_is_refused_and_kept(self, tmp_path: Path, foreign: str):
        project = copy_project(tmp_path / "project", {"a": DOCKER})
        out = tmp_path / "out"
        earlier_render(out, "a")
        elsewhere = tmp_path / "elsewhere"
        shutil.copytree(out / "a", elsewhere)
        if foreign == "file":
            (out / "notes.txt").write_text("mine")
        elif foreign == "hidden":
            (out / ".keep").write_text("")
        elif foreign == "folder":
            (out / "photos").mkdir()
            (out / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
        elif foreign == "unmarked-render":
            shutil.copytree(elsewhere, out / "b")
            (out / "b" / render.MARKER).unlink()
        else:  # a link to a render elsewhere: removing through it would reach outside the folder
            (out / "b").symlink_to(elsewhere, target_is_directory=True)
        before, before_elsewhere = tree(out), tree(elsewhere)
        result = cli(project, "--out", str(out), log=tmp_path / "log")
        assert_usage_error(result, f"--out {out} holds files that are not an earlier render")
        assert tree(out) == before and tree(elsewhere) == before_elsewhere
        assert not (tmp_path / "log").exists()

    def test_a_home_folder_is_refused(self, tmp_path: Path):
        home = tmp_path / "home"
        (home / ".config").mkdir(parents=True)
        (home / ".bashrc").write_text("export A=1\n")
        project = copy_project(tmp_path / "project", {"a": DOCKER})
        result = cli(project, "--out", str(home))
        assert_usage_error(result, "holds files that are not an earlier render (.bashrc, .config)")
        assert (home / ".bashrc").read_text() == "export A=1\n"

    def test_an_out_that_is_a_file_is_refused(self, tmp_path: Path):
        project = copy_project(tmp_path / "project", {"a": DOCKER})
        (tmp_path / "out").write_text("a file")
        assert_usage_error(cli(project, "--out", str(tmp_path / "out")), "is a file, not a folder")
        assert (tmp_path / "out").read_text() == "a file"

    def test_an_empty_folder_is_used(self, tmp_path: Path):
        project = copy_project(tmp_path / "project", {"a": DOCKER})
        (tmp_path / "out").mkdir()
        assert cli(project, "--out", str(tmp_path / "out")).returncode == 0
        assert (tmp_path / "out" / "a" / render.MARKER).is_file()


# --- misuse -------------------------------------------------------------------------------------


class TestMisuse:
    """Every misuse: a one-line error, a usage hint, exit code 2, no traceback, nothing rendered."""

    @pytest.mark.parametrize("args, says", [
        (["--stack", "nope", "--out", "{tmp}/out"], "no stack file stacks/Pulumi.nope.yaml; the stacks are a, b"),
        (["--stack", "a", "--stack", "Pulumi.b", "--out", "{tmp}/out"], "no stack file stacks/Pulumi.Pulumi.b.yaml"),
        ([], "--out DIR is required"),
        (["--stack", "a"], "--out DIR is required"),
        (["--bogus", "--out", "{tmp}/out"], "unrecognized arguments: --bogus"),
        (["diff"], "diff needs OLD (a folder with an earlier render) or --base REVISION"),
        (["diff", "{tmp}/missing"], "no folder {tmp}/missing"),
        (["diff", "{tmp}/old", "{tmp}/missing"], "no folder {tmp}/missing"),
        (["diff", "{tmp}/old", "{tmp}/old", "{tmp}/old"], "unrecognized arguments"),
        (["diff", "--base"], "expected one argument"),
        (["diff", "--bogus"], "unrecognized arguments: --bogus"),
    ])
    def test_a_misuse_is_one_line_and_a_usage_hint(self, tmp_path: Path, args: list[str], says: str):
        project = copy_project(tmp_path / "project", {"a": DOCKER, "b": DOCKER})
        (tmp_path / "old").mkdir()
        result = cli(project, *[a.format(tmp=tmp_path) for a in args], log=tmp_path / "log")
        assert_usage_error(result, says.format(tmp=tmp_path))
        assert not (tmp_path / "log").exists(), "nothing is rendered before a misuse is found"
        assert not (tmp_path / "out").exists()

    def test_the_hint_is_the_usage_of_the_command_misused(self, tmp_path: Path):
        project = copy_project(tmp_path / "project", {"a": DOCKER})
        assert "diff (OLD [NEW] | --base REVISION [NEW])" in cli(project, "diff").stderr.splitlines()[1]
        assert "--out DIR" in cli(project).stderr.splitlines()[1]


class TestClosedPipe:
    """`python -m components.tools.render diff ... | head` stops quietly when head has read enough."""

    def test_diff_into_head_exits_quietly(self, tmp_path: Path):
        # Far more than a pipe holds (64 KiB), so the render must write after head has gone.
        write_resources(tmp_path / "old/dev", [])
        write_resources(tmp_path / "new/dev", [resource(f"r{i:05d}", a=1) for i in range(20000)])
        script = ('set -o pipefail; "$PYTHON" -m components.tools.render diff "$OLD" "$NEW" 2>"$ERR" | head -n 2; '
                  'echo "status=${PIPESTATUS[0]}"')
        env = {**os.environ, "PYTHON": sys.executable, "OLD": str(tmp_path / "old"), "NEW": str(tmp_path / "new"),
               "ERR": str(tmp_path / "stderr")}
        result = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert result.stdout.splitlines() == ["## dev: 20000 to add, 0 to remove, 0 to change",
                                              "+ t r00000", "status=141"]
        assert (tmp_path / "stderr").read_text() == ""


# --- git revisions ------------------------------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> dict[str, str]:
    """A repository with a history: before the render tool, a render tool that cannot render, the
    project with the tool where it first lived, and the project. The working tree then changes a
    stack. Returns the path and each commit."""
    repo = tmp_path_factory.mktemp("repository")
    git(repo, "init", "-q", "-b", "main")
    write_stacks(repo, {"a": DOCKER, "b": DOCKER})
    (repo / "README").write_text("before the render tool\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "before the render tool")
    before = git(repo, "rev-parse", "HEAD")

    (repo / "components").mkdir()
    (repo / "components" / "__init__.py").write_text("")
    (repo / "components" / "render.py").write_text('raise RuntimeError("this render tool is broken")\n')
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "a render tool that cannot render")
    broken = git(repo, "rev-parse", "HEAD")

    # The project as it was before the render tool moved into components/tools/.
    shutil.rmtree(repo / "components")
    copy_project(repo, {"a": DOCKER, "b": DOCKER})
    (repo / "components/tools/render.py").rename(repo / "components/render.py")
    git(repo, "add", "-A", ".")
    git(repo, "commit", "-q", "-m", "the render tool at components/render.py")
    flat = git(repo, "rev-parse", "HEAD")

    (repo / "components/render.py").rename(repo / "components/tools/render.py")
    git(repo, "add", "-A", ".")
    git(repo, "commit", "-q", "-m", "the project")
    project = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "project")

    # The working tree: stack a's Prometheus moves to another port.
    write_stacks(repo, {"a": DOCKER + "  observability:prometheus: {port: 9191}\n", "b": DOCKER})
    return {"path": str(repo), "before": before, "broken": broken, "flat": flat, "project": project}


class TestRevisions:
    def test_diff_against_a_revision_renders_it_with_its_own_code(self, repository, tmp_path: Path):
        repo = Path(repository["path"])
        status = git(repo, "status", "--porcelain")
        result = cli(repo, "diff", "--base", "project", log=tmp_path / "log")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "## a: 0 to add, 0 to remove, 1 to change"
        assert lines[1].startswith("~ docker:index/container:Container prometheus: ")
        assert "## b: 0 to add, 0 to remove, 0 to change" in lines
        # Both sides were rendered (two stacks each), and the repository is as it was.
        assert (tmp_path / "log").read_text().count("rendered") == 4
        assert git(repo, "status", "--porcelain") == status
        assert len(git(repo, "worktree", "list").splitlines()) == 1

    def test_a_revision_whose_render_tool_lived_at_components_render_is_rendered_with_it(self, repository,
                                                                                         tmp_path: Path):
        result = cli(Path(repository["path"]), "diff", "--base", repository["flat"], log=tmp_path / "log")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0] == "## a: 0 to add, 0 to remove, 1 to change"
        assert (tmp_path / "log").read_text().count("rendered") == 4

    def test_a_later_render_folder_can_be_given_with_base(self, repository, tmp_path: Path):
        repo = Path(repository["path"])
        assert cli(repo, "--out", str(tmp_path / "head")).returncode == 0
        result = cli(repo, "diff", "--base", repository["project"], str(tmp_path / "head"))
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0] == "## a: 0 to add, 0 to remove, 1 to change"

    @pytest.mark.parametrize("revision, says", [
        ("no-such-branch", "--base no-such-branch: no such revision in this repository"),
        ("0123456789abcdef0123456789abcdef01234567", "no such revision"),
        ("--all", "no such revision"),
        ("before", "that revision is older than the render tool (it has no components/tools/render.py)"),
        ("broken", "that revision cannot render (RuntimeError: this render tool is broken)"),
    ])
    def test_a_revision_that_cannot_be_rendered_is_a_misuse(self, repository, tmp_path: Path, revision: str, says: str):
        repo = Path(repository["path"])
        revision = repository.get(revision, revision)
        result = cli(repo, "diff", f"--base={revision}", log=tmp_path / "log")
        assert_usage_error(result, says)
        if "cannot render" not in says:
            assert not (tmp_path / "log").exists(), "nothing is rendered before a misuse is found"

    def test_base_and_two_folders_is_a_misuse(self, repository, tmp_path: Path):
        (tmp_path / "x").mkdir()
        result = cli(Path(repository["path"]), "diff", "--base", "project", str(tmp_path / "x"), str(tmp_path / "x"),
                     log=tmp_path / "log")
        assert_usage_error(result, "with --base, give at most one folder")
        assert not (tmp_path / "log").exists()

    def test_a_stack_of_the_working_tree_that_fails_is_named_in_the_diff(self, repository, tmp_path: Path):
        repo = tmp_path / "repo"
        shutil.copytree(repository["path"], repo, symlinks=True)
        write_stacks(repo, {"a": DOCKER, "b": BAD_STACKS["settings"][0]})
        result = cli(repo, "diff", "--base", "project")
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "error: stack 'b': " in result.stderr
        assert "## b: not rendered (its error is above)" in result.stdout.splitlines()
        assert "## a: 0 to add, 0 to remove, 0 to change" in result.stdout.splitlines()

    def test_a_revision_not_in_a_repository_is_a_misuse(self, tmp_path: Path):
        project = copy_project(tmp_path / "project", {"a": DOCKER})
        assert_usage_error(cli(project, "diff", "--base", "HEAD"), "is not a git repository")
