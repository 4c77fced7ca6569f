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

from conftest import ROOT, amtool_config, container_files, is_secret, promtool_copy, require_tool, run_program

EXAMPLES = sorted(p.parent for p in (ROOT / "examples").glob("*/Pulumi.yaml"))
SLACK = "https://hooks.slack.example/T000/B000/example-secret-51ab"


def run_example(folder: Path, config: dict | None = None, secret_keys=()):
    project = yaml.safe_load((folder / "Pulumi.yaml").read_text())["name"]
    return run_program("dev", config or {}, program_dir=folder, project=project, secret_keys=secret_keys)


def test_there_are_examples():
    assert [p.name for p in EXAMPLES] == ["cluster-logs", "docker-host-metrics"]


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


CLUSTER_LOGS = {"cluster": "eu-1", "bucket": "acme-logs", "region": "eu-west-1",
                "grafana_url": "https://grafana.example.com"}
GRAFANA_TOKEN = "glsa_example-token-secret-77c2"


@pytest.fixture(scope="module")
def cluster_logs():
    return run_example(ROOT / "examples" / "cluster-logs", {**CLUSTER_LOGS, "grafana_token": GRAFANA_TOKEN},
                       secret_keys={"grafana_token"})


def test_cluster_logs_runs_loki_and_alloy_in_their_namespace(cluster_logs):
    services = {r.name: r.type for r in cluster_logs.resources if r.type.startswith("observability:services:")}
    assert services == {"loki": "observability:services:Loki", "alloy": "observability:services:Alloy"}
    assert cluster_logs.one("kubernetes:core/v1:Namespace", "namespace").inputs["metadata"]["name"] == "logs"
    assert cluster_logs.names("kubernetes:apps/v1:StatefulSet") == {"loki"}
    assert cluster_logs.names("kubernetes:apps/v1:DaemonSet") == {"alloy"}


def test_cluster_logs_loki_keeps_logs_in_the_bucket_with_the_role_s_credentials(cluster_logs):
    files = container_files(cluster_logs, "loki")
    config = yaml.safe_load(files["/etc/loki/loki.yml"])
    assert config["common"]["storage"] == {
        "s3": {"bucketnames": "acme-logs", "region": "eu-west-1", "s3forcepathstyle": False, "insecure": False}
    }
    assert config["limits_config"]["retention_period"] == "30d"
    # No key is stored: the AWS SDK finds the role's credentials itself.
    assert not [path for path in files if path.startswith("/run/secrets/")]


def test_cluster_logs_alloy_ships_to_loki_with_the_cluster_label(cluster_logs):
    config = container_files(cluster_logs, "alloy")["/etc/alloy/config.alloy"]
    # Loki's StatefulSet pod, by its stable name, on Loki's push API (Loki docs: /loki/api/v1/push).
    assert 'url = "http://loki-0.loki:3100/loki/api/v1/push"' in config
    assert 'external_labels = {environment = "dev", cluster = "eu-1"}' in config


def test_cluster_logs_loki_admits_the_outside_grafana_and_only_alloy_writes_inside(cluster_logs):
    policy = cluster_logs.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "loki-network-policy").inputs
    [http] = [rule for rule in policy["spec"]["ingress"] if rule["ports"][0]["port"] == 3100]
    assert "from" not in http, "the existing Grafana is outside the namespace: any source"


def test_cluster_logs_adds_a_datasource_to_the_existing_grafana(cluster_logs):
    provider = cluster_logs.one("pulumi:providers:grafana", "grafana")
    assert provider.inputs["url"] == "https://grafana.example.com"
    assert is_secret(provider.raw_inputs["auth"])
    datasource = cluster_logs.one("grafana:oss/dataSource:DataSource", "loki-datasource")
    assert datasource.provider.startswith(provider.urn + "::")
    assert {k: datasource.inputs[k] for k in ("uid", "name", "type", "url")} == {
        "uid": "loki-dev", "name": "Loki (dev)", "type": "loki", "url": "http://loki.logs.svc:3100",
    }


def test_cluster_logs_needs_a_bucket():
    with pytest.raises(Exception, match="required"):
        run_example(ROOT / "examples" / "cluster-logs", {k: v for k, v in CLUSTER_LOGS.items() if k != "bucket"})
