"""node-exporter: one per node, reading the host's root, scraped by Prometheus on port 9100."""

from __future__ import annotations

import pytest
from conftest import merge, planned_workload, run_program, scrape_jobs, stack_config

from components import images
from components.settings import parse

CONTAINER = "docker:index/container:Container"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
DISABLED = {"exporters": {"node": {"enabled": False}}}


@pytest.fixture(scope="module")
def disabled():
    return run_program("dev", merge(stack_config("dev"), DISABLED))


@pytest.fixture(scope="module")
def pod(stack_runs):
    return stack_runs["prod"].one(DAEMONSET, "node-exporter").inputs["spec"]["template"]


def test_disabled_node_exporter_has_no_workload():
    assert planned_workload(parse("dev", merge(stack_config("dev"), DISABLED)), "node-exporter") is None


def test_disabled_node_exporter_is_not_deployed_or_scraped(disabled):
    assert "node-exporter" not in disabled.names(CONTAINER)
    assert "node-exporter-image" not in disabled.names("docker:index/remoteImage:RemoteImage")
    assert "node-exporter" not in scrape_jobs(disabled)
    assert "node-exporter" not in disabled.outputs["services"]


def test_docker_runs_the_pinned_image_with_the_host_root(stack_runs):
    dev = stack_runs["dev"]
    assert dev.one("docker:index/remoteImage:RemoteImage", "node-exporter-image").inputs["name"] == images.NODE_EXPORTER
    container = dev.one(CONTAINER, "node-exporter").inputs
    assert "--path.rootfs=/host" in container["command"]
    assert container["pidMode"] == "host"
    assert {"hostPath": "/", "containerPath": "/host", "readOnly": True} in container["volumes"]


def test_docker_prometheus_scrapes_node_exporter_on_9100(stack_runs):
    job = scrape_jobs(stack_runs["dev"])["node-exporter"]
    assert job["static_configs"] == [{"targets": ["node-exporter:9100"]}]


def test_kubernetes_runs_one_per_node_with_host_pid_and_network(stack_runs, pod):
    assert "node-exporter" not in stack_runs["prod"].names("kubernetes:apps/v1:Deployment")
    assert pod["spec"]["hostPID"] is True
    assert pod["spec"]["hostNetwork"] is True
    [container] = pod["spec"]["containers"]
    assert container["image"] == images.NODE_EXPORTER
    assert container["ports"] == [{"name": "metrics", "containerPort": 9100}]
    assert "--path.rootfs=/host" in container["args"]


def test_kubernetes_mounts_the_host_root_read_only_at_host(pod):
    [container] = pod["spec"]["containers"]
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == "/host"]
    assert mount["readOnly"] is True
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes[mount["name"]]["hostPath"]["path"] == "/"


def test_kubernetes_prometheus_finds_every_node_exporter_pod_on_9100(stack_runs, pod):
    job = scrape_jobs(stack_runs["prod"])["node-exporter"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["observability-node-agents"]}}]
    keep = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert keep == {
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "node-exporter",
        "__meta_kubernetes_pod_container_port_number": "9100",
    }
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "node-exporter"
