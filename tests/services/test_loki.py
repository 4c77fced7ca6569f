"""Loki: the rendered loki.yml per stack (schema, retention, limits, storage), its object store
credentials as files, its workload on both platforms, and every shipper pointed at it."""

import configparser

import pytest
import yaml

from components.settings import ConfigError
from conftest import (
    SECRETS,
    STACKS,
    Run,
    container_files,
    controller,
    is_secret,
    merge,
    run_program,
    stack_config,
    stack_secrets,
)

CONFIG = "/etc/loki/loki.yml"
CONTAINER = "docker:index/container:Container"
S3_CREDENTIALS = "/run/secrets/loki_s3_credentials"
GCS_CREDENTIALS = "/run/secrets/loki_gcs_service_account.json"
S3_KEYS = ("loki_s3_access_key_id", "loki_s3_secret_access_key")
# prod's secrets without Loki's keys: the bucket is reached with the nodes' own credentials.
PROD_WITHOUT_LOKI_KEYS = {k: v for k, v in SECRETS.items() if not k.startswith("loki_")}


def loki_pod(run) -> str:
    """The Loki pod that reads and writes the bucket: the one pod, or (microservices, prod) an
    ingester."""
    return "loki-ingester" if "loki-ingester" in run.outputs["services"] else "loki"


def loki_config(run) -> dict:
    return yaml.safe_load(container_files(run, loki_pod(run))[CONFIG])


def docker_container(run, name="loki") -> dict:
    return run.one(CONTAINER, name).inputs


def loki_env(run) -> dict[str, str]:
    """Loki's environment variables, on either platform."""
    found = [c for c in run.of_type(CONTAINER) if c.name == "loki"]
    if found:
        return dict(entry.split("=", 1) for entry in found[0].inputs.get("envs") or [])
    container = controller(run, loki_pod(run)).inputs["spec"]["template"]["spec"]["containers"][0]
    # Values the pod takes from its own fields (an ingester's node) are not the stack's settings.
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


@pytest.fixture(scope="module")
def gcs():
    """dev with its logs in a GCS bucket, and a service account key for it."""
    config = merge(stack_config("dev"), {"loki": {"storage": {"type": "gcs", "bucket": "acme-logs"}}})
    return run_program("dev", config, {"loki_gcs_service_account": SECRETS["loki_gcs_service_account"]})


@pytest.fixture(scope="module")
def s3_on_docker():
    """dev with its logs in an S3-compatible bucket and both keys set."""
    config = merge(stack_config("dev"), {"loki": {"storage": {"type": "s3", "bucket": "logs", "endpoint": "minio:9000"}}})
    return run_program("dev", config, {k: SECRETS[k] for k in S3_KEYS})


@pytest.fixture(scope="module")
def prod(stack_runs):
    """prod as shipped, with both S3 keys set."""
    return stack_runs["prod"]


@pytest.fixture(scope="module")
def prod_ambient():
    return run_program("prod", stack_config("prod"), PROD_WITHOUT_LOKI_KEYS)


# --- loki.yml per stack --------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_schema_is_one_tsdb_v13_period_with_a_daily_index(stack_runs, stack):
    (period,) = loki_config(stack_runs[stack])["schema_config"]["configs"]
    assert period["store"] == "tsdb"
    assert period["schema"] == "v13"
    assert period["index"]["period"] == "24h"


@pytest.mark.parametrize("stack, retention", [("dev", "7d"), ("staging", "14d"), ("prod", "90d")])
def test_retention_follows_the_stack(stack_runs, stack, retention):
    assert loki_config(stack_runs[stack])["limits_config"]["retention_period"] == retention


@pytest.mark.parametrize("stack", STACKS)
def test_the_compactor_applies_retention_in_the_schema_store(stack_runs, stack):
    config = loki_config(stack_runs[stack])
    assert config["compactor"]["retention_enabled"] is True
    (period,) = config["schema_config"]["configs"]
    assert config["compactor"]["delete_request_store"] == period["object_store"]


@pytest.mark.parametrize("stack", STACKS)
def test_otlp_ingestion_keeps_structured_metadata(stack_runs, stack):
    limits = loki_config(stack_runs[stack])["limits_config"]
    assert limits["allow_structured_metadata"] is True
    # Every line gets detected_level, OTLP lines (whose severity is no label) included; the level
    # panels and the ErrorLogBurst rule read it. Loki sets it only with structured metadata on.
    assert limits["discover_log_levels"] is True


@pytest.mark.parametrize(
    "stack, rate, burst, streams",
    [("dev", 4, 6, 5000), ("staging", 8, 16, 5000), ("prod", 16, 32, 20000)],
)
def test_ingestion_limits_follow_the_stack(stack_runs, stack, rate, burst, streams):
    limits = loki_config(stack_runs[stack])["limits_config"]
    assert limits["ingestion_rate_mb"] == rate
    assert limits["ingestion_burst_size_mb"] == burst
    assert limits["max_global_streams_per_user"] == streams


@pytest.mark.parametrize("stack", STACKS)
def test_single_tenant_server_on_port_3100(stack_runs, stack):
    config = loki_config(stack_runs[stack])
    assert config["auth_enabled"] is False
    assert config["server"]["http_listen_port"] == 3100


# --- storage -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_dev_and_staging_keep_chunks_on_the_volume(stack_runs, stack):
    config = loki_config(stack_runs[stack])
    assert config["common"]["storage"] == {
        "filesystem": {"chunks_directory": "/loki/chunks", "rules_directory": "/loki/rules"}
    }
    assert config["schema_config"]["configs"][0]["object_store"] == "filesystem"


def test_prod_keeps_chunks_in_its_s3_bucket(stack_runs):
    config = loki_config(stack_runs["prod"])
    s3 = config["common"]["storage"]["s3"]
    assert s3["bucketnames"] == "acme-prod-loki"
    assert s3["region"] == "eu-west-1"
    assert s3["endpoint"] == "s3.eu-west-1.amazonaws.com"
    assert set(config["common"]["storage"]) == {"s3"}
    assert config["schema_config"]["configs"][0]["object_store"] == "s3"
    assert config["compactor"]["delete_request_store"] == "s3"


def test_gcs_storage_names_the_bucket(gcs):
    config = loki_config(gcs)
    assert config["common"]["storage"] == {"gcs": {"bucket_name": "acme-logs"}}
    assert config["schema_config"]["configs"][0]["object_store"] == "gcs"
    assert config["compactor"]["delete_request_store"] == "gcs"


# --- credentials ---------------------------------------------------------------------------------


def test_s3_keys_become_a_shared_credentials_file(stack_runs):
    run = stack_runs["prod"]
    content = container_files(run, loki_pod(run))[S3_CREDENTIALS]
    parsed = configparser.ConfigParser()
    parsed.read_string(content)
    assert parsed.sections() == ["default"]
    assert dict(parsed["default"]) == {
        "aws_access_key_id": SECRETS["loki_s3_access_key_id"],
        "aws_secret_access_key": SECRETS["loki_s3_secret_access_key"],
    }
    assert loki_env(run) == {"AWS_SHARED_CREDENTIALS_FILE": S3_CREDENTIALS}


@pytest.mark.parametrize("fixture", ["prod", "s3_on_docker"])
def test_s3_keys_appear_in_no_variable_and_not_in_the_config(request, fixture):
    run = request.getfixturevalue(fixture)
    text = container_files(run, loki_pod(run))[CONFIG]
    env = loki_env(run)
    for key in S3_KEYS:
        assert SECRETS[key] not in text
        assert not any(SECRETS[key] in value for value in env.values())
    assert "aws_access_key_id" not in text and "secret_access_key" not in text


def test_s3_credentials_on_docker_are_an_upload_and_a_variable(s3_on_docker):
    files = container_files(s3_on_docker, loki_pod(s3_on_docker))
    assert files[S3_CREDENTIALS] == (
        "[default]\n"
        f"aws_access_key_id = {SECRETS['loki_s3_access_key_id']}\n"
        f"aws_secret_access_key = {SECRETS['loki_s3_secret_access_key']}\n"
    )
    assert docker_container(s3_on_docker)["envs"] == [f"AWS_SHARED_CREDENTIALS_FILE={S3_CREDENTIALS}"]
    assert loki_config(s3_on_docker)["common"]["storage"]["s3"]["endpoint"] == "minio:9000"


def test_the_kubernetes_secret_holding_the_credentials_stays_secret(stack_runs):
    run = stack_runs["prod"]
    secret = run.one("kubernetes:core/v1:Secret", "loki-ingester-secrets")
    assert is_secret(secret.raw_inputs["stringData"])
    assert set(secret.inputs["stringData"]) == {"loki_s3_credentials"}
    pod = controller(run, "loki-ingester").inputs["spec"]["template"]["spec"]
    assert {"name": "secrets", "mountPath": "/run/secrets", "readOnly": True} in pod["containers"][0]["volumeMounts"]


def test_gcs_service_account_is_a_file_named_by_its_variable(gcs):
    files = container_files(gcs, loki_pod(gcs))
    assert files[GCS_CREDENTIALS] == SECRETS["loki_gcs_service_account"]
    assert loki_env(gcs) == {"GOOGLE_APPLICATION_CREDENTIALS": GCS_CREDENTIALS}
    assert "private_key" not in files[CONFIG]


def test_no_keys_means_ambient_credentials(prod_ambient):
    assert not any(path.startswith("/run/secrets/") for path in container_files(prod_ambient, loki_pod(prod_ambient)))
    assert loki_env(prod_ambient) == {}
    assert "loki-ingester-secrets" not in prod_ambient.names("kubernetes:core/v1:Secret")
    # The bucket is still the stack's.
    assert loki_config(prod_ambient)["common"]["storage"]["s3"]["bucketnames"] == "acme-prod-loki"


def test_filesystem_storage_has_no_credentials(stack_runs):
    run = stack_runs["dev"]
    assert not any(path.startswith("/run/secrets/") for path in container_files(run, loki_pod(run)))
    assert loki_env(run) == {}


@pytest.mark.parametrize("given, missing", [S3_KEYS, tuple(reversed(S3_KEYS))])
def test_one_s3_key_without_the_other_is_refused(given, missing):
    secrets = {**PROD_WITHOUT_LOKI_KEYS, given: SECRETS[given]}
    run = Run("prod")
    with pytest.raises(ConfigError) as error:
        run_program("prod", stack_config("prod"), secrets, run=run)
    message = str(error.value)
    assert f"key 'secrets.{missing}': required because secrets.{given} is set" in message
    assert SECRETS[given] not in message
    assert run.resources == []


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_a_bucket_store_without_a_bucket_is_refused(kind):
    run = Run("dev")
    with pytest.raises(ConfigError) as error:
        run_program("dev", merge(stack_config("dev"), {"loki": {"storage": {"type": kind}}}), run=run)
    assert f"key 'loki.storage.bucket': required because loki.storage.type is {kind}" in str(error.value)
    assert run.resources == []


# --- workload ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack, size", [("staging", "50Gi")])
def test_kubernetes_runs_loki_as_a_statefulset_with_a_claim(stack_runs, stack, size):
    spec = controller(stack_runs[stack], "loki").inputs["spec"]
    assert controller(stack_runs[stack], "loki").type == "kubernetes:apps/v1:StatefulSet"
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == size
    mounts = spec["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "data", "mountPath": "/loki"} in mounts


def test_kubernetes_probes_ready_as_the_loki_user(stack_runs):
    pod = controller(stack_runs["staging"], "loki").inputs["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert {"name": "http", "containerPort": 3100} in container["ports"]
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["args"] == ["-config.file=/etc/loki/loki.yml"]


def test_kubernetes_gives_loki_a_headless_service_for_its_pod_name(stack_runs):
    spec = stack_runs["staging"].one("kubernetes:core/v1:Service", "loki").inputs["spec"]
    assert spec["clusterIP"] == "None"
    assert {"name": "http", "port": 3100, "targetPort": "http"} in spec["ports"]


def test_docker_publishes_loki_on_loopback_with_a_named_volume(stack_runs):
    run = stack_runs["dev"]
    container = docker_container(run)
    assert container["ports"] == [{"internal": 3100, "external": 3100, "ip": "127.0.0.1"}]
    assert container["volumes"] == [{"volumeName": "observability-loki-data", "containerPath": "/loki"}]
    assert run.one("docker:index/volume:Volume", "loki-data").inputs["name"] == "observability-loki-data"
    assert container["command"] == ["-config.file=/etc/loki/loki.yml"]


def test_docker_checks_readiness_with_lokis_own_health_command(stack_runs):
    # The 3.7 image is distroless: no shell and no busybox. Loki's binary checks /ready itself.
    container = docker_container(stack_runs["dev"])
    assert container["healthcheck"]["tests"] == ["CMD", "/usr/bin/loki", "-health", "-health.url=http://127.0.0.1:3100/ready"]
    assert container["wait"] is True


def test_a_custom_loki_port_is_only_the_published_one():
    run = run_program("dev", merge(stack_config("dev"), {"loki": {"port": 13100}}))
    assert docker_container(run)["ports"] == [{"internal": 3100, "external": 13100, "ip": "127.0.0.1"}]
    assert loki_config(run)["server"]["http_listen_port"] == 3100
    assert push_url(run, "alloy") == "http://loki:3100/loki/api/v1/push"


# --- everything that sends logs points at the deployed Loki --------------------------------------


def push_url(run, shipper) -> str:
    if shipper == "promtail":
        config = yaml.safe_load(container_files(run, "promtail")["/etc/promtail/promtail.yml"])
        (client,) = config["clients"]
        return client["url"]
    text = container_files(run, "alloy")["/etc/alloy/config.alloy"]
    write = text[text.index('loki.write "default"'):]
    return write.split('url = "', 1)[1].split('"', 1)[0]


@pytest.mark.parametrize(
    "stack, shipper, url",
    [
        ("dev", "alloy", "http://loki:3100/loki/api/v1/push"),
        ("staging", "alloy", "http://loki-0.loki:3100/loki/api/v1/push"),
        # Loki's distributors take prod's pushes (loki.mode: microservices).
        ("prod", "alloy", "http://loki-distributor:3100/loki/api/v1/push"),
    ],
)
def test_the_stack_shipper_pushes_to_loki(stack_runs, stack, shipper, url):
    assert push_url(stack_runs[stack], shipper) == url


@pytest.mark.parametrize(
    "stack, shipper, url",
    [
        ("dev", "promtail", "http://loki:3100/loki/api/v1/push"),
        ("staging", "promtail", "http://loki-0.loki:3100/loki/api/v1/push"),
    ],
)
def test_the_other_shipper_pushes_to_the_same_loki(stack, shipper, url):
    config = merge(stack_config(stack), {"log_shipper": {"type": shipper}})
    run = run_program(stack, config, stack_secrets(stack))
    assert push_url(run, shipper) == url


@pytest.mark.parametrize(
    "stack, endpoint",
    [
        ("dev", "http://loki:3100/otlp"),
        ("staging", "http://loki-0.loki:3100/otlp"),
        ("prod", "http://loki-distributor:3100/otlp"),
    ],
)
def test_the_collector_sends_logs_to_loki_otlp(stack_runs, stack, endpoint):
    collector = yaml.safe_load(container_files(stack_runs[stack], "otel-collector")["/etc/otelcol-contrib/config.yaml"])
    assert collector["exporters"]["otlp_http/loki"]["endpoint"] == endpoint
    assert collector["service"]["pipelines"]["logs"]["exporters"] == ["otlp_http/loki"]
