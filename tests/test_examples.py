"""The example programs in examples/: each runs as `pulumi up` would run it, and what it deploys
is checked with the real tools, like the stacks' own files.

Expected values come from the example's own promise (its docstring) and from upstream: the ports
Prometheus (9090), Alertmanager (9093), node-exporter (9100) and cAdvisor (8080) listen on.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, container_files, is_secret, require_tool, run_program
from test_alertmanager import amtool_config
from test_prometheus import promtool_copy

EXAMPLES = sorted(p.parent for p in (ROOT / "examples").glob("*/Pulumi.yaml"))
SLACK = "https://hooks.slack.example/T000/B000/example-secret-51ab"


def run_example(folder: Path, config: dict | None = None, secret_keys=()):
    project = yaml.safe_load((folder / "Pulumi.yaml").read_text())["name"]
    return run_program("dev", config or {}, program_dir=folder, project=project, secret_keys=secret_keys)


def test_there_are_examples():
    assert [p.name for p in EXAMPLES] == ["docker-host-metrics"]


@pytest.mark.parametrize("folder", EXAMPLES, ids=lambda p: p.name)
def test_each_example_is_a_python_project_on_the_repository_virtualenv(folder: Path):
    project = yaml.safe_load((folder / "Pulumi.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    assert (folder / project["runtime"]["options"]["virtualenv"]).resolve() == ROOT / "venv"
    assert (folder / "__main__.py").is_file()


@pytest.fixture(scope="module")
def host_metrics():
    return run_example(ROOT / "examples" / "docker-host-metrics")


def test_host_metrics_deploys_four_services_on_a_network_of_its_own(host_metrics):
    services = {r.name: r.type for r in host_metrics.resources if r.type.startswith("observability:services:")}
    assert services == {
        "prometheus": "observability:services:Prometheus",
        "alertmanager": "observability:services:Alertmanager",
        "node-exporter": "observability:services:NodeExporter",
        "cadvisor": "observability:services:Cadvisor",
    }
    assert host_metrics.one("docker:index/network:Network", "network").inputs["name"] == "host-metrics"
    assert host_metrics.outputs == {"prometheus": "http://127.0.0.1:9090", "alertmanager": "http://127.0.0.1:9093"}


def test_host_metrics_prometheus_scrapes_each_service_and_alerts_alertmanager(host_metrics):
    config = yaml.safe_load(container_files(host_metrics, "prometheus")["/etc/prometheus/prometheus.yml"])
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets == {
        "prometheus": ["prometheus:9090"],
        "node-exporter": ["node-exporter:9100"],
        "cadvisor": ["cadvisor:8080"],
        "alertmanager": ["alertmanager:9093"],
    }
    assert config["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]
    assert config["global"]["external_labels"] == {"environment": "dev", "cluster": "docker-host"}
    assert config["storage"]["tsdb"]["retention"] == {"time": "7d", "size": "5GB"}


def test_host_metrics_files_pass_promtool_and_amtool(host_metrics, tmp_path: Path):
    promtool = require_tool("promtool")
    result = subprocess.run([promtool, "check", "config", str(promtool_copy(host_metrics, tmp_path / "p"))],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout + result.stderr
    amtool = require_tool("amtool")
    result = subprocess.run([amtool, "check-config", str(amtool_config(host_metrics, tmp_path / "a"))],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_host_metrics_without_a_webhook_notifies_nobody(host_metrics):
    config = yaml.safe_load(container_files(host_metrics, "alertmanager")["/etc/alertmanager/alertmanager.yml"])
    assert [r["name"] for r in config["receivers"]] == ["null"]
    assert config["route"]["receiver"] == "null"


def test_host_metrics_with_a_webhook_sends_to_slack_from_a_secret_file():
    run = run_example(ROOT / "examples" / "docker-host-metrics", {"slack_webhook_url": SLACK},
                      secret_keys={"slack_webhook_url"})
    files = container_files(run, "alertmanager")
    config = yaml.safe_load(files["/etc/alertmanager/alertmanager.yml"])
    assert {r["name"] for r in config["receivers"]} == {"null", "slack-critical", "slack-warning"}
    assert files["/run/secrets/slack_webhook_url"] == SLACK
    uploads = run.one("docker:index/container:Container", "alertmanager").raw_inputs["uploads"]
    assert is_secret(uploads) or any(is_secret(u) for u in uploads)
