"""The kubernetes platform: the objects staging and prod declare, valid for the cluster versions
the docs support, wired so that pods find their files, peers and permissions."""

import kubernetes_validate
import pytest

from components.platforms.kubernetes import PEERS
from components.workload import CONFIG_HASH
from conftest import (
    CONTROLLERS,
    MOCK_NAME_SUFFIX,
    SECRETS,
    container_files,
    controller,
    is_secret,
    merge,
    prometheus_config,
    run_program,
    stack_config,
)

KUBERNETES_STACKS = ("staging", "prod")
SUPPORTED_VERSIONS = ("1.29.0", "1.37.0")


def manifest(resource):
    """The object as the provider sends it to the API server."""
    _, group_version, kind = resource.type.split(":")
    api_version = group_version.removeprefix("core/")
    body = {k: v for k, v in resource.inputs.items() if k not in ("apiVersion", "kind")}
    body["metadata"] = {"name": resource.name + MOCK_NAME_SUFFIX, **body.get("metadata", {})}
    return {"apiVersion": api_version, "kind": kind, **body}


def kubernetes_objects(run):
    return [r for r in run.resources if r.type.startswith("kubernetes:")]


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_every_object_validates_against_the_kubernetes_schema(stack_runs, stack, version):
    objects = kubernetes_objects(stack_runs[stack])
    assert len(objects) > 15
    for resource in objects:
        kubernetes_validate.validate(manifest(resource), version, strict=True)


def test_schema_validation_has_teeth():
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replica": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, SUPPORTED_VERSIONS[0], strict=True)


def kinds(run):
    return {r.name: r.type.rsplit(":", 1)[1] for r in run.resources if r.type in CONTROLLERS}


def test_each_service_runs_as_the_controller_it_needs(stack_runs):
    assert kinds(stack_runs["prod"]) == {
        "prometheus": "StatefulSet",
        "alertmanager": "StatefulSet",
        "node-exporter": "DaemonSet",
        # The kubelets serve cAdvisor's metrics: no cAdvisor DaemonSet.
        "kube-state-metrics": "Deployment",
        "gpu-exporter": "DaemonSet",
        "postgres-exporter": "Deployment",
        "redis-exporter": "Deployment",
        # Loki's roles (loki.mode: microservices): those that keep data on a claim are StatefulSets.
        "loki-distributor": "Deployment",
        "loki-ingester": "StatefulSet",
        "loki-querier": "Deployment",
        "loki-query-frontend": "Deployment",
        "loki-query-scheduler": "Deployment",
        "loki-index-gateway": "StatefulSet",
        "loki-compactor": "StatefulSet",
        "alloy": "DaemonSet",
        "otel-collector": "Deployment",
        # The collector's sampler tier (otel_collector.scale_out): a fixed count of stateless pods.
        "otel-collector-sampler": "Deployment",
        # Jaeger's queriers and collectors: its traces are in Elasticsearch, no volume (badger, in
        # staging, is a StatefulSet with a claim).
        "jaeger": "Deployment",
        "jaeger-collector": "Deployment",
        # Its database is in PostgreSQL (grafana.database): no volume.
        "grafana": "Deployment",
    }


@pytest.mark.parametrize(
    "stack, service, replicas, size, storage_class",
    [
        ("staging", "prometheus", 1, "50Gi", "standard"),
        ("prod", "prometheus", 2, "200Gi", "fast-ssd"),
        ("prod", "alertmanager", 3, "2Gi", "fast-ssd"),
    ],
)
def test_stateful_services_keep_data_on_claims(stack_runs, stack, service, replicas, size, storage_class):
    spec = controller(stack_runs[stack], service).inputs["spec"]
    assert spec["replicas"] == replicas
    assert spec["serviceName"] == service
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == size
    assert claim["spec"]["storageClassName"] == storage_class
    mounts = spec["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "data", "mountPath": f"/{service}"} in mounts
    # The image's unprivileged user owns the claim.
    assert spec["template"]["spec"]["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534, "fsGroup": 65534,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def services(run):
    return {r.name: r.inputs["spec"] for r in run.of_type("kubernetes:core/v1:Service")}


def test_stateful_services_are_headless_so_each_replica_has_a_name(stack_runs):
    found = services(stack_runs["prod"])
    for name in ("prometheus", "alertmanager"):
        assert found[name]["clusterIP"] == "None"
        assert found[name]["publishNotReadyAddresses"] is True
    assert {p["name"]: p["port"] for p in found["alertmanager"]["ports"]} == {"web": 9093, "cluster": 9094}
    assert "clusterIP" not in found["postgres-exporter"]
    # Per-node exporters are found by pod discovery, not through a Service.
    assert not {"node-exporter", "cadvisor", "gpu-exporter"} & set(found)


def test_services_select_the_pods_of_their_controller(stack_runs):
    run = stack_runs["prod"]
    for name, spec in services(run).items():
        if any(key.startswith(PEERS) for key in spec["selector"]):
            continue  # a headless Service over the pods of whichever workloads name it (Workload.peers)
        pod_labels = controller(run, name).inputs["spec"]["template"]["metadata"]["labels"]
        assert spec["selector"].items() <= pod_labels.items(), name
        assert controller(run, name).inputs["spec"]["selector"]["matchLabels"] == spec["selector"]


def test_config_maps_have_generated_names_and_are_mounted(stack_runs):
    run = stack_runs["prod"]
    for config_map in run.of_type("kubernetes:core/v1:ConfigMap"):
        assert "name" not in config_map.inputs["metadata"], "a fixed name would not roll the pods"
    files = container_files(run, "prometheus")
    assert {"/etc/prometheus/prometheus.yml", "/etc/prometheus/rules/catalog.yml"} <= set(files)


def pod_annotation(run, service):
    return controller(run, service).inputs["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH]


def test_a_config_change_rolls_exactly_the_pods_that_mount_it(stack_runs):
    before = stack_runs["prod"]
    after = run_program("prod", merge(stack_config("prod"), {"prometheus": {"scrape_interval": "30s"}}), SECRETS)
    assert pod_annotation(after, "prometheus") != pod_annotation(before, "prometheus")
    for service in ("alertmanager", "node-exporter", "postgres-exporter"):
        assert pod_annotation(after, service) == pod_annotation(before, service), service


def test_secrets_are_mounted_as_files_and_stay_secret(stack_runs):
    run = stack_runs["prod"]
    secrets = run.of_type("kubernetes:core/v1:Secret")
    assert {s.name for s in secrets} == {
        "alertmanager-secrets", "prometheus-secrets", "postgres-exporter-secrets", "redis-exporter-secrets",
        "grafana-secrets", "jaeger-secrets", "jaeger-collector-secrets",
        # The bucket's keys, for the Loki roles that read or write it.
        *(f"loki-{role}-secrets" for role in ("ingester", "querier", "index-gateway", "compactor")),
    }
    for secret in secrets:
        assert "name" not in secret.inputs["metadata"]
        assert is_secret(secret.raw_inputs["stringData"]), secret.name
    pod = controller(run, "alertmanager").inputs["spec"]["template"]["spec"]
    assert {"name": "secrets", "mountPath": "/run/secrets", "readOnly": True} in pod["containers"][0]["volumeMounts"]


def test_every_container_has_requests_limits_and_probes(stack_runs):
    run = stack_runs["prod"]
    for resource in run.resources:
        if resource.type not in CONTROLLERS:
            continue
        (container,) = resource.inputs["spec"]["template"]["spec"]["containers"]
        assert set(container["resources"]) == {"requests", "limits"}, resource.name
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}, resource.name
        assert container["readinessProbe"]["httpGet"]["port"] in {p["name"] for p in container["ports"]}, resource.name
        # Loki's roles are only kept out of traffic while not ready (an ingester replays its log
        # for minutes); every other container is also restarted when it keeps failing.
        assert ("livenessProbe" in container) != resource.name.startswith("loki-"), resource.name


def test_resources_come_from_the_stack_settings(stack_runs):
    container = controller(stack_runs["prod"], "prometheus").inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "web"}


def test_prometheus_may_discover_targets_and_nothing_more(stack_runs):
    run = stack_runs["prod"]
    role = run.one("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole", "prometheus-discovery").inputs
    assert role["metadata"]["name"] == "observability-prometheus"
    # Reading only: no rule creates, changes or deletes anything.
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}
    binding = run.one("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", "prometheus-discovery").inputs
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "prometheus", "namespace": "observability"}]
    assert binding["roleRef"]["name"] == "observability-prometheus"
    assert controller(run, "prometheus").inputs["spec"]["template"]["spec"]["serviceAccountName"] == "prometheus"
    # Every service has its own account; only those that read the API get a role: Prometheus,
    # the log shipper and kube-state-metrics.
    assert {r.name for r in run.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")} == {
        "prometheus-discovery", "alloy-discovery", "kube-state-metrics-discovery"}


def test_objects_with_fixed_names_are_deleted_before_they_are_replaced(stack_runs):
    for resource in kubernetes_objects(stack_runs["prod"]):
        if "name" in resource.inputs.get("metadata", {}) and resource.type != "kubernetes:core/v1:Namespace":
            assert resource.delete_before_replace, resource.name


def test_provider_and_namespace_come_from_settings(stack_runs):
    run = stack_runs["staging"]
    provider = run.one("pulumi:providers:kubernetes", "kubernetes").inputs
    assert provider["context"] == "staging" and provider["namespace"] == "observability"
    assert run.one("kubernetes:core/v1:Namespace", "namespace").inputs["metadata"]["name"] == "observability"
    other = run_program("staging", merge(stack_config("staging"), {"kubernetes": {"namespace": "monitoring"}}), SECRETS)
    for resource in kubernetes_objects(other):
        namespace = resource.inputs.get("metadata", {}).get("namespace")
        assert namespace in (None, "monitoring", "monitoring-node-agents"), resource.name
    assert other.one("kubernetes:core/v1:Namespace", "node-agents-namespace").inputs["metadata"]["name"] \
        == "monitoring-node-agents"
    # Exactly the node agents run in theirs.
    agents = {r.name for r in kubernetes_objects(other) if r.type in CONTROLLERS
              and r.inputs["metadata"]["namespace"] == "monitoring-node-agents"}
    assert agents == {"node-exporter", "alloy", "gpu-exporter"}
    named = run_program("staging", merge(stack_config("staging"), {"kubernetes": {"node_agents_namespace": "agents"}}),
                        SECRETS)
    assert named.one("kubernetes:apps/v1:DaemonSet", "alloy").inputs["metadata"]["namespace"] == "agents"


def test_per_node_exporters_stay_discoverable_with_user_discovery_off():
    run = run_program("prod", merge(stack_config("prod"), {"prometheus": {"discovery": False}}), SECRETS)
    jobs = {j["job_name"] for j in prometheus_config(run)["scrape_configs"]}
    assert "kubernetes-pods" not in jobs and "node-exporter" in jobs
    assert run.names("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole") == {
        "prometheus-discovery", "alloy-discovery", "kube-state-metrics-discovery"}


def test_prod_protects_its_data_and_keeps_it_on_destroy(stack_runs):
    # (Grafana keeps its data in PostgreSQL, Jaeger in Elasticsearch, outside the stack; Loki's
    # logs are in its bucket, but its ingesters' claims hold the write-ahead log.)
    for name in ("prometheus", "alertmanager", "loki-ingester", "loki-index-gateway", "loki-compactor"):
        statefulset = controller(stack_runs["prod"], name)
        assert statefulset.protect and statefulset.retain_on_delete, name
        policy = statefulset.inputs["spec"]["persistentVolumeClaimRetentionPolicy"]
        assert policy == {"whenDeleted": "Retain", "whenScaled": "Retain"}, name
    # Staging can be torn down and rebuilt.
    assert not controller(stack_runs["staging"], "prometheus").protect


def test_replicated_services_spread_over_nodes_and_keep_one_pod_up_in_a_drain(stack_runs):
    run = stack_runs["prod"]
    budgets = {r.name: r.inputs for r in run.of_type("kubernetes:policy/v1:PodDisruptionBudget")}
    assert {"prometheus-disruption-budget", "alertmanager-disruption-budget"} <= set(budgets)
    for service in ("prometheus", "alertmanager"):
        budget = budgets[f"{service}-disruption-budget"]
        selector = controller(run, service).inputs["spec"]["selector"]["matchLabels"]
        assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
        spec = controller(run, service).inputs["spec"]["template"]["spec"]
        by_node, by_zone = spec["topologySpreadConstraints"]
        # The scheduler refuses a second pod on a node while another node has none...
        assert by_node == {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
                           "labelSelector": {"matchLabels": selector}, "nodeTaintsPolicy": "Honor"}
        # ...and spreads over zones where it can; a cordoned node is no domain to even out.
        assert by_zone["topologyKey"] == "topology.kubernetes.io/zone"
        assert by_zone["whenUnsatisfiable"] == "ScheduleAnyway" and by_zone["nodeTaintsPolicy"] == "Honor"
        assert "affinity" not in spec
    # One replica has nothing to spread or to keep up.
    assert not stack_runs["staging"].of_type("kubernetes:policy/v1:PodDisruptionBudget")
    assert "topologySpreadConstraints" not in controller(stack_runs["staging"], "loki").inputs["spec"]["template"]["spec"]


def test_each_prometheus_replica_labels_its_series_and_alerts_still_deduplicate(stack_runs):
    run = stack_runs["prod"]
    env = controller(run, "prometheus").inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in env
    config = prometheus_config(run)
    assert config["global"]["external_labels"]["replica"] == "${POD_NAME}"
    assert config["alerting"]["alert_relabel_configs"] == [{"action": "labeldrop", "regex": "replica"}]
    assert "replica" not in prometheus_config(stack_runs["staging"])["global"]["external_labels"]


RESTRICTED = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}


def test_pods_run_restricted_except_where_host_access_needs_root(stack_runs):
    run = stack_runs["prod"]
    unrestricted = {"gpu-exporter", "alloy"}
    for resource in run.resources:
        if resource.type not in CONTROLLERS:
            continue
        pod = resource.inputs["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        if resource.name in unrestricted:
            # Root, as the workload says (tests/platforms/test_pod_privileges.py), but otherwise held
            # as tight as a restricted pod: no escalation, a read-only root, its runtime's seccomp.
            assert pod["securityContext"]["runAsUser"] == 0, resource.name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, resource.name
            continue
        assert container["securityContext"] == RESTRICTED, resource.name
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0, resource.name
        # A read-only root filesystem still needs somewhere to write scratch files.
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], resource.name
    # Nothing on kubernetes is privileged: the kubelets serve cAdvisor's metrics.
    assert not any(c.get("securityContext", {}).get("privileged")
                   for r in run.resources if r.type in CONTROLLERS
                   for c in r.inputs["spec"]["template"]["spec"]["containers"])


def test_a_workload_that_is_neither_restricted_nor_excused_is_refused():
    import pytest as _pytest

    from components.settings import parse
    from components.workload import Port, Workload

    resources = parse("dev", {"platform": "docker"}).prometheus.resources
    with _pytest.raises(ValueError, match="mystery: a restricted pod needs the image's user"):
        Workload(name="mystery", image="example/mystery:1.0", ports=(Port("http", 8080),), resources=resources)
