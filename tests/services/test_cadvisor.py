"""cAdvisor: on docker one privileged container with read-only host paths, scraped on port 8080;
on kubernetes the kubelets' own cAdvisor endpoint, and no pod."""

from __future__ import annotations

import pytest
from conftest import merge, planned_workload, run_program, scrape_jobs, stack_config, stack_secrets

from components import images
from components.settings import ConfigError, parse

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


def test_kubernetes_reads_cadvisor_from_every_kubelet_and_runs_no_pod(stack_runs):
    staging = stack_runs["staging"]
    assert "cadvisor" not in staging.names(DAEMONSET) | staging.names("kubernetes:apps/v1:Deployment")
    job = scrape_jobs(staging)["cadvisor"]
    assert job["metrics_path"] == "/metrics/cadvisor"
    assert job["kubernetes_sd_configs"] == [{"role": "node"}]
    assert job["scheme"] == "https"


def test_kubernetes_refuses_cadvisor_resources_no_pod_would_use():
    config = merge(stack_config("staging"), {"exporters": {"cadvisor": {"resources": {
        "requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}}}})
    with pytest.raises(ConfigError, match=r"key 'exporters.cadvisor.resources': on kubernetes the kubelets serve "
                                          r"cAdvisor's metrics and no cAdvisor pod runs; remove the key"):
        parse("staging", config, secret_keys=set(stack_secrets("staging")))
