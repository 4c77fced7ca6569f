"""Exact oracles for what the platforms render (issue 15): RBAC, probes and health checks, and the
volumes that hold each service's data.

Every expected value below is written from the requirement (docs/platforms.md, "Kubernetes" and "Docker",
and the upstream program's own defaults), never read from the code under test.
"""

from __future__ import annotations

import posixpath

import pytest

from conftest import container_args, container_files, controller, merge, run_program, stack_config, stack_secrets
from components.tools.render import CONTROLLERS, unwrap

import yaml

KUBERNETES_STACKS = ("staging", "prod")
SHIPPERS = ("alloy", "promtail")

# docs/platforms.md "Kubernetes", least privilege: each service that reads the API may do exactly
# what it needs. Prometheus's discovery roles (Prometheus v3.14.0, discovery/kubernetes/): pod
# reads pods; endpointslice (the API server job, and annotated Services) reads endpointslices,
# services and pods; node (the kubelet and cAdvisor jobs) reads nodes. No role reads the
# deprecated Endpoints API.
# Scraping the kubelets takes `get` of nodes/metrics, the API server `get` of /metrics. The log
# shippers find the node's pods with the pod role. kube-state-metrics lists and watches the ten
# kinds of object it reports on, and nothing else.
PROMETHEUS_GRANTS = frozenset(
    {("", resource, verb) for resource in ("pods", "services", "nodes") for verb in ("get", "list", "watch")}
    | {("discovery.k8s.io", "endpointslices", verb) for verb in ("get", "list", "watch")}
    | {("", "nodes/metrics", "get"), ("nonResourceURL", "/metrics", "get")}
)
KUBE_STATE_METRICS_GRANTS = frozenset(
    (group, resource, verb)
    for group, resources in (
        ("", ("pods", "nodes", "persistentvolumeclaims", "persistentvolumes")),
        ("apps", ("deployments", "statefulsets", "daemonsets", "replicasets")),
        ("batch", ("jobs", "cronjobs")),
    )
    for resource in resources
    for verb in ("list", "watch")
)
SHIPPER_GRANTS = frozenset(("", "pods", verb) for verb in ("get", "list", "watch"))


def with_shipper(stack: str, shipper: str):
    config = merge(stack_config(stack), {"log_shipper": {"type": shipper}})
    return run_program(stack, config, stack_secrets(stack))


@pytest.fixture(scope="module")
def shipper_runs(stack_runs) -> dict:
    """Every stack with each log shipper (the shipped stacks use Alloy)."""
    runs = {}
    for stack in ("dev", *KUBERNETES_STACKS):
        runs[(stack, "alloy")] = stack_runs[stack]
        runs[(stack, "promtail")] = with_shipper(stack, "promtail")
    return runs


def grants(rules: list[dict]) -> set[tuple[str, str, str]]:
    """A role's rules as the set of single permissions they grant."""
    granted = set()
    for rule in rules:
        for verb in rule["verbs"]:
            for url in rule.get("nonResourceURLs", []):
                granted.add(("nonResourceURL", url, verb))
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    granted.add((group, resource, verb))
    return granted


def rbac(run, kind: str) -> dict[str, dict]:
    return {
        unwrap(r.inputs)["metadata"]["name"]: unwrap(r.inputs)
        for r in run.resources
        if r.type == f"kubernetes:rbac.authorization.k8s.io/v1:{kind}"
    }


@pytest.mark.parametrize("shipper", SHIPPERS)
@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
class TestRbac:
    # Requirement: exactly Prometheus, the log shipper and kube-state-metrics get cluster-wide
    # read access, named <namespace>-<service>; nothing else in the stack has a role.
    def test_exactly_the_discovering_services_have_roles(self, shipper_runs, stack, shipper):
        run = shipper_runs[(stack, shipper)]
        assert set(rbac(run, "ClusterRole")) == {
            "observability-prometheus", f"observability-{shipper}", "observability-kube-state-metrics",
        }
        assert rbac(run, "Role") == {} and rbac(run, "RoleBinding") == {}

    # Requirement: each ClusterRole grants exactly what its service's discovery reads: no less
    # (discovery of the per-node exporters, your pods and services, or the node's logs breaks),
    # no more (least privilege: the shipper is not Prometheus).
    def test_each_role_grants_exactly_what_its_discovery_reads(self, shipper_runs, stack, shipper):
        roles = rbac(shipper_runs[(stack, shipper)], "ClusterRole")
        assert grants(roles["observability-prometheus"]["rules"]) == PROMETHEUS_GRANTS
        assert grants(roles[f"observability-{shipper}"]["rules"]) == SHIPPER_GRANTS
        assert grants(roles["observability-kube-state-metrics"]["rules"]) == KUBE_STATE_METRICS_GRANTS

    # Requirement: every workload runs as a service account of its own, named after it; a pod
    # gets a token only where it calls the API (neither its account nor the pod mounts one else).
    def test_each_workload_has_its_own_account_and_only_the_discovering_pods_a_token(self, shipper_runs, stack,
                                                                                      shipper):
        run = shipper_runs[(stack, shipper)]
        accounts = {unwrap(r.inputs)["metadata"]["name"]: unwrap(r.inputs)
                    for r in run.of_type("kubernetes:core/v1:ServiceAccount")}
        workloads = [r for r in run.resources if r.type in CONTROLLERS]
        assert set(accounts) == {r.name for r in workloads}
        account_urns = {r.name: r.urn for r in run.of_type("kubernetes:core/v1:ServiceAccount")}
        for r in workloads:
            pod = unwrap(r.inputs)["spec"]["template"]["spec"]
            assert pod["serviceAccountName"] == r.name
            # Created after its account: a pod naming a missing account is refused.
            assert account_urns[f"{r.name}-account"] in r.dependencies, r.name
            if r.name in ("prometheus", shipper, "kube-state-metrics"):
                assert "automountServiceAccountToken" not in pod, r.name
                assert "automountServiceAccountToken" not in accounts[r.name], r.name
            else:
                assert pod["automountServiceAccountToken"] is False, r.name
                assert accounts[r.name]["automountServiceAccountToken"] is False, r.name

    # Requirement: each binding gives its role to its own service's account in the stack's namespace.
    def test_each_binding_ties_the_role_to_its_service_account(self, shipper_runs, stack, shipper):
        bindings = rbac(shipper_runs[(stack, shipper)], "ClusterRoleBinding")
        assert set(bindings) == {
            "observability-prometheus", f"observability-{shipper}", "observability-kube-state-metrics",
        }
        for name, binding in bindings.items():
            service = name.removeprefix("observability-")
            assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}
            # The log shipper is a node agent, in the node agents' namespace.
            namespace = "observability-node-agents" if service == shipper else "observability"
            assert binding["subjects"] == [{"kind": "ServiceAccount", "name": service, "namespace": namespace}]
            pod = unwrap(controller(shipper_runs[(stack, shipper)], service).inputs)["spec"]["template"]["spec"]
            assert pod["serviceAccountName"] == service


# Services with an HTTP health endpoint on staging and prod (docs/platforms.md: every service, on kubernetes).
PROBED = ("prometheus", "alertmanager", "loki", "alloy", "otel-collector", "jaeger", "grafana",
          "node-exporter", "kube-state-metrics", "postgres-exporter", "redis-exporter", "gpu-exporter")


def probes(run, service: str) -> tuple[dict, dict | None]:
    container = unwrap(controller(run, service).inputs)["spec"]["template"]["spec"]["containers"][0]
    return container["readinessProbe"], container.get("livenessProbe")


def pods_of(run, service: str) -> list[str]:
    """The service's workload, or (a service run as several roles, prod's Loki) each role's."""
    if service in run.outputs["services"]:
        return [service]
    return [w for w in run.outputs["services"] if w.startswith(f"{service}-")]


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
class TestProbes:
    # Requirement: readiness reacts within 30s (3 misses 10s apart); liveness restarts a container
    # only after 6 misses 20s apart (2 minutes) and not in its first 30s, so a slow start (WAL
    # replay) or one slow answer never restarts it; the first miss must not. Loki's roles in
    # microservices mode have no liveness probe at all (docs/logs.md): an ingester replays its
    # write-ahead log and waits for its ring for as long as that takes.
    @pytest.mark.parametrize("service", PROBED)
    def test_probe_thresholds_and_periods_are_exact(self, stack_runs, stack, service):
        for pod in pods_of(stack_runs[stack], service):
            readiness, liveness = probes(stack_runs[stack], pod)
            assert {k: v for k, v in readiness.items() if k != "httpGet"} == {"periodSeconds": 10, "failureThreshold": 3}
            if pod.startswith("loki-"):
                assert liveness is None, pod
                continue
            assert {k: v for k, v in liveness.items() if k != "httpGet"} == {
                "periodSeconds": 20, "failureThreshold": 6, "initialDelaySeconds": 30,
            }
            assert readiness["httpGet"] == liveness["httpGet"]

    # Requirement (docs/platforms.md): each probe calls the service's own ready or health endpoint.
    @pytest.mark.parametrize(
        "service, path",
        [("prometheus", "/-/ready"), ("alertmanager", "/-/ready"), ("loki", "/ready"),
         ("alloy", "/-/ready"), ("grafana", "/api/health"), ("kube-state-metrics", "/readyz")],
    )
    def test_probe_calls_the_ready_endpoint(self, stack_runs, stack, service, path):
        for pod in pods_of(stack_runs[stack], service):
            readiness, _ = probes(stack_runs[stack], pod)
            assert readiness["httpGet"]["path"] == path, pod


# Requirement (docs/platforms.md "Docker"): a health check every 10s, 6 retries, 30s start period (5s timeout
# so a hung endpoint counts as a miss), for every service whose image can make a request.
@pytest.mark.parametrize(
    "service", ["prometheus", "alertmanager", "loki", "alloy", "jaeger", "grafana", "node-exporter", "cadvisor"]
)
def test_docker_health_checks_are_exact(stack_runs, service):
    container = next(r for r in stack_runs["dev"].of_type("docker:index/container:Container") if r.name == service)
    check = unwrap(container.inputs)["healthcheck"]
    assert {k: v for k, v in check.items() if k != "tests"} == {
        "interval": "10s", "timeout": "5s", "retries": 6, "startPeriod": "30s",
    }


def flag(args: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in args if a.startswith(name + "=")]
    assert len(values) == 1, f"{name} given {len(values)} times in {args}"
    return values[0]


def loki_data_paths(config: dict) -> list[str]:
    """Every directory Loki writes: path_prefix and any *_directory / *_dir key, anywhere."""
    found = [config["common"]["path_prefix"]]

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and (key.endswith("_directory") or key.endswith("_dir") or key == "dir"):
                    found.append(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(config)
    return found


def data_paths(run, service: str) -> list[str]:
    """Where each service is told (by its flags or config) to keep the data it must not lose."""
    args = container_args(run, service)
    files = container_files(run, service)
    if service == "prometheus":
        return [flag(args, "--storage.tsdb.path")]
    if service == "alertmanager":
        return [flag(args, "--storage.path")]
    if service == "alloy":
        # loki.source.* keep their read positions under the storage path.
        return [flag(args, "--storage.path")]
    if service == "promtail":
        return [yaml.safe_load(files["/etc/promtail/promtail.yml"])["positions"]["filename"]]
    if service == "loki" or service.startswith("loki-"):
        return loki_data_paths(yaml.safe_load(files["/etc/loki/loki.yml"]))
    if service == "jaeger":
        backend = yaml.safe_load(files["/etc/jaeger/config.yaml"])["extensions"]["jaeger_storage"]["backends"]
        badger = backend["traces"]["badger"]
        assert badger["ephemeral"] is False
        return [badger["directories"]["keys"], badger["directories"]["values"]]
    if service == "grafana":
        # The image keeps its database under GF_PATHS_DATA, /var/lib/grafana unless set.
        return [environment(run, service).get("GF_PATHS_DATA", "/var/lib/grafana")]
    raise AssertionError(service)


def environment(run, service: str) -> dict[str, str]:
    docker = [r for r in run.of_type("docker:index/container:Container") if r.name == service]
    if docker:
        return dict(e.split("=", 1) for e in unwrap(docker[0].inputs).get("envs") or [])
    container = unwrap(controller(run, service).inputs)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def data_mounts(run, service: str) -> list[str]:
    """Mount paths backed by storage that outlives the container: a docker volume, a volume
    claim, or (per-node state, docs/platforms.md) the host path /var/lib/<namespace>-<service>."""
    docker = [r for r in run.of_type("docker:index/container:Container") if r.name == service]
    if docker:
        volumes = {unwrap(v.inputs)["name"] for v in run.of_type("docker:index/volume:Volume")}
        return [v["containerPath"] for v in unwrap(docker[0].inputs).get("volumes") or []
                if v.get("volumeName") in volumes and not v.get("readOnly")]
    spec = unwrap(controller(run, service).inputs)["spec"]
    pod = spec["template"]["spec"]
    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    persistent = set(claims)
    for volume in pod["volumes"]:
        if "persistentVolumeClaim" in volume:
            persistent.add(volume["name"])
        host = volume.get("hostPath")
        if host and host["path"] == f"/var/lib/observability-{service}" and host.get("type") == "DirectoryOrCreate":
            persistent.add(volume["name"])
    mounts = pod["containers"][0]["volumeMounts"]
    return [m["mountPath"] for m in mounts if m["name"] in persistent and not m.get("readOnly")]


def under(path: str, mount: str) -> bool:
    path, mount = posixpath.normpath(path), posixpath.normpath(mount)
    return posixpath.isabs(path) and posixpath.commonpath([path, mount]) == mount


DATA_SERVICES = {
    "dev": ("prometheus", "alertmanager", "loki", "grafana"),  # dev's Jaeger keeps traces in memory
    "staging": ("prometheus", "alertmanager", "loki", "jaeger", "grafana"),
    # prod's Jaeger keeps traces in Elasticsearch and its Grafana in PostgreSQL; its Loki roles
    # that keep data (the write-ahead log, an index copy, the compactor's work) keep it on claims.
    "prod": ("prometheus", "alertmanager", "loki-ingester", "loki-index-gateway", "loki-compactor"),
}


# Requirement: what a service must not lose on a restart (Prometheus's TSDB, Loki's path_prefix,
# chunks, rules and compactor, Alertmanager's silences, Jaeger's badger dirs, Grafana's database,
# the shippers' read positions) sits under a mount of a data volume or claim, never in the
# container's own filesystem, /tmp or an emptyDir.
@pytest.mark.parametrize("shipper", SHIPPERS)
@pytest.mark.parametrize("stack", ("dev", *KUBERNETES_STACKS))
def test_every_data_path_is_on_a_data_volume(shipper_runs, stack, shipper):
    run = shipper_runs[(stack, shipper)]
    for service in (*DATA_SERVICES[stack], shipper):
        mounts = data_mounts(run, service)
        assert mounts, f"{stack}: {service} has no data volume"
        for path in data_paths(run, service):
            assert any(under(path, m) for m in mounts), f"{stack}: {service} writes {path}, outside {mounts}"


def test_data_path_oracle_can_fail():
    # The position file of a shipper moved to /tmp is outside its data mount.
    assert not under("/tmp/positions.yaml", "/var/lib/promtail")
    assert not under("/var/lib/promtail-old/p.yaml", "/var/lib/promtail")
    assert under("/var/lib/promtail/positions.yaml", "/var/lib/promtail")


@pytest.mark.parametrize("stack", KUBERNETES_STACKS)
def test_the_namespaces_carry_the_common_labels_and_their_pod_security_level(stack_runs, stack):
    # docs/platforms.md "Kubernetes": the namespaces are objects of the stack like the others. The
    # services' runs every pod under Pod Security's restricted profile (enforced, audited and
    # warned about); the node agents' is the one namespace at privileged.
    for name, title, level in (("namespace", "namespace", "restricted"), ("node-agents-namespace", "node-agents", "privileged")):
        namespace = stack_runs[stack].one("kubernetes:core/v1:Namespace", name).inputs
        assert namespace["metadata"]["labels"] == {
            "app.kubernetes.io/name": title,
            "app.kubernetes.io/instance": stack,
            "app.kubernetes.io/part-of": "observability",
            "app.kubernetes.io/managed-by": "pulumi",
            "pod-security.kubernetes.io/enforce": level,
            "pod-security.kubernetes.io/audit": level,
            "pod-security.kubernetes.io/warn": level,
        }


@pytest.mark.parametrize("stack, provider, package", [
    ("dev", "pulumi:providers:docker", "docker:"),
    ("staging", "pulumi:providers:kubernetes", "kubernetes:"),
    ("prod", "pulumi:providers:kubernetes", "kubernetes:"),
])
def test_every_platform_resource_goes_to_the_engine_or_cluster_the_stack_names(stack_runs, stack, provider, package):
    """docs/configuration.md: `docker.host` and `kubernetes.context` choose the engine or cluster. Only the stack's
    own provider, built from them, may manage its resources: the default provider would reach
    whatever engine or kubeconfig context the machine running `pulumi up` happens to have."""
    run = stack_runs[stack]
    [explicit] = [r for r in run.resources if r.type == provider]
    managed = [r for r in run.resources if r.type.startswith(package)]
    assert managed
    strays = [f"{r.type} {r.name}" for r in managed if not r.provider.startswith(explicit.urn + "::")]
    assert not strays, f"{stack}: not managed by the stack's {provider}: {strays}"
