"""Each shipped stack end to end: what it deploys, how the pieces are wired, secrets kept secret."""

import json

import pytest

from conftest import SECRETS, STACKS, is_secret, merge, run_program, stack_config

CORE = ["alertmanager", "grafana", "jaeger", "loki", "otel-collector", "prometheus"]
# On kubernetes the kubelets serve cAdvisor's metrics, and kube-state-metrics reports the cluster.
KUBERNETES_EXPORTERS = ["gpu-exporter", "kube-state-metrics", "node-exporter", "postgres-exporter", "redis-exporter"]
SERVICES = {
    "dev": sorted([*CORE, "alloy", "cadvisor", "node-exporter"]),
    "staging": sorted([*CORE, *KUBERNETES_EXPORTERS, "alloy"]),
    "prod": sorted([*CORE, *KUBERNETES_EXPORTERS, "alloy"]),
}
# Workloads that are a further role of one of those services, under that service's component.
ROLES = {"dev": [], "staging": [], "prod": ["otel-collector-sampler", "jaeger-collector", *(
    f"loki-{role}" for role in ("distributor", "ingester", "querier", "query-frontend", "query-scheduler",
                                "index-gateway", "compactor"))]}


@pytest.mark.parametrize("stack", STACKS)
def test_stack_deploys_its_services_and_exports_where_to_find_them(stack_runs, stack):
    run = stack_runs[stack]
    # prod's Loki is its roles alone (loki.mode: microservices): no workload is named loki.
    workloads = [s for s in SERVICES[stack] if not (s == "loki" and stack == "prod")]
    assert run.outputs["services"] == sorted(workloads + ROLES[stack])
    assert run.outputs["environment"] == stack
    components = {r.name for r in run.resources if r.type.startswith("observability:services:")}
    assert components == set(SERVICES[stack])


def test_dev_endpoints_are_on_loopback(stack_runs):
    assert stack_runs["dev"].outputs["endpoints"] == {
        "prometheus": "http://127.0.0.1:9090",
        "alertmanager": "http://127.0.0.1:9093",
        "loki": "http://127.0.0.1:3100",
        "jaeger": "http://127.0.0.1:16686",
        "otel-collector-otlp-grpc": "http://127.0.0.1:4317",
        "otel-collector-otlp-http": "http://127.0.0.1:4318",
        "grafana": "http://127.0.0.1:3000",
    }
    assert stack_runs["dev"].outputs["platform"] == "docker"


def test_kubernetes_endpoints_are_cluster_services(stack_runs):
    assert stack_runs["prod"].outputs["endpoints"] == {
        "prometheus": "http://prometheus.observability.svc:9090",
        "alertmanager": "http://alertmanager.observability.svc:9093",
        # Loki's roles: pushes go to the distributors, queries to the frontends.
        "loki-distributor": "http://loki-distributor.observability.svc:3100",
        "loki-query-frontend": "http://loki-query-frontend.observability.svc:3100",
        "jaeger": "http://jaeger.observability.svc:16686",
        "otel-collector-otlp-grpc": "http://otel-collector.observability.svc:4317",
        "otel-collector-otlp-http": "http://otel-collector.observability.svc:4318",
        # Grafana: where the deployer reaches it, as the stack file says.
        "grafana": "https://grafana.example.internal",
    }


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_belongs_to_the_stack_component_tree(stack_runs, stack):
    run = stack_runs[stack]
    by_urn = {r.urn: r for r in run.resources}
    (root,) = [r for r in run.resources if r.type == "observability:index:Stack"]
    for resource in run.resources:
        if resource is root:
            continue
        parent = by_urn.get(resource.parent)
        assert parent is not None, f"{resource.type} {resource.name} is outside the stack component"
        if resource.type.startswith(("docker:index/container", "kubernetes:apps/")):
            # A service's resources sit under that service's component, a role's (<service>-<role>) too.
            assert parent.type.startswith("observability:services:") and (
                parent.name == resource.name or resource.name.startswith(f"{parent.name}-")), resource.name


def leaks(value, path="", found=None):
    """Paths of non-secret input leaves that contain a known secret value."""
    found = [] if found is None else found
    if is_secret(value):
        return found
    if isinstance(value, dict):
        for key, item in value.items():
            leaks(item, f"{path}.{key}", found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            leaks(item, f"{path}[{index}]", found)
    elif any(secret in str(value) for secret in SECRETS.values()):
        found.append(path)
    return found


# Every feature that takes a secret, on at once (Loki's bucket on S3; GCS is the other choice).
EVERYTHING_WITH_SECRETS = {
    "loki": {"storage": {"type": "s3", "bucket": "logs"}},
    "alertmanager": {"receivers": {"slack": {"enabled": True}, "pagerduty": {"enabled": True}, "watchdog": {"enabled": True}}},
    "exporters": {
        "postgres": {"enabled": True, "host": "db", "user": "exporter"},
        "redis": {"enabled": True, "address": "redis://redis:6379"},
    },
    "prometheus": {"remote_write": {"url": "https://mimir/api/v1/push", "username": "p"}},
    "grafana": {"long_term_metrics": {"url": "https://mimir/prometheus", "type": "mimir", "username": "g"}},
}


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_value_appears_outside_a_secret(stack, stack_runs):
    # GCS is the other choice of Loki store; the API token is for an external Grafana. Jaeger's
    # store passwords: prod's Elasticsearch's (Cassandra is the other choice; dev and staging keep
    # traces themselves). test_jaeger_distributed.py scans a Cassandra stack the same way.
    unused = {"loki_gcs_service_account", "grafana_api_token", "jaeger_cassandra_password"}
    unused |= {"jaeger_elasticsearch_password"} if stack != "prod" else set()
    # Grafana's database: prod's (staging's Grafana keeps SQLite on its claim, dev's on its volume).
    unused |= {"grafana_database_password"} if stack != "prod" else set()
    secrets = {k: v for k, v in SECRETS.items() if k not in unused}
    run = run_program(stack, merge(stack_config(stack), EVERYTHING_WITH_SECRETS), secrets)
    for resource in run.resources:
        assert leaks(resource.raw_inputs) == [], f"{resource.type} {resource.name}"
    # Every secret does reach a resource (as a secret): the scan looked at the right places.
    everything = json.dumps([r.inputs for r in run.resources])
    assert all(value in everything for value in secrets.values())
    plain = {name: value for name, value in run.outputs.items() if name not in run.secret_outputs}
    assert not any(secret in json.dumps(plain) for secret in SECRETS.values())
    # The one secret the stack exports, Grafana's admin password, is exported as a secret.
    assert run.secret_outputs == {"grafana_admin_password"}
    assert run.outputs["grafana_admin_password"] == SECRETS["grafana_admin_password"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_same_config_gives_the_same_resources(stack):
    def resources():
        run = run_program(stack, stack_config(stack), SECRETS)
        # Registration order is the engine's concurrency, not the program's output.
        return sorted((r.type, r.name, json.dumps(r.inputs, sort_keys=True)) for r in run.resources)

    assert resources() == resources()


@pytest.mark.parametrize("stack", STACKS)
def test_the_stack_renders_each_service_once_and_deploys_what_it_checked(stack, monkeypatch):
    """One path: the workload a service's component deploys is the one the stack rendered and
    checked, not a second rendering of the same inputs."""
    from components import stack as _  # noqa: F401 (imports every service's class)
    from components.services.component import Rendered, ServiceComponent, roles

    rendered: list[str] = []
    deployed: list[Rendered] = []
    classes = set(ServiceComponent.__subclasses__())
    classes |= {sub for c in classes for sub in c.__subclasses__()}  # the shippers' base has its own
    for cls in classes:
        if "render" not in vars(cls):
            continue
        original = vars(cls)["render"].__func__

        def counting(klass, name, platform, _original=original, **inputs):
            workload = _original(klass, name, platform, **inputs)
            rendered.append(name)
            return workload

        monkeypatch.setattr(cls, "render", classmethod(counting))
    original_deploy = ServiceComponent._deploy

    def recording(self, workload, platform, opts):
        deployed.append(workload)
        return original_deploy(self, workload, platform, opts)

    monkeypatch.setattr(ServiceComponent, "_deploy", recording)
    run = run_program(stack, stack_config(stack), {name: SECRETS[name] for name in SECRETS})
    # A service of several roles is rendered once, as all of its workloads.
    workloads = [w for service in deployed for w in roles(service)]
    assert sorted(rendered) == sorted({w.service for w in workloads}), "each service rendered exactly once"
    assert sorted(w.name for w in workloads) == sorted(run.outputs["services"])
