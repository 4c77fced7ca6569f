"""Settings: defaults that work for dev, and bad configuration rejected before any resource."""

import pytest

from components.settings import ConfigError, parse
from conftest import SECRETS, STACKS, Run, merge, run_program, stack_config, stack_secrets


def test_minimal_config_takes_working_defaults():
    settings = parse("dev", {"platform": "docker"})
    assert settings.environment == "dev"
    assert settings.prometheus.scrape_interval == "15s"
    assert settings.prometheus.retention.time == "7d"
    assert settings.docker.bind_address == "127.0.0.1"
    assert settings.exporters.node.enabled and settings.exporters.cadvisor.enabled
    assert not settings.exporters.postgres.enabled
    assert not settings.alertmanager.receivers.slack.enabled


def parse_stack(stack):
    """A shipped stack file as `pulumi up` reads it, with the secrets the operator set."""
    values, secrets = stack_config(stack), stack_secrets(stack)
    if secrets:
        return parse(stack, {**values, "secrets": secrets}, {"secrets"})
    return parse(stack, values)


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stack_files_are_valid(stack):
    assert parse_stack(stack).environment == stack


@pytest.mark.parametrize(
    "stack, retention, platform",
    [("dev", "7d", "docker"), ("staging", "30d", "kubernetes"), ("prod", "90d", "kubernetes")],
)
def test_retention_and_platform_per_environment(stack, retention, platform):
    settings = parse_stack(stack)
    assert settings.prometheus.retention.time == retention
    assert settings.platform == platform


@pytest.mark.parametrize(
    "stack, required",
    [
        ("staging", ["slack_webhook_url", "postgres_password"]),
        ("prod", ["slack_webhook_url", "pagerduty_routing_key", "watchdog_url", "postgres_password",
                  "remote_write_password", "grafana_database_password", "long_term_metrics_password",
                  "jaeger_elasticsearch_password"]),
    ],
)
def test_stack_without_its_secrets_names_each_missing_secret(stack, required):
    with pytest.raises(ConfigError) as error:
        parse(stack, stack_config(stack))
    message = str(error.value)
    assert message.count("required because") == len(required)
    for name in required:
        assert f"key 'secrets.{name}': required because" in message
        assert f"`pulumi config set --secret --path secrets.{name} <value>`" in message


# Each case: an override of the dev stack, the key the message must name, and what it must say.
BAD = {
    "unknown top-level key": ({"retention": "7d"}, "retention", "unknown key"),
    "unknown nested key": ({"prometheus": {"scrape_intervall": "15s"}}, "prometheus.scrape_intervall", "unknown key"),
    "platform not offered": ({"platform": "nomad"}, "platform", "'docker' or 'kubernetes'"),
    "malformed duration": ({"prometheus": {"scrape_interval": "15x"}}, "prometheus.scrape_interval", "not a valid duration"),
    "negative duration": ({"prometheus": {"retention": {"time": "-1d"}}}, "prometheus.retention.time", "not a valid duration"),
    "zero duration": ({"alertmanager": {"group_wait": "0s"}}, "alertmanager.group_wait", "longer than zero"),
    "malformed size": ({"prometheus": {"retention": {"size": "10 gigs"}}}, "prometheus.retention.size", "not a valid size"),
    "malformed quantity": ({"prometheus": {"storage_size": "20GiB"}}, "prometheus.storage_size", "Kubernetes quantity"),
    "malformed cpu": ({"prometheus": {"resources": {"requests": {"cpu": "lots", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}}, "prometheus.resources.requests.cpu", "CPU quantity"),
    "port out of range": ({"prometheus": {"port": 70000}}, "prometheus.port", "less than or equal to 65535"),
    "port zero": ({"alertmanager": {"port": 0}}, "alertmanager.port", "greater than or equal to 1"),
    "port used twice": ({"alertmanager": {"port": 9090}}, "alertmanager.port", "already used by prometheus.port"),
    "wrong type": ({"prometheus": {"replicas": "two"}}, "prometheus.replicas", "valid integer"),
    "wrong type for a section": ({"exporters": "all"}, "exporters", "valid dictionary"),
    "replicas on docker": ({"alertmanager": {"replicas": 3}}, "alertmanager.replicas", "docker runs one replica"),
    "slack without its secret": ({"alertmanager": {"receivers": {"slack": {"enabled": True}}}}, "secrets.slack_webhook_url", "required because alertmanager.receivers.slack.enabled is true"),
    "pagerduty without its secret": ({"alertmanager": {"receivers": {"pagerduty": {"enabled": True}}}}, "secrets.pagerduty_routing_key", "required because"),
    "postgres without a host": ({"exporters": {"postgres": {"enabled": True, "user": "u"}}}, "exporters.postgres.host", "required because exporters.postgres.enabled is true"),
    "postgres without a password": ({"exporters": {"postgres": {"enabled": True, "host": "db", "user": "u"}}}, "secrets.postgres_password", "required because exporters.postgres.enabled"),
    "redis without an address": ({"exporters": {"redis": {"enabled": True}}}, "exporters.redis.address", "required because exporters.redis.enabled"),
    "redis address without a scheme": ({"exporters": {"redis": {"enabled": True, "address": "redis:6379"}}}, "exporters.redis.address", "must be redis://host:port or rediss://host:port"),
    "gpu exporter unknown": ({"exporters": {"gpu": {"enabled": True, "exporter": "rocm"}}}, "exporters.gpu.exporter", "'dcgm' or 'nvidia_smi'"),
    "scrape target without a port": ({"prometheus": {"scrape_targets": [{"job": "api", "targets": ["api"]}]}}, "prometheus.scrape_targets[0].targets[0]", "must be host:port"),
    "scrape target job used twice": ({"prometheus": {"scrape_targets": [{"job": "api", "targets": ["a:1"]}, {"job": "api", "targets": ["b:1"]}]}}, "prometheus.scrape_targets", "job 'api' is listed more than once"),
    "scrape target without targets": ({"prometheus": {"scrape_targets": [{"job": "api", "targets": []}]}}, "prometheus.scrape_targets[0].targets", "at least 1 item"),
    "scrape timeout longer than interval": ({"prometheus": {"scrape_interval": "10s", "scrape_timeout": "30s"}}, "prometheus.scrape_timeout", "must not be longer than prometheus.scrape_interval"),
    "remote write without a password": ({"prometheus": {"remote_write": {"url": "https://m/api/v1/push", "username": "u"}}}, "secrets.remote_write_password", "required because prometheus.remote_write.username is set"),
    "remote write url not http": ({"prometheus": {"remote_write": {"url": "mimir:9009"}}}, "prometheus.remote_write.url", "must be an http:// or https:// URL"),
    "zero size": ({"prometheus": {"retention": {"size": "0GB"}}}, "prometheus.retention.size", "is zero"),
    "zero storage": ({"alertmanager": {"storage_size": "0Gi"}}, "alertmanager.storage_size", "is zero"),
    "requests above limits": ({"prometheus": {"resources": {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}}, "prometheus.resources.requests.memory", "2Gi is more than the limit 1Gi"),
    "exporter requests above limits": ({"exporters": {"node": {"resources": {"requests": {"cpu": "500m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}}}}}, "exporters.node.resources.requests.cpu", "500m is more than the limit 200m"),
    "loki retention under a day": ({"loki": {"retention": "12h"}}, "loki.retention", "must be at least 24h"),
    "bad docker network name": ({"docker": {"network": "Observability Net"}}, "docker.network", "not a valid name"),
    "kube-state-metrics on docker": ({"exporters": {"kube_state_metrics": {"enabled": True}}}, "exporters.kube_state_metrics.enabled", "kube-state-metrics reports on a Kubernetes cluster; the docker platform has none"),
    "otlp client block with host bits": ({"otel_collector": {"clients": {"cidrs": ["10.20.0.1/16"]}}}, "otel_collector.clients.cidrs[0]", "its host bits zero"),
    "coredns without pod labels": ({"kubernetes": {"coredns": {"pod_labels": {}}}}, "kubernetes.coredns.pod_labels", "at least 1 item"),
}


@pytest.mark.parametrize("override, key, problem", BAD.values(), ids=BAD.keys())
def test_bad_configuration_fails_before_any_resource(override, key, problem):
    run = Run("dev")
    with pytest.raises(ConfigError) as error:
        run_program("dev", merge(stack_config("dev"), override), run=run)
    message = str(error.value)
    assert message.startswith("stack 'dev': invalid configuration:")
    assert f"key '{key}': " in message
    assert problem in message
    assert run.resources == [], "resources were registered before the configuration was rejected"


def test_every_problem_is_reported_in_one_message():
    override = {"platform": "nomad", "prometheus": {"scrape_interval": "15x", "port": 0}, "bogus": 1}
    with pytest.raises(ConfigError) as error:
        parse("dev", merge(stack_config("dev"), override))
    message = str(error.value)
    for key in ("platform", "prometheus.scrape_interval", "prometheus.port", "bogus"):
        assert f"key '{key}'" in message


def test_secrets_set_without_secret_flag_are_rejected():
    run = Run("dev")
    with pytest.raises(ConfigError) as error:
        run_program("dev", stack_config("dev"), secrets={"slack_webhook_url": SECRETS["slack_webhook_url"]},
                    plain_keys=frozenset({"secrets"}), run=run)
    assert "key 'secrets': must be set with `pulumi config set --secret" in str(error.value)
    assert SECRETS["slack_webhook_url"] not in str(error.value)
    assert run.resources == []


def test_secret_values_are_never_echoed_in_errors():
    secrets = {"slack_webhook_url": 12345, "slack_token": SECRETS["slack_webhook_url"]}
    with pytest.raises(ConfigError) as error:
        parse("dev", {"platform": "docker", "secrets": secrets}, {"secrets"})
    message = str(error.value)
    assert "key 'secrets.slack_token': unknown key" in message
    assert "key 'secrets.slack_webhook_url'" in message
    assert SECRETS["slack_webhook_url"] not in message and "12345" not in message


def test_other_keys_may_not_hold_secrets():
    with pytest.raises(ConfigError) as error:
        parse("dev", {"platform": "docker", "cluster": "c1"}, {"cluster"})
    assert "key 'cluster': is a secret; only the `secrets` key may hold secret values" in str(error.value)


def test_settings_repr_hides_secrets():
    settings = parse("dev", {"platform": "docker", "secrets": {"redis_password": SECRETS["redis_password"]}}, {"secrets"})
    assert SECRETS["redis_password"] not in repr(settings)


def test_asking_for_an_unset_secret_is_an_error():
    settings = parse("dev", {"platform": "docker"})
    with pytest.raises(KeyError):
        settings.secret("postgres_password")


def test_a_scrape_target_named_like_a_stack_job_fails_before_any_resource():
    run = Run("dev")
    override = {"prometheus": {"scrape_targets": [{"job": "cadvisor", "targets": ["x:1"]}]}}
    with pytest.raises(ConfigError) as error:
        run_program("dev", merge(stack_config("dev"), override), run=run)
    assert str(error.value).startswith("stack 'dev': cannot render the stack: scrape job names used twice: cadvisor;")
    assert "prometheus.scrape_targets" in str(error.value)
    assert run.resources == []


def test_load_reads_config_the_way_the_pulumi_cli_passes_it(monkeypatch):
    """Under `pulumi up` the language host hands config over in environment variables, objects
    as JSON text, with the list of secret keys beside them."""
    import json

    import pulumi

    from components import settings as settings_module

    pulumi.runtime.set_all_config({}, [])
    monkeypatch.setattr(pulumi, "get_stack", lambda: "qa")
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({
        "observability:platform": "kubernetes",
        "observability:prometheus": json.dumps({"replicas": 2, "retention": {"time": "30d"}}),
        "observability:grafana": json.dumps({"url": "https://grafana.qa.internal"}),
        "observability:secrets": json.dumps({"slack_webhook_url": SECRETS["slack_webhook_url"]}),
        "kubernetes:context": "ignored-provider-setting",
    }))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["observability:secrets"]))
    loaded = settings_module.load()
    assert loaded.environment == "qa"
    assert loaded.prometheus.replicas == 2 and loaded.prometheus.retention.time == "30d"
    assert loaded.secrets.slack_webhook_url == SECRETS["slack_webhook_url"]

    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", "[]")
    with pytest.raises(ConfigError, match="key 'secrets': must be set with"):
        settings_module.load()


@pytest.mark.parametrize("duration, ms, go", [
    ("10s", 10_000, "10s"),
    ("2s10ms", 2_010, "2s10ms"),
    ("1h30m", 5_400_000, "1h30m"),
    ("7d", 604_800_000, "168h"),
    ("1w1d", 691_200_000, "192h"),
    ("1y", 31_536_000_000, "8760h"),
])
def test_durations_convert_exactly_for_go_readers(duration, ms, go):
    from components.settings import go_duration, milliseconds

    assert milliseconds(duration) == ms
    assert go_duration(duration) == go


@pytest.mark.parametrize("kubernetes, problem", [
    ({"namespace": "o" * 60}, "required because " + "o" * 60 + "-node-agents, the default, is longer than the 63 "
                              "characters of a namespace's name"),
    ({"namespace": "observability", "node_agents_namespace": "observability"},
     "must differ from kubernetes.namespace: the node agents need a Pod Security level"),
])
def test_the_node_agents_namespace_is_a_valid_other_namespace(kubernetes, problem):
    with pytest.raises(ConfigError) as error:
        parse("staging", merge(stack_config("staging"), {"kubernetes": kubernetes}), secret_keys={"secrets"})
    assert f"key 'kubernetes.node_agents_namespace': {problem}" in str(error.value)


@pytest.mark.parametrize("url", ["http://hooks.internal/alerts", "https://hooks.internal:8443/alerts"])
def test_kubernetes_receivers_are_on_the_ports_alertmanager_may_reach_without_the_url_in_the_message(url):
    values = merge(stack_config("prod"), {"secrets": {**stack_secrets("prod"), "watchdog_url": url}})
    with pytest.raises(ConfigError) as error:
        parse("prod", values, secret_keys={"secrets"})
    assert ("key 'secrets.watchdog_url': its port is not in alertmanager.receiver_ports, the only ports "
            "Alertmanager may reach on kubernetes: add it there") in str(error.value)
    assert "hooks.internal" not in str(error.value) and "8443" not in str(error.value)
    # Listed, the port is reachable; docker's Alertmanager reaches any port.
    port = 80 if url.startswith("http:") else 8443
    listed = merge(values, {"alertmanager": {"receiver_ports": [443, port]}})
    assert parse("prod", listed, secret_keys={"secrets"}).secrets.watchdog_url == url
    docker = merge(stack_config("dev"), {"alertmanager": {"receivers": {"watchdog": {"enabled": True}}},
                                         "secrets": {"watchdog_url": url}})
    assert parse("dev", docker, secret_keys={"secrets"}).secrets.watchdog_url == url


def test_pagerduty_needs_the_https_port():
    values = merge(stack_config("prod"), {"secrets": stack_secrets("prod"), "alertmanager": {"receiver_ports": [8443]}})
    with pytest.raises(ConfigError, match="key 'alertmanager.receiver_ports': must hold 443 because "
                                          "alertmanager.receivers.pagerduty.enabled is true"):
        parse("prod", values, secret_keys={"secrets"})
