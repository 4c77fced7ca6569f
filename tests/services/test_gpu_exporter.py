"""GPU exporter: DCGM (port 9400) or nvidia-smi (port 9835), one per GPU node, every GPU visible."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from conftest import ROOT, container_files, merge, planned_workload, run_program, scrape_jobs, stack_config, stack_secrets

from components import images
from components.settings import ConfigError, parse

CONTAINER = "docker:index/container:Container"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
EXPORTERS = {"dcgm": (images.DCGM_EXPORTER, 9400), "nvidia_smi": (images.NVIDIA_SMI_EXPORTER, 9835)}


def pod_of(run) -> dict:
    return run.one(DAEMONSET, "gpu-exporter").inputs["spec"]["template"]


@pytest.fixture(scope="module")
def docker_runs():
    """The dev stack with the GPU exporter, per exporter kind; a failed registration fails the test."""
    cache: dict = {}

    def get(exporter: str):
        if exporter not in cache:
            config = merge(stack_config("dev"), {"exporters": {"gpu": {"enabled": True, "exporter": exporter}}})
            try:
                cache[exporter] = run_program("dev", config)
            except AssertionError as error:
                cache[exporter] = error
        if isinstance(cache[exporter], Exception):
            pytest.fail(f"dev with the {exporter} GPU exporter does not register: {cache[exporter]}", pytrace=False)
        return cache[exporter]

    return get


@pytest.fixture(scope="module")
def custom():
    """staging with GPU nodes of its own label and taint, and no runtime class."""
    config = merge(
        stack_config("staging"),
        {
            "exporters": {
                "gpu": {
                    "node_selector": {"accelerator": "a100"},
                    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoExecute"}],
                    "runtime_class": None,
                }
            }
        },
    )
    return run_program("staging", config, stack_secrets("staging"))


def test_disabled_gpu_exporter_has_no_workload():
    assert planned_workload(parse("dev", stack_config("dev")), "gpu-exporter") is None


def test_disabled_gpu_exporter_is_not_deployed_or_scraped(stack_runs):
    dev = stack_runs["dev"]
    assert "gpu-exporter" not in dev.names(CONTAINER)
    assert "gpu-exporter" not in scrape_jobs(dev)
    assert "gpu-exporter" not in dev.outputs["services"]


@pytest.mark.parametrize("exporter", sorted(EXPORTERS))
def test_docker_runs_the_exporters_image_and_prometheus_scrapes_its_port(docker_runs, exporter):
    run = docker_runs(exporter)
    image, port = EXPORTERS[exporter]
    assert run.one("docker:index/remoteImage:RemoteImage", "gpu-exporter-image").inputs["name"] == image
    assert scrape_jobs(run)["gpu-exporter"]["static_configs"] == [{"targets": [f"gpu-exporter:{port}"]}]


def test_docker_requests_every_nvidia_gpu(docker_runs):
    container = docker_runs("dcgm").one(CONTAINER, "gpu-exporter").inputs
    # The provider's capabilities are one list of capability names (pulumi_docker 5.x).
    assert container["deviceRequests"] == [{"driver": "nvidia", "count": -1, "capabilities": ["gpu"]}]


@pytest.mark.parametrize("stack, exporter", [("prod", "dcgm"), ("staging", "nvidia_smi")])
def test_kubernetes_daemonset_runs_the_exporters_image_on_its_port(stack_runs, stack, exporter):
    image, port = EXPORTERS[exporter]
    [container] = pod_of(stack_runs[stack])["spec"]["containers"]
    assert container["image"] == image
    assert container["ports"] == [{"name": "metrics", "containerPort": port}]


@pytest.mark.parametrize("stack, exporter", [("prod", "dcgm"), ("staging", "nvidia_smi")])
def test_kubernetes_prometheus_finds_every_gpu_exporter_pod_on_its_port(stack_runs, stack, exporter):
    job = scrape_jobs(stack_runs[stack])["gpu-exporter"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["observability-node-agents"]}}]
    keep = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert keep == {
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "gpu-exporter",
        "__meta_kubernetes_pod_container_port_number": str(EXPORTERS[exporter][1]),
    }
    assert pod_of(stack_runs[stack])["metadata"]["labels"]["app.kubernetes.io/name"] == "gpu-exporter"


def test_kubernetes_schedules_on_gpu_nodes_with_the_nvidia_runtime(stack_runs):
    spec = pod_of(stack_runs["prod"])["spec"]
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    # Its own, then the node agents' default: every NoSchedule taint, no NoExecute one.
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"operator": "Exists", "effect": "NoSchedule"},
    ]


def test_kubernetes_node_selector_tolerations_and_runtime_come_from_settings(custom):
    spec = pod_of(custom)["spec"]
    assert "runtimeClassName" not in spec
    assert spec["nodeSelector"] == {"accelerator": "a100"}
    assert spec["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoExecute"},
        {"operator": "Exists", "effect": "NoSchedule"},
    ]


@pytest.mark.parametrize("tolerations, expected", [
    ([], []),
    ([{"operator": "Exists"}], [{"operator": "Exists"}]),
    ([{"key": "dedicated", "operator": "Equal", "value": "monitoring", "effect": "NoExecute"}],
     [{"key": "dedicated", "operator": "Equal", "value": "monitoring", "effect": "NoExecute"}]),
])
def test_every_node_agent_tolerates_what_the_stack_file_says(tolerations, expected):
    config = merge(stack_config("prod"), {"kubernetes": {"node_agent_tolerations": tolerations}})
    run = run_program("prod", config, stack_secrets("prod"))
    for agent in ("node-exporter", "alloy"):
        assert run.one(DAEMONSET, agent).inputs["spec"]["template"]["spec"].get("tolerations", []) == expected, agent
    gpu = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod_of(run)["spec"]["tolerations"] == gpu + [t for t in expected if t not in gpu]


def test_a_keyless_toleration_must_match_every_key():
    config = merge(stack_config("prod"), {"kubernetes": {"node_agent_tolerations": [{"operator": "Equal", "value": "x"}]}})
    with pytest.raises(ConfigError, match=r"key 'kubernetes.node_agent_tolerations\[0\]': a toleration with operator Equal needs a key"):
        parse("prod", config, secret_keys={"secrets"})


def test_kubernetes_sees_every_gpu_without_claiming_one(stack_runs):
    [container] = pod_of(stack_runs["prod"])["spec"]["containers"]
    assert {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"} in container["env"]
    assert "nvidia.com/gpu" not in json.dumps(container["resources"])
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}


def test_kubernetes_dcgm_maps_each_gpu_to_the_pod_that_holds_it(stack_runs):
    """Kubernetes mode asks the kubelet's pod-resources socket which pod was given which GPU, and
    labels the GPU's series with that pod, its namespace and container."""
    pod = pod_of(stack_runs["prod"])["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["DCGM_EXPORTER_KUBERNETES"] == "true"
    assert env["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/var/lib/kubelet/pod-resources"]
    assert mount["readOnly"] is True
    assert volumes[mount["name"]]["hostPath"] == {"path": "/var/lib/kubelet/pod-resources"}


def test_dcgm_may_read_profiling_counters_and_nothing_more(stack_runs, docker_runs):
    # SYS_ADMIN is what DCGM's profiling fields (SM and tensor-core activity) need; the rest
    # of the capabilities are dropped, and the container cannot gain privileges.
    [container] = pod_of(stack_runs["prod"])["spec"]["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
    }
    assert docker_runs("dcgm").one(CONTAINER, "gpu-exporter").inputs["capabilities"] == {
        "drops": ["ALL"], "adds": ["SYS_ADMIN"]}


def test_the_nvidia_smi_exporter_gets_no_extra_capability(stack_runs, docker_runs):
    [container] = pod_of(stack_runs["staging"])["spec"]["containers"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert docker_runs("nvidia_smi").one(CONTAINER, "gpu-exporter").inputs["capabilities"] == {"drops": ["ALL"]}


def test_dcgm_collects_the_counters_the_dashboards_and_alerts_read(stack_runs, docker_runs):
    """The counters file is the one DCGM_EXPORTER_COLLECTORS names, in dcgm-exporter's format
    (three fields a line), and holds every DCGM field the catalog of metrics lists."""
    wanted = set(yaml.safe_load((ROOT / "configs/metrics/catalog.yml").read_text())["gpu-exporter/dcgm"])
    for run in (stack_runs["prod"], docker_runs("dcgm")):
        files = container_files(run, "gpu-exporter")
        env = {e["name"]: e.get("value") for e in pod_of(stack_runs["prod"])["spec"]["containers"][0]["env"]}
        text = files[env["DCGM_EXPORTER_COLLECTORS"]]
        rows = [[field.strip() for field in row]
                for row in csv.reader(line for line in text.splitlines() if line.strip() and not line.startswith("#"))]
        assert all(len(row) == 3 and row[1] in {"gauge", "counter"} for row in rows), rows
        assert wanted <= {row[0] for row in rows}
    # Kubernetes mode needs the kubelet; a docker host has none.
    docker_env = docker_runs("dcgm").one(CONTAINER, "gpu-exporter").inputs["envs"]
    assert "DCGM_EXPORTER_KUBERNETES=true" not in docker_env
    assert "DCGM_EXPORTER_COLLECTORS=/etc/dcgm-exporter/observability/counters.csv" in docker_env


def test_kubernetes_checks_the_dcgm_exporter_on_its_health_endpoint(stack_runs):
    # dcgm-exporter answers GET /health with 200 once it reads the GPUs (its server's /health
    # route); a path it does not serve would keep the pod unready forever.
    [container] = pod_of(stack_runs["prod"])["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
