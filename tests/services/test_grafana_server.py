"""The Grafana server the stack runs: its container or StatefulSet, its locked-down settings, its
admin password (given, or generated and exported as a secret) and its metrics."""

import pytest

from conftest import SECRETS, STACKS, container_files, controller, is_secret, run_program, scrape_jobs, stack_config

PROVIDER = "pulumi:providers:grafana"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
CONTAINER = "docker:index/container:Container"

GENERATED = "generated-grafana-password-7c1d"  # what the mocks give RandomPassword
PASSWORD_FILE = "/run/secrets/grafana_admin_password"
# dev and staging set no password and get a generated one; prod's secrets include one.
PASSWORDS = {"dev": GENERATED, "staging": GENERATED, "prod": SECRETS["grafana_admin_password"]}


def grafana_env(run):
    containers = [r for r in run.of_type(CONTAINER) if r.name == "grafana"]
    if containers:
        return dict(entry.split("=", 1) for entry in containers[0].inputs["envs"])
    container = controller(run, "grafana").inputs["spec"]["template"]["spec"]["containers"][0]
    # Values the pod's own fields give (valueFrom) are not part of it.
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


@pytest.fixture(scope="module")
def dev_alone():
    return run_program("dev", stack_config("dev"))


@pytest.fixture(scope="module")
def dev_with_password():
    return run_program("dev", stack_config("dev"), {"grafana_admin_password": SECRETS["grafana_admin_password"]})


# --- the server ------------------------------------------------------------------------------------


def test_docker_publishes_grafana_on_loopback_with_a_named_volume(stack_runs):
    run = stack_runs["dev"]
    container = run.one(CONTAINER, "grafana").inputs
    assert container["ports"] == [{"ip": "127.0.0.1", "internal": 3000, "external": 3000}]
    assert container["volumes"] == [{"volumeName": "observability-grafana-data", "containerPath": "/var/lib/grafana"}]
    assert run.one("docker:index/volume:Volume", "grafana-data").inputs["name"] == "observability-grafana-data"


def test_docker_waits_for_grafanas_health_endpoint(stack_runs):
    container = stack_runs["dev"].one(CONTAINER, "grafana").inputs
    assert container["healthcheck"]["tests"][-1] == "http://127.0.0.1:3000/api/health"
    assert container["wait"] is True


# Prod keeps Grafana's database in PostgreSQL, with no volume (tests/services/test_grafana_ha.py).
@pytest.mark.parametrize("stack, size", [("staging", "10Gi")])
def test_kubernetes_runs_grafana_as_a_statefulset_with_a_claim(stack_runs, stack, size):
    grafana = controller(stack_runs[stack], "grafana")
    assert grafana.type == "kubernetes:apps/v1:StatefulSet"
    spec = grafana.inputs["spec"]
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == size
    pod = spec["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/var/lib/grafana"
    assert pod["securityContext"]["runAsUser"] == 472
    assert pod["containers"][0]["readinessProbe"]["httpGet"] == {"path": "/api/health", "port": "http"}


@pytest.mark.parametrize("stack, root_url", [
    ("dev", "http://127.0.0.1:3000"),
    ("staging", "https://grafana.staging.example.internal"),
    ("prod", "https://grafana.example.internal"),
])
def test_grafana_environment_locks_down_sign_up_and_anonymous_access(stack_runs, stack, root_url):
    env = grafana_env(stack_runs[stack])
    assert env["GF_SECURITY_ADMIN_USER"] == "admin"
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_SERVER_ROOT_URL"] == root_url


@pytest.mark.parametrize("stack, https", [("dev", False), ("staging", True), ("prod", True)])
def test_a_grafana_reached_over_https_sends_secure_cookies_and_hsts(stack_runs, stack, https):
    """Grafana's security hardening, [security] cookie_secure and strict_transport_security: on
    where its root URL is https (staging's and prod's Ingress), off on dev's plain http, where a
    secure cookie would never come back and sign-in would fail."""
    env = grafana_env(stack_runs[stack])
    hardening = {k: env.get(k) for k in ("GF_SECURITY_COOKIE_SECURE", "GF_SECURITY_STRICT_TRANSPORT_SECURITY")}
    assert hardening == ({k: "true" for k in hardening} if https else {k: None for k in hardening})


@pytest.mark.parametrize("stack", STACKS)
def test_the_admin_password_is_a_secret_file_and_never_in_the_environment(stack_runs, stack):
    run = stack_runs[stack]
    password = PASSWORDS[stack]
    assert container_files(run, "grafana")[PASSWORD_FILE] == password
    assert not any(password in value for value in grafana_env(run).values())
    if stack == "dev":
        assert is_secret(run.one(CONTAINER, "grafana").raw_inputs["uploads"])
    else:
        assert is_secret(run.one("kubernetes:core/v1:Secret", "grafana-secrets").raw_inputs["stringData"])


@pytest.mark.parametrize("stack, target", [("dev", "grafana:3000"), ("staging", "grafana-0.grafana:3000")])
def test_prometheus_scrapes_grafana(stack_runs, stack, target):
    assert scrape_jobs(stack_runs[stack])["grafana"]["static_configs"] == [{"targets": [target]}]


# --- the admin password ----------------------------------------------------------------------------


def test_without_a_password_one_is_generated_and_exported_as_a_secret(dev_alone):
    run = dev_alone
    generator = run.one(RANDOM_PASSWORD, "grafana-admin-password")
    assert generator.inputs["length"] == 32
    assert container_files(run, "grafana")[PASSWORD_FILE] == GENERATED
    assert run.outputs["grafana_admin_password"] == GENERATED
    assert "grafana_admin_password" in run.secret_outputs


def test_a_given_password_is_used_and_none_is_generated(dev_with_password):
    run = dev_with_password
    assert run.of_type(RANDOM_PASSWORD) == []
    assert container_files(run, "grafana")[PASSWORD_FILE] == "grafana-secret-f7a8"
    assert run.outputs["grafana_admin_password"] == "grafana-secret-f7a8"
    assert "grafana_admin_password" in run.secret_outputs
    assert run.one(PROVIDER, "grafana").inputs["auth"] == "admin:grafana-secret-f7a8"


