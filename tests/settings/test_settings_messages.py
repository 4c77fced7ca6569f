"""Settings: the whole message a user reads when a value is refused, the defaults the configuration reference
documents, and the secrets a configuration needs, as the render tools ask for them.

Some fields are made when components/settings/__init__.py is imported: their validators and default
factories are built once, by the class bodies. `fresh_settings` imports the module again, as a new
`pulumi up` process does, so these tests check what such a process builds, not only what the test
session built once at its start.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

from components.tools import render
from components import settings as settings_module
from components.settings import parse, required_secrets
from conftest import merge, stack_config

# The example every message about an S3 endpoint ends with.
S3_EXAMPLE = "(for example s3.eu-west-1.amazonaws.com or minio.storage.svc:9000)"


def at(path: str, value):
    """An override that sets one dotted key path."""
    for key in reversed(path.split(".")):
        value = {key: value}
    return value


def refusal(settings, override: dict, stack: str = "dev") -> str:
    """The whole ConfigError message of `settings` (a settings module) for the stack file with
    `override` merged in."""
    with pytest.raises(settings.ConfigError) as error:
        settings.parse(stack, merge(stack_config(stack), override))
    return str(error.value)


def one_problem(stack: str, key: str, message: str) -> str:
    return f"stack {stack!r}: invalid configuration: 1 problem in stacks/Pulumi.{stack}.yaml\n  - key '{key}': {message}"


@pytest.fixture
def fresh_settings(monkeypatch):
    """components/settings/__init__.py imported anew, as a new process imports it; while the test runs it
    is the `components.settings` module, so its models resolve their own classes."""
    spec = importlib.util.find_spec("components.settings")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "components.settings", module)
    spec.loader.exec_module(module)
    return module


# --- Kubernetes object names: the message names the rule and a name that follows it --------------

OBJECT_NAME_RULE = ("is not a valid Kubernetes object name: lower case letters, digits, '-' and '.', starting and "
                    "ending with a letter or digit")


@pytest.mark.parametrize("key, value, example", [
    ("kubernetes.storage_class", "Fast_SSD", "fast-ssd"),
    ("exporters.gpu.runtime_class", "-nvidia", "nvidia"),
    ("grafana.ingress.cluster_issuer", "internal ca", "internal-ca"),
])
def test_a_bad_kubernetes_object_name_is_refused_with_the_rule_and_an_example(fresh_settings, key, value, example):
    """docs/configuration.md, Validation: each problem names the key, what is wrong and an example of a good value
    (its examples: StorageClass fast-ssd, RuntimeClass nvidia, ClusterIssuer internal-ca)."""
    message = refusal(fresh_settings, at(key, value))
    assert message == one_problem("dev", key, f"{value!r} {OBJECT_NAME_RULE} (for example {example})")


# --- loki.storage.endpoint: host[:port] only, and the message says what to do instead -------------


@pytest.mark.parametrize("value, message", [
    ("https://s3.example.com",
     f"must be host[:port] without a scheme; for plain HTTP set loki.storage.insecure: true {S3_EXAMPLE}"),
    ("AKIAEXAMPLE:s3-secret-0f3a@minio.storage.svc:9000",
     "must not carry credentials: put them in secrets.loki_s3_access_key_id and secrets.loki_s3_secret_access_key "
     + S3_EXAMPLE),
    ("minio.storage.svc:9000/loki-chunks",
     f"must be host[:port] with a host name or IP address and no path {S3_EXAMPLE}"),
    ("minio.storage.svc:99999",
     f"must be host[:port] with a host name or IP address and no path {S3_EXAMPLE}"),
])
def test_an_s3_endpoint_in_the_wrong_form_is_refused_saying_what_to_write(value, message):
    """docs/configuration.md: loki.storage.endpoint is host[:port]: no scheme (plain HTTP is
    loki.storage.insecure: true), no path, no credentials; the message names the secrets to use
    instead and never repeats the value."""
    override = {"loki": {"storage": {"type": "s3", "bucket": "acme-dev-loki", "endpoint": value}}}
    text = refusal(settings_module, override)
    assert text == one_problem("dev", "loki.storage.endpoint", message)
    assert "s3-secret-0f3a" not in text


# --- the default resources of every service, as the configuration reference gives them ---------------------

DOCUMENTED_RESOURCES = {
    "prometheus": (("250m", "512Mi"), ("1", "1Gi")),
    "alertmanager": (("50m", "64Mi"), ("200m", "128Mi")),
    "exporters.node": (("50m", "32Mi"), ("200m", "64Mi")),
    "exporters.cadvisor": (("100m", "128Mi"), ("500m", "256Mi")),
    "exporters.postgres": (("50m", "32Mi"), ("200m", "64Mi")),
    "exporters.redis": (("50m", "32Mi"), ("200m", "64Mi")),
    "exporters.gpu": (("50m", "128Mi"), ("500m", "512Mi")),
    "loki": (("100m", "256Mi"), ("1", "1Gi")),
    "log_shipper": (("50m", "64Mi"), ("500m", "256Mi")),
    "otel_collector": (("100m", "256Mi"), ("1", "512Mi")),
    "jaeger": (("100m", "256Mi"), ("1", "1Gi")),
    "grafana": (("100m", "256Mi"), ("1", "512Mi")),
}


def test_every_service_takes_the_requests_and_limits_the_readme_documents(fresh_settings):
    """docs/configuration.md, the `<service>.resources` rows: a stack that sets no `resources` gets these requests
    and limits (Kubernetes applies both; Docker the limits)."""
    settings = fresh_settings.parse("dev", {"platform": "kubernetes", "grafana": {"url": "https://grafana.dev.internal"}})
    found = {}
    for key in DOCUMENTED_RESOURCES:
        section = settings
        for part in key.split("."):
            section = getattr(section, part)
        found[key] = section.resources.model_dump()
    assert found == {
        key: {"requests": {"cpu": rc, "memory": rm}, "limits": {"cpu": lc, "memory": lm}}
        for key, ((rc, rm), (lc, lm)) in DOCUMENTED_RESOURCES.items()
    }


# --- the secrets a configuration needs: what the render tools fill in ------------------------------

# docs/configuration.md, Secrets: "needed when", for what each shipped stack file enables. dev needs none.
NEEDED = {
    "dev": set(),
    "staging": {"slack_webhook_url", "postgres_password"},
    "prod": {"slack_webhook_url", "pagerduty_routing_key", "watchdog_url", "postgres_password", "remote_write_password",
             "grafana_database_password", "long_term_metrics_password", "jaeger_elasticsearch_password"},
}


@pytest.mark.parametrize("stack", sorted(NEEDED))
def test_required_secrets_are_the_ones_the_configuration_needs(stack):
    assert required_secrets(stack, stack_config(stack)) == NEEDED[stack]


@pytest.mark.parametrize("override, needed", [
    ({"grafana": {"mode": "external", "url": "https://grafana.example.internal"}}, {"grafana_api_token"}),
    ({"alertmanager": {"receivers": {"watchdog": {"enabled": True}}}}, {"watchdog_url"}),
    ({"prometheus": {"remote_write": {"url": "https://mimir.example/api/v1/push", "username": "u"}}}, {"remote_write_password"}),
    # Optional secrets are not required: the S3 keys (the node's IAM role otherwise), Redis's password.
    ({"loki": {"storage": {"type": "s3", "bucket": "acme-dev-loki"}}, "exporters": {"redis": {"enabled": True, "address": "redis://redis:6379"}}}, set()),
])
def test_each_setting_that_needs_a_secret_requires_it_and_nothing_else(override, needed):
    assert required_secrets("dev", merge(stack_config("dev"), override)) == needed


def test_an_invalid_configuration_requires_no_secret():
    """The render tools ask before the configuration is checked; its problems are reported by the
    run itself, so an invalid configuration names no secret."""
    config = merge(stack_config("prod"), {"prometheus": {"scrape_interval": "15x"}})
    assert required_secrets("prod", config) == set()


def test_placeholder_secrets_fill_in_every_required_secret_as_if_set():
    """docs/reviewing-changes.md, offline render: `--placeholder-secrets` fills every required secret with a
    placeholder, as if each had been set (`pulumi config set --secret`), so prod, whose file only
    names its secrets in a comment, validates."""
    inputs = render.program_inputs("prod", placeholders=True)
    assert set(inputs.secrets) == NEEDED["prod"]
    assert "secrets" not in inputs.plain_keys
    settings = parse("prod", {**inputs.config, "secrets": inputs.secrets}, {"secrets"})
    assert settings.environment == "prod"


# --- exporters.gpu.node_selector: a label value, and a good one, as the configuration reference gives them ----------

LABEL_VALUE_RULE = ("is not a valid Kubernetes label value: up to 63 letters, digits, '-', '_' or '.', starting and "
                    "ending with a letter or digit")


@pytest.mark.parametrize("value", ["-yes", "a100!", "x" * 64])
def test_a_bad_node_selector_value_is_refused_with_the_rule_and_an_example(fresh_settings, value):
    """docs/configuration.md, `exporters.gpu.node_selector`: a value is empty or up to 63 letters, digits, '-', '_'
    or '.', starting and ending with a letter or digit; the example is the default's value, "true"
    (`{nvidia.com/gpu.present: "true"}`)."""
    message = refusal(fresh_settings, at("exporters.gpu.node_selector", {"accelerator": value}))
    assert message == one_problem("dev", "exporters.gpu.node_selector.accelerator",
                                  f"{value!r} {LABEL_VALUE_RULE} (for example true)")


def test_a_node_selector_value_that_is_not_text_is_refused_with_the_defaults_value_as_example(fresh_settings):
    """YAML reads an unquoted `true` as a boolean, and a label value is text: the message names the
    key of the map entry and, as every problem does (docs/configuration.md, Validation), a good value, here the
    default's value for that map, "true" (`{nvidia.com/gpu.present: "true"}`)."""
    message = refusal(fresh_settings, at("exporters.gpu.node_selector", {"accelerator": True}))
    assert message == one_problem("dev", "exporters.gpu.node_selector.accelerator",
                                  "Input should be a valid string (for example true)")


# --- strings composed into others, and credentials kept out of addresses: the reason is the message --


def test_a_postgres_database_with_a_url_character_is_refused_saying_it_goes_into_the_connection_url():
    """docs/configuration.md, Validation, strings the program composes into others: `exporters.postgres.database`
    with `/`, `?`, `#` or `%` is refused, because the database is the path of postgres-exporter's
    connection URI, which those characters would end or re-encode; the example is `app`."""
    message = refusal(settings_module, at("exporters.postgres.database", "app?sslmode=disable"))
    assert message == one_problem(
        "dev", "exporters.postgres.database",
        "must not contain '?': the database name goes into the exporter's connection URL (for example app)")


def test_a_redis_address_without_its_scheme_is_refused_naming_both_schemes():
    """docs/configuration.md, `exporters.redis.address`: `redis://host:port` or `rediss://host:port` (TLS);
    Validation: the message names the key, what is wrong and a good value, here the example the
    shipped stacks use, `redis://redis.databases.svc:6379`."""
    message = refusal(settings_module, at("exporters.redis", {"enabled": True, "address": "redis.databases.svc:6379"}))
    assert message == one_problem(
        "dev", "exporters.redis.address",
        "must be redis://host:port or rediss://host:port (TLS) (for example redis://redis.databases.svc:6379)")


def test_an_ssh_docker_host_with_a_password_is_refused_saying_to_use_an_ssh_key():
    """docs/configuration.md, `docker.host`: `ssh://` takes no password (Docker's SSH connection refuses one: use
    an ssh key); Validation: a credential in an address is refused with a message that never
    repeats the value, and gives a good value, here `ssh://deploy@docker-host`."""
    text = refusal(settings_module, at("docker.host", "ssh://deploy:hunter2-0f3a@docker-host"))
    assert text == one_problem(
        "dev", "docker.host", "must not carry a password: use an ssh key (for example ssh://deploy@docker-host)")
    assert "hunter2-0f3a" not in text


def test_a_size_prometheus_cannot_read_is_refused_with_an_example_in_its_units():
    # Prometheus reads retention sizes in its own units, upper case: B, KB, MB, GB, TB, PB, EB.
    message = refusal(settings_module, at("prometheus.retention.size", "10 GiB"))
    assert message == one_problem(
        "dev", "prometheus.retention.size", "'10 GiB' is not a valid size (for example 512MB or 50GB)"
    )


def test_jaeger_s_published_port_may_not_be_another_service_s():
    # docs/platforms.md, docker: each service publishes its own port on the host. The example is Jaeger's
    # own UI port, 16686.
    message = refusal(settings_module, at("jaeger.port", 9090))
    assert message == one_problem(
        "dev", "jaeger.port", "port 9090 is already used by prometheus.port (for example 16686)"
    )
