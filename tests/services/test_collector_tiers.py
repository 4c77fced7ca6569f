"""The collector scaled out (otel_collector.scale_out, prod): a gateway tier that keeps the name
applications send to, routing each trace by its ID to one pod of a tail-sampling tier found
through a headless Service, which alone sends to Jaeger. Both are roles of the service
`otel-collector`, so its scrape job, alerts and dashboards stay as they are."""

import pytest
import yaml

from components.services import otel_collector
from components.settings import ConfigError, OtelCollectorArgs, quantity_bytes
from conftest import Run, container_files, controller, merge, run_program, scrape_jobs, stack_config, stack_secrets
from test_upstream_metrics_traces import KINDS, component_problems, distribution_types, upstream

CONFIG = "/etc/otelcol-contrib/config.yaml"
GATEWAY, SAMPLER, SAMPLERS = "otel-collector", "otel-collector-sampler", "otel-collector-samplers"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SERVICE = "kubernetes:core/v1:Service"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"


def config(run: Run, service: str) -> dict:
    return yaml.safe_load(container_files(run, service)[CONFIG])


def prod_with(otel_collector_keys: dict) -> Run:
    return run_program("prod", merge(stack_config("prod"), {"otel_collector": otel_collector_keys}), stack_secrets("prod"))


def pod(run: Run, service: str) -> dict:
    return controller(run, service).inputs["spec"]["template"]


def callers(run: Run, service: str, port: int) -> list[str]:
    """The workloads (by name) a service's NetworkPolicy admits on a port, in order."""
    policy = run.one(POLICY, f"{service}-network-policy").inputs["spec"]
    rules = [r for r in policy["ingress"] if any(p["port"] == port for p in r["ports"])]
    return [peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for r in rules for peer in r.get("from", [])
            if "podSelector" in peer]


def otlp_receivers(run: Run) -> list[str]:
    """The workloads of Jaeger that receive spans over OTLP gRPC."""
    return [s for s in run.outputs["services"] if s.startswith("jaeger")
            and {"name": "otlp-grpc", "containerPort": 4317} in pod(run, s)["spec"]["containers"][0]["ports"]]


# --- the gateway ---------------------------------------------------------------------------------


def test_applications_keep_their_endpoint(stack_runs):
    run = stack_runs["prod"]
    assert run.outputs["endpoints"]["otel-collector-otlp-grpc"] == "http://otel-collector.observability.svc:4317"
    assert run.outputs["endpoints"]["otel-collector-otlp-http"] == "http://otel-collector.observability.svc:4318"
    ports = {p["name"]: p["port"] for p in run.one(SERVICE, GATEWAY).inputs["spec"]["ports"]}
    assert ports["otlp-grpc"] == 4317 and ports["otlp-http"] == 4318
    # Only the gateways are behind it: the samplers are another workload, of another name.
    assert run.one(SERVICE, GATEWAY).inputs["spec"]["selector"]["app.kubernetes.io/name"] == GATEWAY
    assert pod(run, GATEWAY)["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
    assert pod(run, SAMPLER)["metadata"]["labels"]["app.kubernetes.io/component"] == "sampler"


def test_the_gateway_routes_each_trace_by_its_id_to_the_samplers_headless_service(stack_runs):
    run = stack_runs["prod"]
    gateway = config(run, GATEWAY)
    assert gateway["service"]["pipelines"]["traces"]["exporters"] == ["load_balancing"]
    assert "tail_sampling" not in gateway["processors"]
    balancer = gateway["exporters"]["load_balancing"]
    assert balancer["routing_key"] == "traceID"
    # DNS, not the Kubernetes API: the gateways need no API access.
    assert balancer["resolver"] == {"dns": {"hostname": SAMPLERS, "port": "4317"}}
    assert "endpoint" not in balancer["protocol"]["otlp"]  # the exporter sets each backend's
    # The name resolves in the gateways' namespace, to one address per ready sampler pod.
    headless = run.one(SERVICE, f"{SAMPLERS}-peers").inputs
    assert headless["metadata"]["name"] == SAMPLERS
    assert headless["metadata"]["namespace"] == controller(run, GATEWAY).inputs["metadata"]["namespace"]
    spec = headless["spec"]
    assert spec["clusterIP"] == "None" and spec["publishNotReadyAddresses"] is False
    assert [p["port"] for p in spec["ports"]] == [4317]
    listed = {k: v for k, v in spec["selector"].items() if k != "app.kubernetes.io/instance"}
    members = [s for s in run.outputs["services"] if listed.items() <= pod(run, s)["metadata"]["labels"].items()]
    assert members == [SAMPLER]
    # DNS needs no API access: the gateways carry no token.
    assert pod(run, GATEWAY)["spec"]["automountServiceAccountToken"] is False


def test_a_failed_send_to_a_sampler_is_retried_through_the_ring_from_a_queue_the_stack_sizes(stack_runs):
    balancer = config(stack_runs["prod"], GATEWAY)["exporters"]["load_balancing"]
    # Each sampler's exporter waits for the result and does not retry: a failure reaches the
    # load balancer, which retries it through the samplers DNS lists then.
    assert balancer["protocol"]["otlp"]["retry_on_failure"] == {"enabled": False}
    assert balancer["protocol"]["otlp"]["sending_queue"] == {"wait_for_result": True}
    retry = balancer["retry_on_failure"]
    assert retry["enabled"] is True and retry["max_elapsed_time"] == "1m"
    assert balancer["sending_queue"] == {"queue_size": 100}
    resized = config(prod_with({"scale_out": {"queue_size": 500}}), GATEWAY)
    assert resized["exporters"]["load_balancing"]["sending_queue"] == {"queue_size": 500}


def test_logs_and_metrics_stay_on_the_gateway(stack_runs):
    run = stack_runs["prod"]
    pipelines = config(run, GATEWAY)["service"]["pipelines"]
    assert pipelines["logs"]["exporters"] == ["otlp_http/loki"]
    assert pipelines["metrics"]["exporters"] == ["otlp_http/prometheus-0", "otlp_http/prometheus-1"]
    for name in ("logs", "metrics"):
        assert pipelines[name]["processors"] == ["memory_limiter", "resource", "batch"], name
    assert set(config(run, SAMPLER)["service"]["pipelines"]) == {"traces"}
    # Loki and Prometheus admit the gateways, as they admitted the one collector.
    assert GATEWAY in callers(run, "prometheus", 9090)


def test_the_sampler_tail_samples_and_sends_to_jaeger(stack_runs):
    run = stack_runs["prod"]
    sampler = config(run, SAMPLER)
    assert sampler["receivers"] == {"otlp": {"protocols": {"grpc": {"endpoint": "0.0.0.0:4317"}}}}
    traces = sampler["service"]["pipelines"]["traces"]
    assert traces == {"receivers": ["otlp"], "processors": ["memory_limiter", "tail_sampling", "batch"],
                      "exporters": ["otlp_grpc/jaeger"]}
    assert sampler["processors"]["tail_sampling"] == otel_collector.sampling_processor(
        OtelCollectorArgs(**stack_config("prod")["otel_collector"]))
    assert sampler["processors"]["memory_limiter"] == {"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 25}
    endpoint = sampler["exporters"]["otlp_grpc/jaeger"]
    assert endpoint["tls"] == {"insecure": True}
    host, port = endpoint["endpoint"].rsplit(":", 1)
    assert port == "4317" and host.split(".")[-1].startswith("jaeger")
    assert sampler["extensions"] == {"health_check": {"endpoint": "0.0.0.0:13133"}}


@pytest.mark.parametrize("service", [GATEWAY, SAMPLER])
def test_every_key_of_each_tier_exists_upstream(stack_runs, service):
    available = {kind: distribution_types(kind) for kind in KINDS}
    assert "load_balancing" in available["exporters"]
    assert component_problems(upstream("collector"), config(stack_runs["prod"], service), available) == []


def test_the_contract_check_rejects_a_load_balancer_key_upstream_lacks(stack_runs):
    available = {kind: distribution_types(kind) for kind in KINDS}
    gateway = config(stack_runs["prod"], GATEWAY)
    gateway["exporters"]["load_balancing"]["resolver"]["dns"]["hostnames"] = [SAMPLERS]
    gateway["exporters"]["load_balancing"]["protocol"]["otlp"]["sending_queue"]["queue_length"] = 1
    assert component_problems(upstream("collector"), gateway, available) == [
        "exporters.load_balancing.protocol.otlp.sending_queue.queue_length: no such key",
        "exporters.load_balancing.resolver.dns.hostnames: no such key",
    ]


# --- who may call whom ---------------------------------------------------------------------------


def test_only_the_gateways_reach_the_samplers_and_only_the_samplers_reach_jaeger(stack_runs):
    run = stack_runs["prod"]
    assert callers(run, SAMPLER, 4317) == [GATEWAY]
    assert callers(run, SAMPLER, 8888) == ["prometheus"]
    # The sampler takes nothing from applications: no rule admits another namespace or address.
    ingress = run.one(POLICY, f"{SAMPLER}-network-policy").inputs["spec"]["ingress"]
    assert all("podSelector" in peer for rule in ingress for peer in rule["from"])
    receivers = otlp_receivers(run)
    assert receivers
    for jaeger in receivers:
        assert callers(run, jaeger, 4317) == [SAMPLER], jaeger


def test_with_one_collector_jaeger_admits_it(stack_runs):
    run = stack_runs["staging"]
    for jaeger in otlp_receivers(run):
        assert callers(run, jaeger, 4317) == [GATEWAY], jaeger


def test_jaegers_writers_follow_the_shape():
    scaled = OtelCollectorArgs(scale_out={"enabled": True})
    assert otel_collector.jaeger_writers(scaled) == (SAMPLER,)
    assert otel_collector.jaeger_writers(OtelCollectorArgs()) == (GATEWAY,)
    keep_all = OtelCollectorArgs(scale_out={"enabled": True}, sampling={"percentage": 100})
    assert otel_collector.jaeger_writers(keep_all) == (GATEWAY,)


# --- replicas, autoscaling, disruption budgets, memory -------------------------------------------


def test_each_tier_runs_at_least_two_pods_spread_over_nodes_with_a_disruption_budget(stack_runs):
    run = stack_runs["prod"]
    autoscaler = run.one(HPA, f"{GATEWAY}-autoscaler").inputs["spec"]
    assert autoscaler["scaleTargetRef"]["kind"] == "Deployment"
    assert (autoscaler["minReplicas"], autoscaler["maxReplicas"]) == (2, 10)
    assert autoscaler["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    # The autoscaler alone sets the gateways' count; the samplers' is fixed.
    assert "replicas" not in controller(run, GATEWAY).inputs["spec"]
    assert controller(run, SAMPLER).inputs["spec"]["replicas"] == 3
    assert not [r for r in run.of_type(HPA) if r.name.startswith(SAMPLER)]
    for service in (GATEWAY, SAMPLER):
        budget = run.one(PDB, f"{service}-disruption-budget").inputs["spec"]
        assert budget["maxUnavailable"] == 1
        assert budget["selector"]["matchLabels"]["app.kubernetes.io/name"] == service
        spread = pod(run, service)["spec"]["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}


@pytest.mark.parametrize("keys, problem", [
    ({"gateway": {"min_replicas": 1}}, "otel_collector.scale_out.gateway.min_replicas"),
    ({"sampler": {"replicas": 1}}, "otel_collector.scale_out.sampler.replicas"),
    ({"gateway": {"min_replicas": 4, "max_replicas": 3}}, "otel_collector.scale_out.gateway"),
])
def test_fewer_than_two_pods_a_tier_is_refused(keys, problem):
    run = Run("prod")
    config = merge(stack_config("prod"), {"otel_collector": {"scale_out": keys}})
    with pytest.raises(ConfigError) as error:
        run_program("prod", config, stack_secrets("prod"), run=run)
    assert f"key '{problem}'" in str(error.value)
    assert run.resources == []


def test_each_tier_has_its_own_resources_and_go_memory_limit(stack_runs):
    run = stack_runs["prod"]
    tiers = stack_config("prod")["otel_collector"]["scale_out"]
    for service, tier in ((GATEWAY, "gateway"), (SAMPLER, "sampler")):
        container = pod(run, service)["spec"]["containers"][0]
        resources = tiers[tier]["resources"]
        assert container["resources"]["limits"]["memory"] == resources["limits"]["memory"]
        # 80% of the limit, where the memory limiter's hard limit is.
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert int(env["GOMEMLIMIT"]) == quantity_bytes(resources["limits"]["memory"]) * 4 // 5


def test_a_tiers_request_above_its_limit_is_refused():
    config = merge(stack_config("prod"), {"otel_collector": {"scale_out": {"sampler": {"resources": {
        "requests": {"cpu": "4", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}}}}})
    with pytest.raises(ConfigError, match="key 'otel_collector.scale_out.sampler.resources.requests.cpu': 4 is more"):
        run_program("prod", config, stack_secrets("prod"))


def test_the_one_collectors_resources_beside_scale_out_are_refused():
    config = merge(stack_config("prod"), {"otel_collector": {"resources": {
        "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}}})
    with pytest.raises(ConfigError, match="key 'otel_collector.resources': sizes the one collector"):
        run_program("prod", config, stack_secrets("prod"))


# --- the job, its alerts, and the other shapes ---------------------------------------------------


def test_prometheus_scrapes_both_tiers_as_the_one_job_the_alerts_and_dashboards_name(stack_runs):
    run = stack_runs["prod"]
    job = scrape_jobs(run)["otel-collector"]
    keep = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert set(keep["__meta_kubernetes_pod_label_app_kubernetes_io_name"].split("|")) == {GATEWAY, SAMPLER}
    assert keep["__meta_kubernetes_pod_container_port_number"] == "8888"
    # Each pod is its own instance, labelled with its tier: the alerts group by instance.
    assert {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
            "target_label": "component"} in job["relabel_configs"]
    rules = "".join(text for path, text in container_files(run, "prometheus").items() if path.startswith("/etc/prometheus/rules/"))
    for alert in ("OtelCollectorRefusingData", "OtelCollectorExportFailures"):
        assert f"alert: {alert}" in rules, alert


def test_keeping_every_trace_needs_no_sampler_tier():
    run = prod_with({"sampling": {"percentage": 100}})
    assert SAMPLER not in run.outputs["services"]
    gateway = config(run, GATEWAY)
    assert gateway["service"]["pipelines"]["traces"]["exporters"] == ["otlp_grpc/jaeger"]
    assert "load_balancing" not in gateway["exporters"]
    assert run.one(HPA, f"{GATEWAY}-autoscaler")
    for jaeger in otlp_receivers(run):
        assert callers(run, jaeger, 4317) == [GATEWAY], jaeger


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_dev_and_staging_keep_one_collector(stack_runs, stack):
    run = stack_runs[stack]
    assert SAMPLER not in run.outputs["services"]
    assert "load_balancing" not in config(run, GATEWAY)["exporters"]


def test_docker_refuses_scale_out_before_registering_anything():
    run = Run("dev")
    config = merge(stack_config("dev"), {"otel_collector": {"scale_out": {"enabled": True}}})
    with pytest.raises(ConfigError) as error:
        run_program("dev", config, run=run)
    message = str(error.value)
    assert "1 problem" in message
    assert "key 'otel_collector.scale_out.enabled': " in message and "needs the kubernetes platform" in message
    assert run.resources == []
