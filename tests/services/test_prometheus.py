"""Prometheus: the rendered configuration passes promtool, and scrapes and alerts where it should."""

import shutil
import subprocess

import pytest
import yaml

from components.services import prometheus
from components.platforms.docker import DockerPlatform
from components.settings import parse
from conftest import (
    ROOT,
    SECRETS,
    STACKS,
    container_args,
    container_files,
    merge,
    prometheus_config,
    promtool_copy,
    require_tool,
    run_program,
    scrape_jobs,
    stack_config,
    stack_secrets,
    write_files,
)

@pytest.mark.parametrize("stack", STACKS)
def test_promtool_accepts_the_rendered_config_and_rules(stack_runs, stack, tmp_path):
    promtool = require_tool("promtool")
    path = promtool_copy(stack_runs[stack], tmp_path)
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # The stack's alert catalog, its recording rules, the rules of its objectives (every shipped
    # stack sets some) and each user rule file.
    rule_files = 3 + len(list((ROOT / "configs/prometheus/rules").glob("*.yml")))
    assert f"SUCCESS: {rule_files} rule files found" in result.stdout + result.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_promtool_checks_every_rule_file_the_stack_ships(stack_runs, stack, tmp_path):
    promtool = require_tool("promtool")
    files = {path: content for path, content in container_files(stack_runs[stack], "prometheus").items()
             if path.startswith("/etc/prometheus/rules/")}
    assert "/etc/prometheus/rules/catalog.yml" in files
    written = write_files(files, tmp_path)
    result = subprocess.run([promtool, "check", "rules", *map(str, written.values())], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


RULE_TESTS = sorted((ROOT / "tests/rules").glob("*_test.yml"))


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("test_file", RULE_TESTS, ids=[p.stem for p in RULE_TESTS])
def test_rule_unit_tests_pass_against_each_stacks_rendered_catalog(stack_runs, stack, test_file, tmp_path):
    """promtool test rules, against the catalog as the stack renders it (its overrides included)."""
    promtool = require_tool("promtool")
    (tmp_path / "catalog.yml").write_text(container_files(stack_runs[stack], "prometheus")["/etc/prometheus/rules/catalog.yml"])
    shutil.copy(test_file, tmp_path / test_file.name)
    result = subprocess.run([promtool, "test", "rules", test_file.name], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, f"{stack}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("stack", STACKS)
def test_every_deployed_service_is_scraped(stack_runs, stack):
    run = stack_runs[stack]
    jobs = scrape_jobs(run)
    # A workload is scraped by its own job, or, as a role of a service, pod by pod in its service's.
    by_pod = {app for job in jobs.values() for r in job.get("relabel_configs", [])
              if r.get("action") == "keep" and r["source_labels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_name"]
              for app in r["regex"].split("|")}
    deployed = set(run.outputs["services"])
    assert deployed <= set(jobs) | by_pod, f"not scraped: {deployed - set(jobs) - by_pod}"


def test_docker_scrapes_each_service_by_its_network_alias(stack_runs):
    found = scrape_jobs(stack_runs["dev"])
    assert found["prometheus"]["static_configs"][0]["targets"] == ["prometheus:9090"]
    assert found["alertmanager"]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert found["node-exporter"]["static_configs"][0]["targets"] == ["node-exporter:9100"]
    assert found["cadvisor"]["static_configs"][0]["targets"] == ["cadvisor:8080"]


def test_kubernetes_scrapes_every_replica_and_every_node(stack_runs):
    found = scrape_jobs(stack_runs["prod"])
    assert found["prometheus"]["static_configs"][0]["targets"] == [
        "prometheus-0.prometheus:9090",
        "prometheus-1.prometheus:9090",
    ]
    assert found["alertmanager"]["static_configs"][0]["targets"] == [
        f"alertmanager-{i}.alertmanager:9093" for i in range(3)
    ]
    node = found["node-exporter"]
    assert node["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["observability-node-agents"]}}]
    keep = {tuple(r["source_labels"]): r["regex"] for r in node["relabel_configs"] if r.get("action") == "keep"}
    assert keep == {
        ("__meta_kubernetes_pod_label_app_kubernetes_io_name",): "node-exporter",
        ("__meta_kubernetes_pod_container_port_number",): "9100",
    }
    assert found["postgres-exporter"]["static_configs"][0]["targets"] == ["postgres-exporter:9187"]


@pytest.mark.parametrize("stack, replicas", [("dev", 1), ("staging", 1), ("prod", 3)])
def test_alerts_go_to_every_alertmanager_replica(stack_runs, stack, replicas):
    alerting = prometheus_config(stack_runs[stack])["alerting"]["alertmanagers"]
    targets = alerting[0]["static_configs"][0]["targets"]
    assert len(targets) == replicas
    assert all(t.endswith(":9093") for t in targets)


@pytest.mark.parametrize(
    "stack, time, size, cluster",
    [("dev", "7d", "5GB", "laptop"), ("staging", "30d", "45GB", "staging-eu1"), ("prod", "90d", "180GB", "prod-eu1")],
)
def test_retention_and_labels_follow_the_stack(stack_runs, stack, time, size, cluster):
    run = stack_runs[stack]
    args = container_args(run, "prometheus")
    # Retention lives in the config file: Prometheus 3.8 deprecated the flags.
    assert not [a for a in args if a.startswith("--storage.tsdb.retention")]
    assert "--config.file=/etc/prometheus/prometheus.yml" in args
    assert "--storage.tsdb.path=/prometheus" in args
    # Exemplars are kept, so Grafana's exemplar links to Jaeger have something to open; no other
    # feature flag (expand-external-labels was removed in Prometheus 3.0).
    assert [a for a in args if a.startswith("--enable-feature")] == ["--enable-feature=exemplar-storage"]
    config = prometheus_config(run)
    assert config["storage"] == {"tsdb": {"retention": {"time": time, "size": size}}}
    labels = {"environment": stack, "cluster": cluster}
    if stack == "prod":
        # An HA pair: each replica's series carry its pod's name.
        labels["replica"] = "${POD_NAME}"
    assert config["global"]["external_labels"] == labels
    assert config["global"]["scrape_interval"] == "15s"
    assert config["global"]["evaluation_interval"] == "15s"
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_api_job_is_scraped_every_10s_at_its_own_path(stack_runs, stack):
    api = scrape_jobs(stack_runs[stack])["api"]
    assert api["metrics_path"] == "/api/v1/metrics"
    assert api["scrape_interval"] == "10s"
    assert len(api["static_configs"][0]["targets"]) == 1


def test_static_target_labels_and_scheme_are_rendered():
    config = merge(stack_config("dev"), {"prometheus": {"scrape_targets": [
        {"job": "batch", "targets": ["batch1:9000", "batch2:9000"], "scheme": "https", "labels": {"team": "data"}},
    ]}})
    job = scrape_jobs(run_program("dev", config))["batch"]
    assert job["static_configs"] == [{"targets": ["batch1:9000", "batch2:9000"], "labels": {"team": "data"}}]
    assert job["scheme"] == "https"
    assert "scrape_interval" not in job and "metrics_path" not in job


def test_remote_write_reads_its_password_from_a_secret_file(stack_runs):
    run = stack_runs["prod"]
    files = container_files(run, "prometheus")
    remote = prometheus_config(run)["remote_write"]
    assert remote == [{
        "url": "https://mimir.example.internal/api/v1/push",
        "basic_auth": {"username": "prod-prometheus", "password_file": "/run/secrets/remote_write_password"},
    }]
    assert files["/run/secrets/remote_write_password"] == SECRETS["remote_write_password"]
    assert SECRETS["remote_write_password"] not in files["/etc/prometheus/prometheus.yml"]


def test_no_remote_write_unless_configured(stack_runs):
    assert "remote_write" not in prometheus_config(stack_runs["dev"])


def test_docker_discovery_scrapes_opted_in_containers_on_the_stack_network(stack_runs):
    job = scrape_jobs(stack_runs["dev"])["docker-containers"]
    assert job["docker_sd_configs"][0]["host"] == "unix:///var/run/docker.sock"
    keeps = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert keeps == {
        "__meta_docker_network_name": "observability",
        "__meta_docker_container_label_prometheus_io_scrape": "true",
    }


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_kubernetes_discovery_scrapes_annotated_pods_and_services(stack_runs, stack):
    found = scrape_jobs(stack_runs[stack])
    for name, role, meta in (("kubernetes-pods", "pod", "pod"), ("kubernetes-services", "endpointslice", "service")):
        assert found[name]["kubernetes_sd_configs"] == [{"role": role}]
        keeps = [r for r in found[name]["relabel_configs"] if r.get("action") == "keep"]
        assert keeps == [{
            "source_labels": [f"__meta_kubernetes_{meta}_annotation_prometheus_io_scrape"],
            "regex": "true",
            "action": "keep",
        }]


ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_kubernetes_scrapes_the_kubelets_their_cadvisor_the_api_server_and_coredns(stack_runs, stack):
    run = stack_runs[stack]
    found = scrape_jobs(run)
    # The kubelets serve cAdvisor: no cAdvisor pod runs, and its job reads every kubelet.
    assert "cadvisor" not in run.outputs["services"]
    for job, path in (("kubelet", None), ("cadvisor", "/metrics/cadvisor")):
        config = found[job]
        assert config.get("metrics_path") == path
        assert config["scheme"] == "https"
        assert config["authorization"] == {"credentials_file": f"{ACCOUNT}/token"}
        # Most kubelets serve a self-signed certificate; the stacks leave verification off.
        assert config["tls_config"] == {"insecure_skip_verify": True}
        assert config["kubernetes_sd_configs"] == [{"role": "node"}]
        assert config["relabel_configs"] == [{"source_labels": ["__meta_kubernetes_node_name"], "target_label": "instance"}]
    apiserver = found["apiserver"]
    assert apiserver["scheme"] == "https"
    assert apiserver["tls_config"] == {"ca_file": f"{ACCOUNT}/ca.crt", "server_name": "kubernetes"}
    assert apiserver["kubernetes_sd_configs"] == [{"role": "endpointslice", "namespaces": {"names": ["default"]}}]
    assert apiserver["relabel_configs"][0] == {
        "source_labels": ["__meta_kubernetes_service_name", "__meta_kubernetes_endpointslice_port_name"],
        "regex": "kubernetes;https", "action": "keep",
    }
    coredns = found["coredns"]
    assert coredns["kubernetes_sd_configs"] == [{
        "role": "pod", "namespaces": {"names": ["kube-system"]}, "selectors": [{"role": "pod", "label": "k8s-app=kube-dns"}],
    }]
    assert {"source_labels": ["__meta_kubernetes_pod_container_port_number"], "regex": "9153", "action": "keep"} \
        in coredns["relabel_configs"]


def test_docker_scrapes_none_of_a_clusters_parts(stack_runs):
    found = scrape_jobs(stack_runs["dev"])
    assert not {"kubelet", "apiserver", "coredns"} & set(found)
    # cAdvisor runs as a container there, scraped at its address.
    assert found["cadvisor"]["static_configs"][0]["targets"] == ["cadvisor:8080"]
    assert "kube-state-metrics" not in stack_runs["dev"].outputs["services"]


def test_kubernetes_cluster_targets_follow_the_stack_file():
    config = merge(stack_config("staging"), {
        "kubernetes": {"verify_kubelet_certificates": True, "coredns": {
            "namespace": "dns", "pod_labels": {"app": "coredns", "tier": "dns"}, "port": 9253,
        }},
        "exporters": {"cadvisor": {"enabled": False}},
    })
    found = scrape_jobs(run_program("staging", config, stack_secrets("staging")))
    assert "cadvisor" not in found
    assert found["kubelet"]["tls_config"] == {"ca_file": f"{ACCOUNT}/ca.crt"}
    assert found["coredns"]["kubernetes_sd_configs"][0]["namespaces"] == {"names": ["dns"]}
    assert found["coredns"]["kubernetes_sd_configs"][0]["selectors"] == [{"role": "pod", "label": "app=coredns,tier=dns"}]
    assert {"source_labels": ["__meta_kubernetes_pod_container_port_number"], "regex": "9253", "action": "keep"} \
        in found["coredns"]["relabel_configs"]
    off = merge(stack_config("staging"), {"kubernetes": {"coredns": {"enabled": False}}})
    assert "coredns" not in scrape_jobs(run_program("staging", off, stack_secrets("staging")))


def test_cluster_targets_are_refused_off_kubernetes():
    with pytest.raises(ValueError, match="cluster_targets are a Kubernetes cluster's; the docker platform has none"):
        prometheus.workload(parse("dev", {"platform": "docker"}).prometheus, DockerPlatform(), environment="dev", cluster="dev",
                            cluster_targets=prometheus.ClusterTargets())


def test_discovery_can_be_turned_off():
    run = run_program("dev", merge(stack_config("dev"), {"prometheus": {"discovery": False}}))
    assert "docker-containers" not in scrape_jobs(run)


def write_base(tmp_path, scrape_configs):
    (tmp_path / "rules").mkdir()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"global": {"scrape_interval": "1m"}, "scrape_configs": scrape_configs}))


def test_jobs_in_the_base_file_are_kept_and_settings_win_for_globals(tmp_path, monkeypatch):
    write_base(tmp_path, [{"job_name": "pushgateway", "static_configs": [{"targets": ["pushgateway:9091"]}]}])
    monkeypatch.setattr(prometheus, "CONFIG_SOURCE", tmp_path)
    settings = parse("dev", {"platform": "docker", "prometheus": {"scrape_interval": "30s", "scrape_timeout": "20s"}})
    config = yaml.safe_load(prometheus.render_config(
        settings.prometheus, DockerPlatform(), [], ["alertmanager:9093"], "dev", "local"))
    assert config["global"]["scrape_interval"] == "30s"
    assert [j["job_name"] for j in config["scrape_configs"]][:1] == ["pushgateway"]


def test_a_job_name_used_twice_is_refused(tmp_path, monkeypatch):
    write_base(tmp_path, [{"job_name": "docker-containers", "static_configs": [{"targets": ["x:1"]}]}])
    monkeypatch.setattr(prometheus, "CONFIG_SOURCE", tmp_path)
    with pytest.raises(ValueError, match="scrape job names used twice: docker-containers"):
        prometheus.render_config(parse("dev", {"platform": "docker"}).prometheus, DockerPlatform(), [], [], "dev", "local")


def test_rendering_is_byte_identical_across_runs():
    first = container_files(run_program("prod", stack_config("prod"), {**SECRETS}), "prometheus")
    second = container_files(run_program("prod", stack_config("prod"), {**SECRETS}), "prometheus")
    assert first == second
