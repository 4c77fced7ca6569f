"""The offline render: what `pulumi up` would deploy, written down without any engine, and a diff
a reviewer can read."""

import json
import subprocess
import sys

import pytest
import yaml

from components import render
from conftest import ROOT, STACKS, container_files, run_program, stack_config


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("render")
    result = subprocess.run([sys.executable, "-m", "components.render", "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
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
    assert "placeholder-" not in text
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
    assert yaml.safe_load((rendered / "prod/manifests/Service-loki.yaml").read_text())["apiVersion"] == "v1"
    for stack in STACKS:
        dashboards = {p.stem for p in (rendered / stack / "dashboards").glob("*.json")}
        assert {"system-overview", "logs", "observability-stack"} <= dashboards
        assert json.loads((rendered / stack / "dashboards/logs.json").read_text())["uid"] == "logs"


def test_the_render_is_byte_identical_across_runs(rendered, tmp_path):
    render.main(["--out", str(tmp_path)])
    for first in sorted(p for p in rendered.rglob("*") if p.is_file()):
        second = tmp_path / first.relative_to(rendered)
        assert second.read_bytes() == first.read_bytes(), first.relative_to(rendered)
    assert sum(1 for p in tmp_path.rglob("*") if p.is_file()) == sum(1 for p in rendered.rglob("*") if p.is_file())


def test_a_single_stack_can_be_rendered(tmp_path):
    assert render.main(["--stack", "dev", "--out", str(tmp_path)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["dev"]
    with pytest.raises(SystemExit):
        render.main(["--stack", "nope", "--out", str(tmp_path)])


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


def test_a_threshold_change_shows_in_the_diff_as_the_one_config_that_carries_it(rendered, tmp_path):
    run = render.run_program("dev", {**stack_config("dev"), "alerts": {"overrides": {"HostHighCpu": {"threshold": 97}}}})
    resources = sorted(({"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent, "inputs": render._masked(r.raw_inputs)}
                        for r in run.resources), key=lambda r: r["urn"])
    write_resources(tmp_path / "dev", resources)
    lines = render.diff_stack(rendered / "dev", tmp_path / "dev")
    assert lines == ["~ docker:index/container:Container prometheus: labels, uploads"]


def test_the_diff_against_a_git_revision_renders_that_revision(tmp_path):
    render.render_revision("HEAD", tmp_path / "base")
    assert sorted(p.name for p in (tmp_path / "base").iterdir()) == sorted(STACKS)
    assert json.loads((tmp_path / "base/dev/resources.json").read_text())
