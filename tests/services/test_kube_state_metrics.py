"""kube-state-metrics: one Deployment on kubernetes, restricted, reading only what it reports on."""

from __future__ import annotations

import pytest
from conftest import merge, run_program, scrape_jobs, stack_config, stack_secrets

from components import images
from components.platforms.docker import DockerPlatform
from components.services import kube_state_metrics
from components.settings import KubeStateMetricsArgs

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
RESTRICTED = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_kubernetes_runs_the_pinned_image_restricted_and_prometheus_scrapes_it(stack_runs, stack):
    run = stack_runs[stack]
    pod = run.one(DEPLOYMENT, "kube-state-metrics").inputs["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == images.KUBE_STATE_METRICS
    assert container["ports"] == [{"name": "metrics", "containerPort": 8080}, {"name": "telemetry", "containerPort": 8081}]
    assert container["securityContext"] == RESTRICTED
    assert pod["securityContext"]["runAsUser"] == 65534 and pod["securityContext"]["runAsNonRoot"] is True
    assert scrape_jobs(run)["kube-state-metrics"]["static_configs"] == [{"targets": ["kube-state-metrics:8080"]}]


def test_a_kubernetes_stack_may_leave_it_out(stack_runs):
    config = merge(stack_config("staging"), {"exporters": {"kube_state_metrics": {"enabled": False}}})
    run = run_program("staging", config, stack_secrets("staging"))
    assert "kube-state-metrics" not in run.names(DEPLOYMENT)
    assert "kube-state-metrics-discovery" not in run.names("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    assert "kube-state-metrics" not in scrape_jobs(run)


def test_the_docker_platform_is_refused_by_the_component():
    with pytest.raises(ValueError, match="kube-state-metrics reports on a Kubernetes cluster; the docker platform has none"):
        kube_state_metrics.KubeStateMetrics.render("kube-state-metrics", DockerPlatform(), args=KubeStateMetricsArgs())
