"""Jaeger v2 as one pod: memory storage in dev and badger on a claim in staging (prod, with badger,
when its stack file says so), a well-formed collector-style config, and its ports, probes and
metrics on both platforms. Prod's Elasticsearch, with collectors and queriers:
test_jaeger_distributed.py."""

import re

import pytest
import yaml

from components.settings import ConfigError
from conftest import (
    Run,
    container_files,
    controller,
    merge,
    run_program,
    scrape_jobs,
    stack_config,
    stack_secrets,
)

CONFIG = "/etc/jaeger/config.yaml"
CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
# Go's time.ParseDuration, which reads every duration in a collector-style config: no d, w or y.
GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
GO_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def go_seconds(duration: str) -> float:
    return sum(float(n) * GO_UNIT_SECONDS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", duration))


def jaeger_config(run) -> dict:
    return yaml.safe_load(container_files(run, "jaeger")[CONFIG])


def backends(run) -> dict:
    return jaeger_config(run)["extensions"]["jaeger_storage"]["backends"]


def pod_spec(run) -> dict:
    return controller(run, "jaeger").inputs["spec"]["template"]["spec"]


def with_jaeger(stack, jaeger) -> object:
    return run_program(stack, merge(stack_config(stack), {"jaeger": jaeger}), stack_secrets(stack))


# The stacks whose Jaeger is one pod.
SINGLE = ["dev", "staging"]


def prod_with_badger() -> Run:
    """Prod's stack file with its Jaeger as one pod on badger, as before it outgrew one node."""
    config = {**stack_config("prod"), "jaeger": {"storage": "badger", "storage_size": "100Gi"}}
    return run_program("prod", config, stack_secrets("prod"))


# --- storage -------------------------------------------------------------------------------------


def test_dev_keeps_traces_in_memory(stack_runs):
    (backend,) = backends(stack_runs["dev"]).values()
    assert backend == {"memory": {"max_traces": 50000}}


def test_dev_has_no_data_volume(stack_runs):
    run = stack_runs["dev"]
    assert "jaeger-data" not in run.names(VOLUME)
    assert "volumes" not in run.one(CONTAINER, "jaeger").inputs


def test_staging_keeps_traces_in_badger_for_72h(stack_runs):
    (backend,) = backends(stack_runs["staging"]).values()
    assert backend == {
        "badger": {
            "directories": {"keys": "/badger/keys", "values": "/badger/values"},
            "ephemeral": False,
            "ttl": {"spans": "72h"},
        }
    }


@pytest.mark.parametrize("stack, size, storage_class", [("staging", "20Gi", "standard"), ("prod", "100Gi", "fast-ssd")])
def test_badger_lives_on_a_claim_of_a_statefulset(stack_runs, stack, size, storage_class):
    run = stack_runs[stack] if stack == "staging" else prod_with_badger()
    jaeger = controller(run, "jaeger")
    assert jaeger.type == "kubernetes:apps/v1:StatefulSet"
    (claim,) = jaeger.inputs["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == size
    assert claim["spec"]["storageClassName"] == storage_class
    assert {"name": "data", "mountPath": "/badger"} in pod_spec(run)["containers"][0]["volumeMounts"]


def test_jaeger_runs_as_its_own_user_who_owns_the_claim(stack_runs):
    assert pod_spec(stack_runs["staging"])["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_memory_storage_on_kubernetes_is_a_deployment_without_claims():
    run = with_jaeger("staging", {"storage": "memory", "max_traces": 20000})
    jaeger = controller(run, "jaeger")
    assert jaeger.type == "kubernetes:apps/v1:Deployment"
    assert "volumeClaimTemplates" not in jaeger.inputs["spec"]
    assert backends(run) == {"traces": {"memory": {"max_traces": 20000}}}


def test_trace_ttl_follows_the_stack():
    run = with_jaeger("staging", {"trace_ttl": "168h"})
    assert backends(run)["traces"]["badger"]["ttl"] == {"spans": "168h"}


def test_a_trace_ttl_in_days_never_reaches_jaeger_unreadable():
    # Settings accept "7d" like every other retention, but badger's ttl.spans is a Go duration
    # (no "d"): the stack must refuse it before registering anything, or render it as Go reads it.
    run = Run("staging")
    config = merge(stack_config("staging"), {"jaeger": {"trace_ttl": "7d"}})
    try:
        run_program("staging", config, stack_secrets("staging"), run=run)
    except ConfigError as error:
        assert "key 'jaeger.trace_ttl': " in str(error)
        assert run.resources == []
        return
    spans = backends(run)["traces"]["badger"]["ttl"]["spans"]
    assert GO_DURATION.match(spans), f"Jaeger cannot parse ttl.spans {spans!r}"
    assert go_seconds(spans) == 7 * 24 * 3600


# --- structure -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", SINGLE)
def test_the_traces_pipeline_uses_only_defined_components(stack_runs, stack):
    config = jaeger_config(stack_runs[stack])
    assert set(config["service"]["pipelines"]) == {"traces"}
    traces = config["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        assert traces[kind], kind
        assert set(traces[kind]) <= set(config[kind]), kind
        # Nothing is defined that the pipeline does not use.
        assert set(traces[kind]) == set(config[kind]), kind


@pytest.mark.parametrize("stack", SINGLE)
def test_query_and_exporter_name_a_defined_backend(stack_runs, stack):
    config = jaeger_config(stack_runs[stack])
    defined = set(config["extensions"]["jaeger_storage"]["backends"])
    assert len(defined) == 1
    assert config["extensions"]["jaeger_query"]["storage"]["traces"] in defined
    assert config["exporters"]["jaeger_storage_exporter"]["trace_storage"] in defined


@pytest.mark.parametrize("stack", SINGLE)
def test_service_extensions_are_all_defined(stack_runs, stack):
    config = jaeger_config(stack_runs[stack])
    assert set(config["service"]["extensions"]) == {"jaeger_storage", "jaeger_query", "healthcheckv2"}
    assert set(config["service"]["extensions"]) == set(config["extensions"])


@pytest.mark.parametrize("stack", SINGLE)
def test_listeners_are_on_all_interfaces(stack_runs, stack):
    config = jaeger_config(stack_runs[stack])
    assert config["extensions"]["healthcheckv2"]["http"] == {"endpoint": "0.0.0.0:13133"}
    assert config["extensions"]["healthcheckv2"]["use_v2"] is True
    assert config["extensions"]["jaeger_query"]["http"] == {"endpoint": "0.0.0.0:16686"}
    assert config["receivers"]["otlp"]["protocols"] == {
        "grpc": {"endpoint": "0.0.0.0:4317"},
        "http": {"endpoint": "0.0.0.0:4318"},
    }


# --- metrics, ports and probes -------------------------------------------------------------------


@pytest.mark.parametrize("stack, target", [("dev", "jaeger:8888"), ("staging", "jaeger-0.jaeger:8888")])
def test_prometheus_scrapes_jaeger_telemetry(stack_runs, stack, target):
    job = scrape_jobs(stack_runs[stack])["jaeger"]
    assert job["static_configs"] == [{"targets": [target]}]
    (reader,) = jaeger_config(stack_runs[stack])["service"]["telemetry"]["metrics"]["readers"]
    # Counters without _total and names without units: what the alerts and dashboards query.
    assert reader["pull"]["exporter"]["prometheus"] == {"host": "0.0.0.0", "port": 8888, "without_type_suffix": True, "without_units": True}


def test_docker_publishes_only_the_ui_on_loopback(stack_runs):
    container = stack_runs["dev"].one(CONTAINER, "jaeger").inputs
    assert container["ports"] == [{"internal": 16686, "external": 16686, "ip": "127.0.0.1"}]
    assert container["command"] == ["--config=/etc/jaeger/config.yaml"]
    # The health check extension's port, asked from inside the container only.
    assert container["healthcheck"]["tests"][-1] == "http://127.0.0.1:13133/status"


def test_a_custom_ui_port_is_only_the_published_one():
    run = with_jaeger("dev", {"port": 26686})
    assert run.one(CONTAINER, "jaeger").inputs["ports"] == [{"internal": 16686, "external": 26686, "ip": "127.0.0.1"}]
    assert jaeger_config(run)["extensions"]["jaeger_query"]["http"] == {"endpoint": "0.0.0.0:16686"}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_kubernetes_probes_the_status_endpoint(stack_runs, stack):
    container = pod_spec(stack_runs[stack])["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/status", "port": "health"}
    assert {"name": "health", "containerPort": 13133} in container["ports"]
    assert container["args"] == ["--config=/etc/jaeger/config.yaml"]


def test_kubernetes_service_exposes_ui_and_otlp_on_a_headless_service(stack_runs):
    spec = stack_runs["staging"].one("kubernetes:core/v1:Service", "jaeger").inputs["spec"]
    assert spec["clusterIP"] == "None"
    ports = {p["name"]: p["port"] for p in spec["ports"]}
    assert ports == {"ui": 16686, "otlp-grpc": 4317, "otlp-http": 4318, "metrics": 8888, "health": 13133}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_jaeger_names_its_own_telemetry_jaeger(stack_runs, stack):
    # The OpenTelemetry semantic conventions' service.name: what Jaeger's own spans and metrics
    # say they come from, beside the applications' services.
    assert jaeger_config(stack_runs[stack])["service"]["telemetry"]["resource"] == {"service.name": "jaeger"}
