"""Loki in microservices mode (prod): each role its own pods, wired the way Loki 3.7.6 needs.

What the roles' configs say is checked here; that every key and flag exists in Loki 3.7.6 is
tests/test_upstream_logs_grafana.py's, that the network admits exactly these calls is
tests/platforms/test_network.py's, and that losing a pod or a node stops no path is
tests/platforms/test_topology.py's."""

from __future__ import annotations

import pytest
import yaml

from components.settings import ConfigError
from conftest import (
    Run,
    container_args,
    container_files,
    controller,
    merge,
    run_program,
    stack_config,
    stack_secrets,
)

CONFIG = "/etc/loki/loki.yml"
ROLES = ("distributor", "ingester", "querier", "query-frontend", "query-scheduler", "index-gateway", "compactor")
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


def config(run: Run, role: str) -> dict:
    return yaml.safe_load(container_files(run, f"loki-{role}")[CONFIG])


def pod(run: Run, role: str) -> dict:
    return controller(run, f"loki-{role}").inputs["spec"]["template"]["spec"]


def test_prod_runs_each_role_as_its_own_pods(stack_runs):
    run = stack_runs["prod"]
    kinds = {role: controller(run, f"loki-{role}").type.rsplit(":", 1)[1] for role in ROLES}
    # Roles that keep data (the write-ahead log, an index copy, the compactor's work) keep a volume.
    assert kinds == {"distributor": "Deployment", "querier": "Deployment", "query-frontend": "Deployment",
                     "query-scheduler": "Deployment", "ingester": "StatefulSet", "index-gateway": "StatefulSet",
                     "compactor": "StatefulSet"}
    for role in ROLES:
        assert container_args(run, f"loki-{role}")[:2] == [f"-config.file={CONFIG}", f"-target={role}"]
        labels = controller(run, f"loki-{role}").inputs["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == role
    assert "loki" not in run.outputs["services"]


def test_every_role_shares_the_store_schema_and_limits_of_the_monolithic_config(stack_runs):
    run = stack_runs["prod"]
    shared = ("schema_config", "limits_config", "compactor", "auth_enabled", "server")
    first = config(run, "ingester")
    for role in ROLES:
        assert {key: config(run, role)[key] for key in shared} == {key: first[key] for key in shared}, role
        assert config(run, role)["common"]["storage"] == first["common"]["storage"]
        assert config(run, role)["common"]["replication_factor"] == 3
        # Rings gossip; no role advertises loopback, as the monolithic config does.
        assert "instance_addr" not in config(run, role)["common"]
        assert "ring" not in config(run, role)["common"]
        assert config(run, role)["memberlist"] == {"join_members": ["dns+loki-memberlist:7946"],
                                                   "cluster_label": "observability.loki"}


def test_the_memberlist_service_lists_every_role_ready_or_not(stack_runs):
    run = stack_runs["prod"]
    spec = run.one("kubernetes:core/v1:Service", "loki-memberlist-peers").inputs["spec"]
    assert spec["clusterIP"] == "None" and spec["publishNotReadyAddresses"] is True
    assert spec["ports"] == [{"name": "peers", "port": 7946, "targetPort": 7946, "protocol": "TCP"}]
    for role in ROLES:
        labels = controller(run, f"loki-{role}").inputs["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(key) == value for key, value in spec["selector"].items()), role


def test_ingesters_keep_three_copies_on_three_nodes(stack_runs):
    run = stack_runs["prod"]
    ingester = controller(run, "loki-ingester").inputs["spec"]
    assert ingester["replicas"] == 3
    # Each ingester's zone is the node it runs on; zone awareness puts a stream's three copies in
    # three zones, on the ingesters and on those that write or read them.
    args = container_args(run, "loki-ingester")
    assert "-ingester.availability-zone=$(NODE_NAME)" in args
    env = pod(run, "ingester")["containers"][0]["env"]
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in env
    for role in ("ingester", "distributor", "querier"):
        assert config(run, role)["ingester"]["lifecycler"]["ring"]["zone_awareness_enabled"] is True


def test_an_ingester_rollout_keeps_the_write_ahead_log(stack_runs):
    run = stack_runs["prod"]
    wal = config(run, "ingester")["ingester"]["wal"]
    assert wal["enabled"] is True and wal["dir"].startswith("/loki/")
    # Three quarters of the 8Gi limit, in MB as Loki's byte sizes take it.
    assert wal["replay_memory_ceiling"] == "6144MB"
    spec = controller(run, "loki-ingester").inputs["spec"]
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert {"name": "data", "mountPath": "/loki"} in spec["template"]["spec"]["containers"][0]["volumeMounts"]
    # One pod at a time (the StatefulSet's default rolling update), time to stop cleanly, and no
    # liveness probe to kill an ingester that is still replaying its log.
    assert "updateStrategy" not in spec
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] == 300
    container = spec["template"]["spec"]["containers"][0]
    assert "livenessProbe" not in container
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}


def test_queries_flow_from_frontends_through_schedulers_to_queriers(stack_runs):
    run = stack_runs["prod"]
    frontend, querier = config(run, "query-frontend"), config(run, "querier")
    assert frontend["frontend"] == {"scheduler_address": "loki-query-scheduler-discovery:9095",
                                    "tail_proxy_url": "http://loki-querier:3100"}
    assert querier["frontend_worker"] == {"scheduler_address": "loki-query-scheduler-discovery:9095"}
    scheduler = run.one("kubernetes:core/v1:Service", "loki-query-scheduler-discovery-peers").inputs["spec"]
    assert scheduler["clusterIP"] == "None"
    assert scheduler["ports"][0]["port"] == 9095
    for reader in (frontend, querier):
        # Loki refuses to start either without the compactor's address (deletes filter queries).
        assert reader["common"]["compactor_grpc_address"] == "loki-compactor:9095"
        assert reader["storage_config"]["tsdb_shipper"]["index_gateway_client"]["server_address"] == \
            "dns+loki-index-gateway:9095"
    assert config(run, "index-gateway")["index_gateway"] == {"mode": "simple"}
    # Roles that do not read do not name what readers call.
    for role in ("distributor", "ingester", "compactor", "query-scheduler"):
        assert "compactor_grpc_address" not in config(run, role)["common"], role
        assert "storage_config" not in config(run, role), role


def test_stateless_roles_scale_with_their_cpu_and_never_drop_below_two(stack_runs):
    run = stack_runs["prod"]
    scalers = {r.name: r.inputs["spec"] for r in run.of_type(HPA) if r.name.startswith("loki-")}
    assert set(scalers) == {f"loki-{role}-autoscaler" for role in ("distributor", "querier", "query-frontend")}
    # prod's stack file: distributors 2 to 6, queriers 3 to 12; frontends take the defaults.
    bounds = {name: (s["minReplicas"], s["maxReplicas"]) for name, s in scalers.items()}
    assert bounds == {"loki-distributor-autoscaler": (2, 6), "loki-querier-autoscaler": (3, 12),
                      "loki-query-frontend-autoscaler": (2, 4)}
    for name, spec in scalers.items():
        role = name.removesuffix("-autoscaler")
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": role}
        assert spec["metrics"] == [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
        # The autoscaler alone sets the count: a `pulumi up` never resets it.
        assert "replicas" not in controller(run, role).inputs["spec"]


def test_prometheus_scrapes_every_role_as_the_loki_job(stack_runs):
    run = stack_runs["prod"]
    prometheus = yaml.safe_load(container_files(run, "prometheus")["/etc/prometheus/prometheus.yml"])
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "loki"]
    keep = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert set(keep["__meta_kubernetes_pod_label_app_kubernetes_io_name"].split("|")) == {f"loki-{r}" for r in ROLES}
    assert keep["__meta_kubernetes_pod_container_port_number"] == "3100"
    assert {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
            "target_label": "component"} in job["relabel_configs"]
    assert not [j for j in prometheus["scrape_configs"] if j["job_name"].startswith("loki-")]


def test_writers_push_to_the_distributors_and_grafana_queries_the_frontends(stack_runs):
    run = stack_runs["prod"]
    datasource = run.one("grafana:oss/dataSource:DataSource", "datasource-loki").inputs
    assert datasource["url"] == "http://loki-query-frontend:3100"
    collector = yaml.safe_load(container_files(run, "otel-collector")["/etc/otelcol-contrib/config.yaml"])
    assert collector["exporters"]["otlp_http/loki"]["endpoint"] == "http://loki-distributor:3100/otlp"
    assert "loki-distributor:3100" in container_files(run, "alloy")["/etc/alloy/config.alloy"]


def render(stack: str, loki: dict) -> Run:
    return run_program(stack, merge(stack_config(stack), {"loki": loki}), stack_secrets(stack))


@pytest.mark.parametrize("stack, loki, key, message", [
    ("dev", {"mode": "microservices", "storage": {"type": "s3", "bucket": "logs"}}, "loki.mode",
     "needs the kubernetes platform"),
    ("staging", {"mode": "microservices"}, "loki.storage.type", "must be s3 or gcs because loki.mode is microservices"),
    ("staging", {"microservices": {"querier": {"max_replicas": 8}}}, "loki.microservices",
     "applies only with loki.mode: microservices"),
    ("prod", {"microservices": {"ingester": {"replicas": 2}}}, "loki.microservices.ingester.replicas", "3"),
    ("prod", {"microservices": {"querier": {"min_replicas": 1}}}, "loki.microservices.querier.min_replicas", "2"),
    ("prod", {"microservices": {"distributor": {"min_replicas": 5, "max_replicas": 3}}},
     "loki.microservices.distributor", "max_replicas must be at least min_replicas"),
])
def test_a_shape_loki_cannot_run_is_refused_before_anything_is_registered(stack, loki, key, message):
    run = Run(stack)
    with pytest.raises(ConfigError) as error:
        run_program(stack, merge(stack_config(stack), {"loki": loki}), stack_secrets(stack), run=run)
    assert f"key '{key}'" in str(error.value) and message in str(error.value)
    assert run.resources == []
