"""OpenTelemetry Collector: a well-formed config per stack, every exporter aimed at a service the
stack deploys, the processors in order, tail sampling as the stack asks, and its own ports.

prod runs the collector in two tiers (otel_collector.scale_out): `otel-collector`, the gateways,
receives OTLP and `otel-collector-sampler` samples traces and sends them to Jaeger. The tiers
themselves are tested in test_collector_tiers.py."""

import re

import pytest
import yaml

from components.platforms.kubernetes import PEERS
from components.settings import ConfigError
from conftest import (
    STACKS,
    Run,
    container_args,
    container_files,
    controller,
    merge,
    run_program,
    scrape_jobs,
    stack_config,
    stack_secrets,
)

CONFIG = "/etc/otelcol-contrib/config.yaml"
CONTAINER = "docker:index/container:Container"
SAMPLER = "otel-collector-sampler"


def collector_config(run, service: str = "otel-collector") -> dict:
    return yaml.safe_load(container_files(run, service)[CONFIG])


def traces_config(run) -> dict:
    """The config that samples traces and sends them to Jaeger: the one collector's, or the
    sampler tier's where the collector is scaled out."""
    return collector_config(run, SAMPLER if SAMPLER in run.outputs["services"] else "otel-collector")


def pipelines(run) -> dict:
    return collector_config(run)["service"]["pipelines"]


def tail_sampling(run) -> dict:
    return traces_config(run)["processors"]["tail_sampling"]


def sampled(stack, sampling) -> Run:
    """A shipped stack with its otel_collector.sampling overridden."""
    config = merge(stack_config(stack), {"otel_collector": {"sampling": sampling}})
    return run_program(stack, config, stack_secrets(stack))


# --- structure -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_pipelines_use_only_defined_components(stack_runs, stack):
    config = collector_config(stack_runs[stack])
    assert set(config["service"]["pipelines"]) == {"traces", "metrics", "logs"}
    for name, pipeline in config["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            assert pipeline[kind], f"{name} has no {kind}"
            assert set(pipeline[kind]) <= set(config[kind]), f"{name}: {kind} {pipeline[kind]}"


@pytest.mark.parametrize("stack", STACKS)
def test_every_defined_component_is_used(stack_runs, stack):
    config = collector_config(stack_runs[stack])
    for kind in ("receivers", "processors", "exporters"):
        used = {item for pipeline in config["service"]["pipelines"].values() for item in pipeline[kind]}
        assert used == set(config[kind]), kind
    assert set(config["service"]["extensions"]) == set(config["extensions"])


@pytest.mark.parametrize("stack", STACKS)
def test_exporters_use_the_current_type_names(stack_runs, stack):
    run = stack_runs[stack]
    types = {name.split("/")[0] for config in (collector_config(run), traces_config(run)) for name in config["exporters"]}
    assert types <= {"otlp_grpc", "otlp_http", "load_balancing"}
    assert not types & {"loki", "jaeger", "otlp", "otlphttp", "loadbalancing"}


# --- endpoints -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stack, endpoint",
    # prod: Jaeger's collectors, each ready one through their headless Service (test_jaeger_distributed.py).
    [("dev", "jaeger:4317"), ("staging", "jaeger-0.jaeger:4317"), ("prod", "jaeger-collector-discovery:4317")],
)
def test_traces_go_to_jaeger_otlp_grpc(stack_runs, stack, endpoint):
    config = traces_config(stack_runs[stack])
    assert config["exporters"]["otlp_grpc/jaeger"] == {"endpoint": endpoint, "tls": {"insecure": True}}
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["otlp_grpc/jaeger"]


def test_jaeger_in_memory_on_kubernetes_is_reached_through_its_service():
    config = merge(stack_config("staging"), {"jaeger": {"storage": "memory"}})
    run = run_program("staging", config, stack_secrets("staging"))
    assert collector_config(run)["exporters"]["otlp_grpc/jaeger"]["endpoint"] == "jaeger:4317"
    assert controller(run, "jaeger").type == "kubernetes:apps/v1:Deployment"
    assert {"name": "otlp-grpc", "port": 4317, "targetPort": "otlp-grpc"} in (
        run.one("kubernetes:core/v1:Service", "jaeger").inputs["spec"]["ports"]
    )


@pytest.mark.parametrize(
    "stack, endpoints",
    [
        ("dev", {"otlp_http/prometheus-0": "http://prometheus:9090/api/v1/otlp"}),
        ("staging", {"otlp_http/prometheus-0": "http://prometheus-0.prometheus:9090/api/v1/otlp"}),
        (
            "prod",
            {
                "otlp_http/prometheus-0": "http://prometheus-0.prometheus:9090/api/v1/otlp",
                "otlp_http/prometheus-1": "http://prometheus-1.prometheus:9090/api/v1/otlp",
            },
        ),
    ],
)
def test_metrics_go_to_every_prometheus_replica(stack_runs, stack, endpoints):
    config = collector_config(stack_runs[stack])
    found = {name: e["endpoint"] for name, e in config["exporters"].items() if "prometheus" in name}
    assert found == endpoints
    assert sorted(config["service"]["pipelines"]["metrics"]["exporters"]) == sorted(endpoints)


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_accepts_otlp(stack_runs, stack):
    assert "--web.enable-otlp-receiver" in container_args(stack_runs[stack], "prometheus")


@pytest.mark.parametrize("stack", STACKS)
def test_every_exporter_host_is_a_deployed_service(stack_runs, stack):
    """A host is a service's name, or on kubernetes <service>-<i>.<service> for a StatefulSet pod."""
    run = stack_runs[stack]
    deployed = set(run.outputs["services"])
    exporters = {**collector_config(run)["exporters"], **traces_config(run)["exporters"]}
    # The gateways' load balancer finds its hosts through DNS (test_collector_tiers.py).
    exporters.pop("load_balancing", None)
    # A headless Service over the pods of a workload (Workload.peers): Jaeger's collectors.
    peers = {svc.inputs["metadata"]["name"] for svc in run.of_type("kubernetes:core/v1:Service")
             if any(k.startswith(PEERS) for k in svc.inputs["spec"].get("selector", {}))}
    for name, exporter in exporters.items():
        host = exporter["endpoint"].removeprefix("http://").split(":")[0]
        if host in deployed or host in peers:
            continue
        pod, _, service = host.partition(".")
        assert service in deployed, f"{name}: {host}"
        spec = controller(run, service).inputs["spec"]
        assert controller(run, service).type == "kubernetes:apps/v1:StatefulSet", name
        index = int(pod.removeprefix(f"{service}-"))
        assert index < spec["replicas"], f"{name}: {host}"


# --- processors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_memory_limiter_first_and_batch_last_in_every_pipeline(stack_runs, stack):
    for name, pipeline in pipelines(stack_runs[stack]).items():
        assert pipeline["processors"][0] == "memory_limiter", name
        assert pipeline["processors"][-1] == "batch", name


@pytest.mark.parametrize("stack", STACKS)
def test_resource_processor_names_the_environment(stack_runs, stack):
    resource = collector_config(stack_runs[stack])["processors"]["resource"]
    assert resource["attributes"] == [
        {"key": "deployment.environment.name", "value": stack, "action": "upsert"}
    ]


# --- sampling ------------------------------------------------------------------------------------


def test_dev_keeps_every_trace(stack_runs):
    config = collector_config(stack_runs["dev"])
    assert "tail_sampling" not in config["processors"]
    assert config["service"]["pipelines"]["traces"]["processors"] == ["memory_limiter", "resource", "batch"]


def test_staging_keeps_half_of_the_ordinary_traces(stack_runs):
    policies = {p["name"]: p for p in tail_sampling(stack_runs["staging"])["policies"]}
    assert policies["share"] == {"name": "share", "type": "probabilistic", "probabilistic": {"sampling_percentage": 50}}


def test_prod_keeps_errors_slow_traces_and_a_tenth_of_the_rest(stack_runs):
    sampler = tail_sampling(stack_runs["prod"])
    assert sampler["policies"] == [
        {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
        {"name": "slow", "type": "latency", "latency": {"threshold_ms": 1000}},
        {"name": "share", "type": "probabilistic", "probabilistic": {"sampling_percentage": 10}},
    ]
    assert sampler["decision_wait"] == "10s"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_sampling_applies_to_traces_only(stack_runs, stack):
    run = stack_runs[stack]
    # prod's gateways set the environment attribute; its samplers sample.
    sampled = ["memory_limiter", "tail_sampling", "batch"] if stack == "prod" else [
        "memory_limiter", "resource", "tail_sampling", "batch"]
    assert traces_config(run)["service"]["pipelines"]["traces"]["processors"] == sampled
    found = pipelines(run)
    assert "tail_sampling" not in found["logs"]["processors"]
    assert "tail_sampling" not in found["metrics"]["processors"]


@pytest.mark.parametrize("threshold, ms", [("2s500ms", 2500), ("1m30s", 90000), ("250ms", 250)])
def test_slow_threshold_is_rendered_in_milliseconds(threshold, ms):
    policies = {p["name"]: p for p in tail_sampling(sampled("prod", {"slow_threshold": threshold}))["policies"]}
    assert policies["slow"]["latency"] == {"threshold_ms": ms}


def test_slow_threshold_milliseconds_are_not_lost_to_rounding():
    # 2s10ms is exactly 2010 ms (also 1s360ms, 4s20ms, 8s30ms...); none may come out 1 ms short.
    policies = {p["name"]: p for p in tail_sampling(sampled("prod", {"slow_threshold": "2s10ms"}))["policies"]}
    assert policies["slow"]["latency"] == {"threshold_ms": 2010}


def test_decision_wait_follows_the_stack():
    assert tail_sampling(sampled("staging", {"decision_wait": "30s"}))["decision_wait"] == "30s"


def test_a_decision_wait_in_days_never_reaches_the_collector_unreadable():
    # decision_wait is a Go duration (no "d"): refused before anything is registered, or
    # rendered as Go reads it.
    run = Run("prod")
    config = merge(stack_config("prod"), {"otel_collector": {"sampling": {"decision_wait": "1d"}}})
    try:
        run_program("prod", config, stack_secrets("prod"), run=run)
    except ConfigError as error:
        assert "key 'otel_collector.sampling.decision_wait': " in str(error)
        assert run.resources == []
        return
    wait = tail_sampling(run)["decision_wait"]
    assert re.fullmatch(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+", wait), f"the collector cannot parse {wait!r}"
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    assert sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", wait)) == 86400


def test_sampling_everything_removes_the_sampler():
    run = sampled("prod", {"percentage": 100})
    assert "tail_sampling" not in collector_config(run)["processors"]
    assert "tail_sampling" not in pipelines(run)["traces"]["processors"]


@pytest.mark.parametrize("percentage", [0, 150])
def test_a_sampling_percentage_outside_the_range_is_refused(percentage):
    run = Run("dev")
    override = {"otel_collector": {"sampling": {"percentage": percentage}}}
    with pytest.raises(ConfigError) as error:
        run_program("dev", merge(stack_config("dev"), override), run=run)
    assert "key 'otel_collector.sampling.percentage': " in str(error.value)
    assert run.resources == []


# --- receivers, health and telemetry -------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_otlp_receivers_listen_on_all_interfaces(stack_runs, stack):
    assert collector_config(stack_runs[stack])["receivers"] == {
        "otlp": {"protocols": {"grpc": {"endpoint": "0.0.0.0:4317"}, "http": {"endpoint": "0.0.0.0:4318"}}}
    }


@pytest.mark.parametrize("stack", STACKS)
def test_health_check_and_telemetry_ports(stack_runs, stack):
    config = collector_config(stack_runs[stack])
    assert config["extensions"]["health_check"] == {"endpoint": "0.0.0.0:13133"}
    assert config["service"]["extensions"] == ["health_check"]
    (reader,) = config["service"]["telemetry"]["metrics"]["readers"]
    # Counters without _total and names without units: what the alerts and dashboards query.
    assert reader["pull"]["exporter"]["prometheus"] == {"host": "0.0.0.0", "port": 8888, "without_type_suffix": True, "without_units": True}


# prod's two tiers are scraped pod by pod: test_collector_tiers.py.
@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_prometheus_scrapes_the_collector_telemetry(stack_runs, stack):
    job = scrape_jobs(stack_runs[stack])["otel-collector"]
    assert job["static_configs"] == [{"targets": ["otel-collector:8888"]}]
    assert "metrics_path" not in job


def test_kubernetes_runs_the_collector_as_a_deployment_with_a_service(stack_runs):
    run = stack_runs["prod"]
    assert controller(run, "otel-collector").type == "kubernetes:apps/v1:Deployment"
    ports = run.one("kubernetes:core/v1:Service", "otel-collector").inputs["spec"]["ports"]
    assert {"name": "metrics", "port": 8888, "targetPort": "metrics"} in ports


def test_docker_publishes_otlp_on_loopback_only(stack_runs):
    container = stack_runs["dev"].one(CONTAINER, "otel-collector").inputs
    assert container["ports"] == [
        {"internal": 4317, "external": 4317, "ip": "127.0.0.1"},
        {"internal": 4318, "external": 4318, "ip": "127.0.0.1"},
    ]
    assert container["command"] == ["--config=/etc/otelcol-contrib/config.yaml"]
    assert "healthcheck" not in container


def test_custom_otlp_ports_are_only_the_published_ones():
    run = run_program("dev", merge(stack_config("dev"), {"otel_collector": {"grpc_port": 14317, "http_port": 14318}}))
    assert run.one(CONTAINER, "otel-collector").inputs["ports"] == [
        {"internal": 4317, "external": 14317, "ip": "127.0.0.1"},
        {"internal": 4318, "external": 14318, "ip": "127.0.0.1"},
    ]
    assert collector_config(run)["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_kubernetes_probes_the_health_check_extension(stack_runs, stack):
    container = controller(stack_runs[stack], "otel-collector").inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/", "port": "health"}
    assert {"name": "health", "containerPort": 13133} in container["ports"]
    assert container["args"] == ["--config=/etc/otelcol-contrib/config.yaml"]


# --- who may send ------------------------------------------------------------------------------


TOKEN = "app-t0ken.v1"


def with_token(stack: str) -> Run:
    config = merge(stack_config(stack), {"otel_collector": {"require_token": True}})
    return run_program(stack, config, {**stack_secrets(stack), "otlp_token": TOKEN})


@pytest.mark.parametrize("stack", STACKS)
def test_a_required_token_guards_both_protocols_and_reaches_the_collector_as_a_secret_file(stack):
    run = with_token(stack)
    config = collector_config(run)
    assert config["extensions"]["bearertokenauth"] == {"filename": "/run/secrets/otlp_token"}
    assert "bearertokenauth" in config["service"]["extensions"]
    for protocol in ("grpc", "http"):
        assert config["receivers"]["otlp"]["protocols"][protocol]["auth"] == {"authenticator": "bearertokenauth"}
    # The token is in neither the config nor an argument: only in the secret file the extension reads.
    files = container_files(run, "otel-collector")
    assert TOKEN not in files[CONFIG] + str(container_args(run, "otel-collector"))
    assert files["/run/secrets/otlp_token"] == TOKEN


def test_without_require_token_no_request_is_asked_for_one(stack_runs):
    config = collector_config(stack_runs["prod"])
    assert "bearertokenauth" not in config["extensions"]
    assert all("auth" not in p for p in config["receivers"]["otlp"]["protocols"].values())


def test_require_token_without_the_token_is_refused():
    config = merge(stack_config("dev"), {"otel_collector": {"require_token": True}})
    with pytest.raises(ConfigError, match="key 'secrets.otlp_token': required because otel_collector.require_token is true"):
        run_program("dev", config, {})


def test_a_token_no_header_can_carry_is_refused_without_echoing_it():
    config = merge(stack_config("dev"), {"otel_collector": {"require_token": True}})
    with pytest.raises(ConfigError) as error:
        run_program("dev", config, {"otlp_token": "two words"})
    assert "key 'secrets.otlp_token': must be one token" in str(error.value)
    assert "two words" not in str(error.value)
