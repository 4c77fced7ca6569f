"""cAdvisor: one privileged instance per node with read-only host paths, scraped on port 8080."""

from __future__ import annotations

import pytest
from conftest import merge, planned_workload, run_program, scrape_jobs, stack_config, stack_secrets

from components import images
from components.settings import parse

CONTAINER = "docker:index/container:Container"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
DISABLED = {"exporters": {"cadvisor": {"enabled": False}}}
# Host path -> where cAdvisor reads it.
HOST_PATHS = {
    "/": "/rootfs",
    "/var/run": "/var/run",
    "/sys": "/sys",
    "/var/lib/docker": "/var/lib/docker",
    "/dev/disk": "/dev/disk",
}


@pytest.fixture(scope="module")
def disabled():
    return run_program("staging", merge(stack_config("staging"), DISABLED), stack_secrets("staging"))


@pytest.fixture(scope="module")
def pod(stack_runs):
    return stack_runs["staging"].one(DAEMONSET, "cadvisor").inputs["spec"]["template"]


def test_disabled_cadvisor_has_no_workload():
    assert planned_workload(parse("dev", merge(stack_config("dev"), DISABLED)), "cadvisor") is None


def test_disabled_cadvisor_is_not_deployed_or_scraped(disabled):
    assert "cadvisor" not in disabled.names(DAEMONSET)
    assert "cadvisor" not in scrape_jobs(disabled)
    assert "cadvisor" not in disabled.outputs["services"]
    assert "node-exporter" in disabled.names(DAEMONSET)


def test_docker_runs_the_pinned_image_privileged_with_read_only_host_paths(stack_runs):
    dev = stack_runs["dev"]
    assert dev.one("docker:index/remoteImage:RemoteImage", "cadvisor-image").inputs["name"] == images.CADVISOR
    container = dev.one(CONTAINER, "cadvisor").inputs
    assert container["privileged"] is True
    assert {v["hostPath"]: v["containerPath"] for v in container["volumes"]} == HOST_PATHS
    assert all(v["readOnly"] is True for v in container["volumes"])


def test_docker_prometheus_scrapes_cadvisor_on_8080(stack_runs):
    job = scrape_jobs(stack_runs["dev"])["cadvisor"]
    assert job["static_configs"] == [{"targets": ["cadvisor:8080"]}]


def test_kubernetes_runs_a_privileged_daemonset(stack_runs, pod):
    assert "cadvisor" not in stack_runs["staging"].names("kubernetes:apps/v1:Deployment")
    [container] = pod["spec"]["containers"]
    assert container["image"] == images.CADVISOR
    assert container["ports"] == [{"name": "metrics", "containerPort": 8080}]
    assert container["securityContext"] == {"privileged": True}


def test_kubernetes_mounts_host_paths_read_only(pod):
    [container] = pod["spec"]["containers"]
    volumes = {v["name"]: v["hostPath"]["path"] for v in pod["spec"]["volumes"]}
    mounts = {volumes[m["name"]]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == HOST_PATHS
    assert all(m["readOnly"] is True for m in container["volumeMounts"])


def test_kubernetes_prometheus_finds_every_cadvisor_pod_on_8080(stack_runs, pod):
    job = scrape_jobs(stack_runs["staging"])["cadvisor"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["observability"]}}]
    keep = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert keep == {
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "cadvisor",
        "__meta_kubernetes_pod_container_port_number": "8080",
    }
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "cadvisor"
