"""Settings: every value another program reads is held to that program's grammar and range.

Each test class is one class of input: a grammar (durations, label names, hosts and URLs, Go
templates), a range (int64, ports, finite numbers) or a composition rule (the strings the
exporters build connection URLs from). Bad values are refused before any resource, with one
message naming the key; good values of the same class still pass. Where the consumer's own tool
is installed (promtool, amtool), it is the oracle for the boundary.
"""

from __future__ import annotations

import json
import re
import subprocess
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

from components.settings import ConfigError, go_duration, misplaced_keys, parse
from conftest import SECRETS, STACKS, container_files, merge, planned_workload, require_tool, run_program, stack_config

INT64_MAX = 2**63 - 1
# A stand-in credential, searched for in every message that must not echo it.
TOKEN = "tok-9f8e7d"


def at(path: str, value):
    """An override that sets one dotted key path."""
    for key in reversed(path.split(".")):
        value = {key: value}
    return value


def problems(override: dict, stack: str = "dev", secrets: dict | None = None) -> dict[str, str]:
    """key -> message for each problem the stack file, with `override` merged in, has; {} if none."""
    values = merge(stack_config(stack), override)
    try:
        if secrets is not None:
            parse(stack, {**values, "secrets": secrets}, {"secrets"})
        else:
            parse(stack, values)
    except ConfigError as error:
        found = re.findall(r"^  - key '(.*?)': (.*)$", str(error), flags=re.MULTILINE)
        assert found, str(error)
        return dict(found)
    return {}


def refused(override: dict, key: str, **kwargs) -> str:
    found = problems(override, **kwargs)
    assert key in found, f"{key} not refused; problems: {found}"
    return found[key]


# --- 1. whole-string grammar: a trailing newline is not part of any value -------------------------

def _target(field: str, value):
    target = {"job": "api", "targets": ["api:8000"], field: value}
    if field == "targets":
        target["targets"] = [value]
    return {"prometheus": {"scrape_targets": [target]}}


WHOLE_STRING = [
    (lambda v: at("cluster", v), "cluster", "laptop"),
    (lambda v: at("environment", v), "environment", "dev"),
    (lambda v: at("docker.network", v), "docker.network", "observability"),
    (lambda v: at("docker.bind_address", v), "docker.bind_address", "127.0.0.1"),
    (lambda v: at("docker.socket_path", v), "docker.socket_path", "/var/run/docker.sock"),
    (lambda v: at("docker.host", v), "docker.host", "unix:///var/run/docker.sock"),
    (lambda v: at("kubernetes.namespace", v), "kubernetes.namespace", "observability"),
    (lambda v: at("kubernetes.storage_class", v), "kubernetes.storage_class", "fast-ssd"),
    (lambda v: at("prometheus.scrape_interval", v), "prometheus.scrape_interval", "15s"),
    (lambda v: at("prometheus.retention.time", v), "prometheus.retention.time", "7d"),
    (lambda v: at("prometheus.retention.size", v), "prometheus.retention.size", "5GB"),
    (lambda v: at("prometheus.storage_size", v), "prometheus.storage_size", "20Gi"),
    (lambda v: at("loki.limits.max_line_size", v), "loki.limits.max_line_size", "256KB"),
    (lambda v: _target("job", v), "prometheus.scrape_targets[0].job", "api"),
    (lambda v: _target("targets", v), "prometheus.scrape_targets[0].targets[0]", "api:8000"),
    (lambda v: _target("metrics_path", v), "prometheus.scrape_targets[0].metrics_path", "/metrics"),
    (lambda v: _target("interval", v), "prometheus.scrape_targets[0].interval", "10s"),
    (lambda v: at("prometheus.remote_write.url", v), "prometheus.remote_write.url", "https://mimir.example/api/v1/push"),
    (lambda v: at("alertmanager.group_by", [v]), "alertmanager.group_by", "alertname"),
    (lambda v: at("alertmanager.receivers.slack.critical_channel", v), "alertmanager.receivers.slack.critical_channel", "#alerts"),
    (lambda v: at("alerts.runbook_url", v), "alerts.runbook_url", "https://wiki.example.internal/runbook"),
    (lambda v: at("exporters.postgres.host", v), "exporters.postgres.host", "postgres"),
    (lambda v: at("exporters.postgres.database", v), "exporters.postgres.database", "app"),
    (lambda v: at("exporters.redis.address", v), "exporters.redis.address", "redis://redis:6379"),
    (lambda v: at("exporters.gpu.runtime_class", v), "exporters.gpu.runtime_class", "nvidia"),
    (lambda v: at("loki.storage.bucket", v), "loki.storage.bucket", "acme-prod-loki"),
    (lambda v: at("loki.storage.endpoint", v), "loki.storage.endpoint", "s3.eu-west-1.amazonaws.com"),
    (lambda v: at("loki.storage.region", v), "loki.storage.region", "eu-west-1"),
    (lambda v: at("grafana.url", v), "grafana.url", "http://127.0.0.1:3000"),
    (lambda v: at("grafana.datasource_urls.loki", v), "grafana.datasource_urls.loki", "http://loki:3100"),
    (lambda v: at("grafana.admin_user", v), "grafana.admin_user", "admin"),
    (lambda v: at("grafana.ingress.cluster_issuer", v), "grafana.ingress.cluster_issuer", "internal-ca"),
]


class TestWholeStringGrammar:
    """Every pattern matches the whole value: a trailing newline (which `$` lets through) or a
    stray space makes the value a different one, and is refused."""

    @pytest.mark.parametrize("override, key, good", WHOLE_STRING, ids=[c[1] for c in WHOLE_STRING])
    def test_the_value_passes_and_the_value_with_a_newline_does_not(self, override, key, good):
        assert problems(override(good)) == {}
        assert key in problems(override(good + "\n"))

    @pytest.mark.parametrize("override, key, good", WHOLE_STRING[:12], ids=[c[1] for c in WHOLE_STRING[:12]])
    def test_surrounding_spaces_are_refused(self, override, key, good):
        assert key in problems(override(f" {good}"))
        assert key in problems(override(f"{good} "))


# --- 2. ranges of the consumer -------------------------------------------------------------------

# Read by: Prometheus (model.Duration), Alertmanager (model.Duration), Loki (model.Duration),
# the collector and Jaeger (Go's time.Duration, through go_duration). All int64 nanoseconds.
DURATION_KEYS = [
    "prometheus.retention.time",
    "alertmanager.group_wait",
    "loki.retention",
    "otel_collector.sampling.decision_wait",
    "jaeger.trace_ttl",
]
# The largest value of each unit that fits 2^63-1 ns, and the next one up.
DURATION_BOUNDARY = [
    ("106751d", True), ("106752d", False),
    ("292y", True), ("293y", False),
    ("15250w", True), ("15251w", False),
    ("2562047h", True), ("2562048h", False),
    ("9223372036854ms", True), ("9223372036855ms", False),
    ("292y1w", True), ("99999999999999999999s", False),
]


class TestDurationRange:
    @pytest.mark.parametrize("key", DURATION_KEYS)
    @pytest.mark.parametrize("value, fits", DURATION_BOUNDARY)
    def test_durations_beyond_int64_nanoseconds_are_refused(self, key, value, fits):
        found = problems(at(key, value))
        if fits:
            assert found == {}
        else:
            assert "longer than Prometheus and Go can hold" in found[key]

    @pytest.mark.parametrize("value, fits", DURATION_BOUNDARY[:10])
    def test_promtool_draws_the_same_line(self, value, fits, tmp_path):
        """Prometheus's own parser (a rule's `for`) accepts exactly what the settings accept."""
        promtool = require_tool("promtool")
        rules = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": value}]}]}
        (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
        result = subprocess.run([promtool, "check", "rules", "rules.yml"], cwd=tmp_path, capture_output=True, text=True)
        assert (result.returncode == 0) == fits, result.stdout + result.stderr
        assert (problems(at("prometheus.retention.time", value)) == {}) == fits

    @pytest.mark.parametrize("value", [v for v, fits in DURATION_BOUNDARY if fits])
    def test_the_longest_durations_stay_in_range_for_go_readers(self, value):
        # go_duration writes hours, minutes, seconds and ms; Go's time.Duration holds 2^63-1 ns.
        units = {"h": 3_600 * 10**9, "m": 60 * 10**9, "s": 10**9, "ms": 10**6}
        nanoseconds = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|h|m|s)", go_duration(value)))
        assert 0 < nanoseconds <= INT64_MAX


SIZE_KEYS = ["prometheus.retention.size", "loki.limits.per_stream_rate_limit", "loki.limits.max_line_size"]
# Prometheus and Loki count sizes in powers of two; both hold them in 63 bits.
SIZE_BOUNDARY = [
    ("7EB", True), ("8EB", False),
    ("8191PB", True), ("8192PB", False),
    ("9223372036854775807B", True), ("9223372036854775808B", False),
]
QUANTITY_BOUNDARY = [
    ("7Ei", True), ("8Ei", False),
    ("9E", True), ("10E", False),
    ("9223372036854775807", True), ("9223372036854775808", False),
]


def _memory_limit(value: str) -> dict:
    return {"prometheus": {"resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                                         "limits": {"cpu": "1", "memory": value}}}}


class TestSizeRange:
    @pytest.mark.parametrize("key", SIZE_KEYS)
    @pytest.mark.parametrize("value, fits", SIZE_BOUNDARY)
    def test_sizes_beyond_int64_bytes_are_refused(self, key, value, fits):
        found = problems(at(key, value))
        assert (found == {}) == fits, found
        if not fits:
            assert "2^63-1 bytes" in found[key]

    @pytest.mark.parametrize("override, key", [
        (lambda v: at("prometheus.storage_size", v), "prometheus.storage_size"),
        (lambda v: at("jaeger.storage_size", v), "jaeger.storage_size"),
        (_memory_limit, "prometheus.resources.limits.memory"),
    ])
    @pytest.mark.parametrize("value, fits", QUANTITY_BOUNDARY)
    def test_quantities_beyond_int64_bytes_are_refused(self, override, key, value, fits):
        found = problems(override(value))
        assert (found == {}) == fits, found
        if not fits:
            assert "2^63-1 bytes" in found[key]

    @pytest.mark.parametrize("value, fits", [("2", True), ("9223372036", True), ("9223372037", False)])
    def test_cpus_beyond_dockers_int64_nano_cpus_are_refused(self, value, fits):
        found = problems({"prometheus": {"resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                                                       "limits": {"cpu": value, "memory": "1Gi"}}}})
        assert (found == {}) == fits, found


INT_KEYS = [
    "prometheus.port", "prometheus.replicas", "alertmanager.port", "exporters.postgres.port",
    "otel_collector.grpc_port", "loki.limits.max_global_streams_per_user", "jaeger.max_traces",
    "grafana.alerts.error_log_burst",
]


class TestIntegers:
    @pytest.mark.parametrize("key", INT_KEYS)
    @pytest.mark.parametrize("value", [True, False, "9090", 9090.0])
    def test_an_integer_key_takes_only_an_integer(self, key, value):
        assert "valid integer" in refused(at(key, value), key)

    @pytest.mark.parametrize("key", ["loki.limits.max_global_streams_per_user", "grafana.alerts.error_log_burst"])
    def test_counts_stop_at_int64(self, key):
        assert problems(at(key, INT64_MAX)) == {}
        assert "2^63-1" in refused(at(key, INT64_MAX + 1), key)

    def test_jaeger_max_traces_stops_at_int64(self):
        badger = {"jaeger": {"storage": "badger", "max_traces": INT64_MAX}}
        assert problems(badger) == {}
        assert "2^63-1" in refused(at("jaeger.max_traces", INT64_MAX + 1), "jaeger.max_traces")

    @pytest.mark.parametrize("traces, limit, fits", [
        (50_000, "512Mi", True),
        # 80 bytes a slot: 512Mi holds 6710886 slots, and not one more.
        (6_710_886, "512Mi", True),
        (6_710_887, "512Mi", False),
        (100_000_000, "8Gi", True),
        (100_000_000, "4Gi", False),
    ])
    def test_jaegers_memory_store_must_fit_its_ring_of_traces_in_the_memory_limit(self, traces, limit, fits):
        override = {"jaeger": {"storage": "memory", "max_traces": traces, "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": limit}}}}
        found = problems(override)
        assert (found == {}) == fits, found
        if not fits:
            assert "jaeger.resources.limits.memory" in found["jaeger.max_traces"]

    @pytest.mark.parametrize("key", ["prometheus.discovery", "exporters.node.enabled", "loki.storage.insecure"])
    @pytest.mark.parametrize("value", ["true", "yes", 1, 0])
    def test_a_boolean_key_takes_only_true_or_false(self, key, value):
        assert "valid boolean" in refused(at(key, value), key)

    @pytest.mark.parametrize("value, expected", [(True, True), ("true", True), ("false", False)])
    def test_protect_data_takes_the_text_pulumi_gives_a_top_level_key(self, value, expected):
        assert parse("dev", {"platform": "docker", "protect_data": value}).protect_data is expected

    @pytest.mark.parametrize("value", ["yes", "True", 1, "on"])
    def test_protect_data_refuses_anything_else(self, value):
        assert "valid boolean" in refused({"protect_data": value}, "protect_data")


FLOAT_KEYS = [
    "loki.limits.ingestion_rate_mb",
    "loki.limits.ingestion_burst_size_mb",
    "otel_collector.sampling.percentage",
    "grafana.alerts.log_volume_factor",
    "alerts.overrides.HostHighCpu.threshold",
]


class TestFiniteNumbers:
    """NaN compares false with everything: as a threshold it silently switches an alert off."""

    @pytest.mark.parametrize("key", FLOAT_KEYS)
    @pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "nan"])
    def test_nan_and_infinity_are_refused(self, key, value):
        assert refused(at(key, value), key)

    @pytest.mark.parametrize("key, value", [
        ("loki.limits.ingestion_rate_mb", 16), ("loki.limits.ingestion_rate_mb", 0.5),
        ("otel_collector.sampling.percentage", 100), ("grafana.alerts.log_volume_factor", 2.5),
        ("alerts.overrides.HostHighCpu.threshold", 95),
    ])
    def test_finite_numbers_and_integers_pass(self, key, value):
        assert problems(at(key, value)) == {}

    @pytest.mark.parametrize("key", FLOAT_KEYS)
    @pytest.mark.parametrize("value", [True, False, "ten", "1e3", ""])
    def test_a_number_is_not_a_boolean_or_other_text(self, key, value):
        assert "valid number" in refused(at(key, value), key)

    @pytest.mark.parametrize("key", FLOAT_KEYS[:3])
    def test_a_decimal_as_pulumi_config_set_stores_it_passes(self, key):
        # `pulumi config set --path <key> 4.5` writes the text "4.5"; integers it writes as numbers.
        assert problems(at(key, "4.5")) == {}


# --- 3. URLs and addresses -----------------------------------------------------------------------

URL_KEYS = ["grafana.url", "grafana.datasource_urls.prometheus", "prometheus.remote_write.url"]
BAD_URLS = [
    "https:// /push",
    "https:///push",
    "http://:3000/",
    "grafana.example.com",
    "ftp://grafana.example.com",
    "https://grafana.example.com:99999",
    "https://grafana example.com",
    "https://999.1.1.1/",
]
GOOD_URLS = ["https://grafana.example.com", "http://10.0.0.5:3000/grafana", "http://[::1]:3000", "https://grafana_1.internal/"]


class TestUrls:
    @pytest.mark.parametrize("key", URL_KEYS)
    @pytest.mark.parametrize("value", BAD_URLS)
    def test_a_url_needs_a_scheme_a_host_and_no_spaces(self, key, value):
        message = refused(at(key, value), key)
        assert value not in message

    @pytest.mark.parametrize("key", URL_KEYS)
    @pytest.mark.parametrize("value", GOOD_URLS)
    def test_urls_with_a_host_pass(self, key, value):
        assert problems(at(key, value)) == {}

    @pytest.mark.parametrize("key, secret", [
        ("grafana.url", "secrets.grafana_admin_password"),
        ("grafana.url", "secrets.grafana_api_token"),
        ("prometheus.remote_write.url", "secrets.remote_write_password"),
    ])
    @pytest.mark.parametrize("userinfo", [f"admin:{TOKEN}", f":{TOKEN}", TOKEN])
    def test_credentials_in_a_url_are_refused_naming_the_secret_to_use(self, key, secret, userinfo):
        message = refused(at(key, f"https://{userinfo}@host.example.internal/x"), key)
        assert "credentials" in message and secret in message
        assert TOKEN not in message

    @pytest.mark.parametrize("name", ["slack_webhook_url", "watchdog_url"])
    @pytest.mark.parametrize("value", [
        f"hooks.slack.com/services/T0/B0/{TOKEN}",
        f"https:///services/{TOKEN}",
        f"mailto:{TOKEN}@example.com",
        f"https://hooks slack.com/{TOKEN}",
    ])
    def test_url_secrets_need_a_scheme_and_a_host_and_are_never_echoed(self, name, value):
        message = refused({}, f"secrets.{name}", secrets={name: value})
        assert "http" in message
        assert TOKEN not in message

    @pytest.mark.parametrize("name", ["slack_webhook_url", "watchdog_url"])
    def test_url_secrets_may_carry_their_token_and_a_trailing_newline(self, name):
        # Alertmanager trims the file it reads the URL from.
        assert problems({}, secrets={name: f"https://user:{TOKEN}@hooks.example.com/x/{TOKEN}\n"}) == {}


class TestAddresses:
    @pytest.mark.parametrize("value", ["https://s3.example.com", "http://minio:9000"])
    def test_an_s3_endpoint_with_a_scheme_points_to_insecure(self, value):
        message = refused(at("loki.storage.endpoint", value), "loki.storage.endpoint")
        assert "loki.storage.insecure" in message

    @pytest.mark.parametrize("value", ["minio:9000/bucket", "minio:99999", "", f"key:{TOKEN}@minio:9000"])
    def test_an_s3_endpoint_is_host_and_port_only(self, value):
        message = refused(at("loki.storage.endpoint", value), "loki.storage.endpoint")
        assert TOKEN not in message

    @pytest.mark.parametrize("value", ["s3.eu-west-1.amazonaws.com", "minio.storage.svc:9000", "10.0.0.7:9000", "[fd00::7]:9000"])
    def test_s3_endpoints_that_pass(self, value):
        assert problems(at("loki.storage.endpoint", value)) == {}

    @pytest.mark.parametrize("value", ["localhost", "127.0.0.256", "127.1", "*", ""])
    def test_the_bind_address_is_an_ip_address(self, value):
        assert "IPv4 address" in refused(at("docker.bind_address", value), "docker.bind_address")

    @pytest.mark.parametrize("value", ["::1", "::"])
    def test_an_ipv6_bind_address_is_refused_with_the_reason(self, value):
        assert "URLs" in refused(at("docker.bind_address", value), "docker.bind_address")

    @pytest.mark.parametrize("value", ["127.0.0.1", "0.0.0.0", "192.168.1.10"])
    def test_bind_addresses_that_pass(self, value):
        assert problems(at("docker.bind_address", value)) == {}

    @pytest.mark.parametrize("value", [
        "var/run/docker.sock", "/var/run/../docker.sock", "/var/run/./docker.sock", "//var/run/docker.sock",
        "/var//run/docker.sock", "/var/run/docker.sock/", "",
    ])
    def test_the_socket_path_is_absolute_and_normalised(self, value):
        assert "absolute, normalised" in refused(at("docker.socket_path", value), "docker.socket_path")

    @pytest.mark.parametrize("value", ["/var/run/docker.sock", "/run/user/1000/docker.sock", "/Users/me/.docker/run/docker.sock"])
    def test_socket_paths_that_pass(self, value):
        assert problems(at("docker.socket_path", value)) == {}

    @pytest.mark.parametrize("value", [
        "/var/run/docker.sock", "docker.sock", "unix://var/run/docker.sock", "unix:///var/run/../docker.sock",
        "tcp://docker-host", "tcp://docker-host:99999", "http://docker-host:2375", f"ssh://deploy:{TOKEN}@docker-host",
        "ssh://@docker-host", "tcp://docker-host:2375/v1.40",
    ])
    def test_the_docker_host_is_a_docker_engine_address(self, value):
        assert TOKEN not in refused(at("docker.host", value), "docker.host")

    @pytest.mark.parametrize("value", [
        "unix:///var/run/docker.sock", "tcp://10.0.0.5:2376", "tcp://docker.example.internal:2375",
        "ssh://deploy@docker-host", "ssh://docker-host:2222", "npipe:////./pipe/docker_engine",
    ])
    def test_docker_hosts_that_pass(self, value):
        assert problems(at("docker.host", value)) == {}


# --- 4. free text that lands in another program's syntax -----------------------------------------

BAD_LABEL_NAMES = ["foo-bar", "1team", "team.name", "", "tëam", "team\n", "__team", "__name__"]
GOOD_LABEL_NAMES = ["team", "_team", "Team_2", "a"]


def _label_name_at(where: str, name: str) -> tuple[dict, str]:
    if where == "external_labels":
        return at("prometheus.external_labels", {name: "x"}), "prometheus.external_labels"
    if where == "target labels":
        return _target("labels", {name: "x"}), "prometheus.scrape_targets[0].labels"
    return at("alertmanager.group_by", ["alertname", name]), "alertmanager.group_by"


class TestPrometheusLabelNames:
    @pytest.mark.parametrize("where", ["external_labels", "target labels", "group_by"])
    @pytest.mark.parametrize("name", BAD_LABEL_NAMES)
    def test_label_names_follow_prometheus_grammar(self, where, name):
        override, key = _label_name_at(where, name)
        found = problems(override)
        assert any(k.startswith(key) for k in found), found
        message = " ".join(found.values())
        assert "label name" in message or "reserves" in message

    @pytest.mark.parametrize("where", ["external_labels", "target labels", "group_by"])
    @pytest.mark.parametrize("name", GOOD_LABEL_NAMES)
    def test_valid_label_names_pass(self, where, name):
        override, _ = _label_name_at(where, name)
        assert problems(override) == {}

    @pytest.mark.parametrize("name", BAD_LABEL_NAMES[:6] + GOOD_LABEL_NAMES)
    def test_promtool_agrees_on_every_name_outside_the_reserved_prefix(self, name, tmp_path):
        promtool = require_tool("promtool")
        config = {"global": {"external_labels": {name: "x"}},
                  "scrape_configs": [{"job_name": "api", "static_configs": [{"targets": ["api:80"], "labels": {name: "x"}}]}]}
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config, allow_unicode=True))
        result = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=tmp_path, capture_output=True, text=True)
        accepted = problems(_label_name_at("external_labels", name)[0]) == {}
        assert (result.returncode == 0) == accepted, result.stdout + result.stderr

    @pytest.mark.parametrize("group_by, ok", [
        (["..."], True), (["...", "job"], False), (["job", "job"], False), (["foo-bar"], False), ([], True),
        (["alertname", "job"], True),
    ])
    def test_group_by_as_alertmanager_reads_it(self, group_by, ok, tmp_path):
        found = problems(at("alertmanager.group_by", group_by))
        assert (found == {}) == ok, found
        amtool = require_tool("amtool")
        config = {"route": {"receiver": "n", "group_by": group_by}, "receivers": [{"name": "n"}]}
        (tmp_path / "am.yml").write_text(yaml.safe_dump(config))
        result = subprocess.run([amtool, "check-config", "am.yml"], cwd=tmp_path, capture_output=True, text=True)
        assert (result.returncode == 0) == ok, result.stdout + result.stderr

    @pytest.mark.parametrize("value", ["$HOME", "${POD_NAME}", "cost$centre", "$", ""])
    def test_external_label_values_may_not_be_expanded_or_empty(self, value):
        assert refused(at("prometheus.external_labels", {"team": value}), "prometheus.external_labels.team")

    @pytest.mark.parametrize("value", ["$$", "cost$$centre", "eu-west", "with spaces", "{{ plain text }}"])
    def test_external_label_values_stay_free_text(self, value):
        assert problems(at("prometheus.external_labels", {"team": value})) == {}

    @pytest.mark.parametrize("value", ["any text: {braces}, $dollar and {{ }}", "ünïcode"])
    def test_target_label_values_stay_free_text(self, value):
        assert problems(_target("labels", {"team": value})) == {}


TEMPLATED = [
    "alertmanager.receivers.slack.critical_channel",
    "alertmanager.receivers.slack.warning_channel",
    "alerts.runbook_url",
]


class TestGoTemplates:
    """Alertmanager expands a Slack channel, and Prometheus and Grafana an alert's runbook_url
    annotation, as Go templates: '{{' in plain text breaks the file or runs as code."""

    @pytest.mark.parametrize("key", TEMPLATED)
    @pytest.mark.parametrize("value", ["#{{ .Status }}", "x}}", "{{", "runbook{{template \"x\"}}"])
    def test_template_delimiters_are_refused_with_the_reason(self, key, value):
        assert "Go template" in refused(at(key, value), key)

    @pytest.mark.parametrize("value", ["https://hc-ping.com/{{ .Status }}", "https://hc-ping.com/x}}"])
    def test_the_watchdog_url_is_a_template_too(self, value):
        assert "Go template" in refused({}, "secrets.watchdog_url", secrets={"watchdog_url": value})

    @pytest.mark.parametrize("value", ["#alerts\n", "#al\terts", "\x00#alerts", " #alerts", "#alerts ", "", "#my alerts"])
    def test_a_slack_channel_is_one_word_without_control_characters(self, value):
        key = "alertmanager.receivers.slack.warning_channel"
        assert refused(at(key, value), key)

    def test_free_text_in_the_runbook_url_renders_a_rule_file_promtool_accepts(self, tmp_path):
        promtool = require_tool("promtool")
        url = "https://wiki.example.internal/runbook?q={a}&cost=$5"
        run = run_program("dev", merge(stack_config("dev"), at("alerts.runbook_url", url)))
        (tmp_path / "catalog.yml").write_text(container_files(run, "prometheus")["/etc/prometheus/rules/catalog.yml"])
        result = subprocess.run([promtool, "check", "rules", "catalog.yml"], cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


class TestKubernetesNames:
    @pytest.mark.parametrize("key, value", [
        ("kubernetes.namespace", "a" * 64), ("kubernetes.namespace", "Observability"),
        ("kubernetes.storage_class", "Fast_SSD"), ("exporters.gpu.runtime_class", "-nvidia"),
        ("grafana.ingress.cluster_issuer", "internal ca"), ("cluster", "prod_eu1"),
    ])
    def test_kubernetes_names_follow_its_grammar(self, key, value):
        assert refused(at(key, value), key)

    @pytest.mark.parametrize("override, key", [
        (at("exporters.gpu.node_selector", {"bad key!": "true"}), 'exporters.gpu.node_selector["bad key!"]'),
        (at("exporters.gpu.node_selector", {"gpu": "-yes"}), "exporters.gpu.node_selector.gpu"),
        (at("exporters.gpu.tolerations", [{"key": "nvidia.com/gpu", "value": "present"}]), "exporters.gpu.tolerations[0]"),
        (at("grafana.ingress.annotations", {"/timeout": "1"}), 'grafana.ingress.annotations["/timeout"]'),
    ])
    def test_label_keys_values_and_tolerations_follow_kubernetes(self, override, key):
        assert refused(override, key)

    def test_names_of_63_characters_and_kubernetes_keys_pass(self):
        assert problems({
            "kubernetes": {"namespace": "a" * 63, "storage_class": "fast-ssd.example"},
            "exporters": {"gpu": {"node_selector": {"nvidia.com/gpu.present": "true", "gpu": ""},
                                  "tolerations": [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "present"}]}},
        }) == {}


# --- 5. strings composed into other strings ------------------------------------------------------

POSTGRES = {"enabled": True, "host": "postgres.databases.svc", "user": "postgres_exporter", "database": "app"}
PG_SECRET = {"postgres_password": SECRETS["postgres_password"]}


def _postgres(**changes) -> dict:
    return at("exporters.postgres", {**POSTGRES, **changes})


class TestComposedStrings:
    @pytest.mark.parametrize("host", [
        "db/app?sslmode=disable", "db?sslmode=disable", "db:5432", f"user:{TOKEN}@db", "db#x", "::1", "[::1]",
        "db server", "db\n", "999.1.1.1", "", "   ",
    ])
    def test_the_postgres_host_is_a_host_name_or_address_only(self, host):
        message = refused(_postgres(host=host), "exporters.postgres.host", secrets=PG_SECRET)
        assert TOKEN not in message

    @pytest.mark.parametrize("database", ["app?sslmode=disable", "app/other", "app#x", "app%20x", "", " app"])
    def test_the_postgres_database_cannot_reach_past_the_path(self, database):
        assert refused(_postgres(database=database), "exporters.postgres.database", secrets=PG_SECRET)

    @pytest.mark.parametrize("user", ["", "   ", "exporter\n", " exporter"])
    def test_the_postgres_user_is_one_line_of_text(self, user):
        assert refused(_postgres(user=user), "exporters.postgres.user", secrets=PG_SECRET)

    @pytest.mark.parametrize("host, database, sslmode", [
        ("db", "app", "verify-full"),
        ("postgres.databases.svc", "my-db", "require"),
        ("10.0.0.5", "App_1", "disable"),
        ("pg_primary", "postgres", "verify-ca"),
        ("db", "reports 2024 & co", "require"),
    ])
    def test_accepted_values_compose_a_uri_with_exactly_the_configured_parts(self, host, database, sslmode):
        settings = parse("dev", {"platform": "docker", **_postgres(host=host, database=database, sslmode=sslmode),
                                 "secrets": PG_SECRET}, {"secrets"})
        uri = planned_workload(settings, "postgres-exporter").env["DATA_SOURCE_URI"]
        # As lib/pq reads it: postgresql://<user>@ + the URI.
        parts = urlsplit(f"postgresql://u@{uri}")
        assert (parts.hostname, parts.port, unquote(parts.path)) == (host.lower(), 5432, f"/{database}")
        assert parse_qs(parts.query) == {"sslmode": [sslmode]} and parts.fragment == ""

    @pytest.mark.parametrize("address", [
        f"redis://user:{TOKEN}@redis:6379", f"redis://:{TOKEN}@redis:6379", f"rediss://{TOKEN}@redis:6380",
    ])
    def test_a_redis_address_with_credentials_names_the_secret_and_hides_them(self, address):
        message = refused(at("exporters.redis.address", address), "exporters.redis.address")
        assert "secrets.redis_password" in message
        assert TOKEN not in message

    @pytest.mark.parametrize("address", ["redis://redis:99999", "redis://redis:6379/0", "redis://redis", "redis://:6379"])
    def test_a_redis_address_is_scheme_host_and_port(self, address):
        assert refused(at("exporters.redis.address", address), "exporters.redis.address")

    @pytest.mark.parametrize("address", ["redis://redis:6379", "rediss://10.0.0.1:6380", "redis://[::1]:6379"])
    def test_accepted_redis_addresses_key_the_password_file_as_the_exporter_looks_it_up(self, address):
        settings = parse("dev", {"platform": "docker", "exporters": {"redis": {"enabled": True, "address": address}}})
        workload = planned_workload(settings, "redis-exporter")
        # redis_exporter looks the password up by the address as Go's url.Parse writes it back.
        parts = urlsplit(address)
        assert workload.env["REDIS_ADDR"] == f"{parts.scheme}://{parts.netloc}" == address

    @pytest.mark.parametrize("key", ["grafana.admin_user", "prometheus.remote_write.username"])
    def test_basic_auth_user_names_have_no_colon(self, key):
        override = merge(at(key, "ops:team"), at("prometheus.remote_write.url", "https://mimir.example/push"))
        assert "':'" in refused(override, key)


# --- 6. required values that may be empty --------------------------------------------------------

class TestNothingRequiredIsEmpty:
    @pytest.mark.parametrize("key", [
        "loki.storage.bucket", "loki.storage.region", "exporters.postgres.host", "exporters.postgres.user",
        "kubernetes.context", "grafana.admin_user", "alerts.runbook_url", "cluster", "docker.network",
    ])
    @pytest.mark.parametrize("value", ["", "  ", "\t"])
    def test_empty_or_blank_strings_are_refused(self, key, value):
        assert refused(at(key, value), key)

    def test_an_empty_folder_title_is_refused(self):
        assert refused(at("grafana.folders", ["Platform", " "]), "grafana.folders[1]")

    @pytest.mark.parametrize("name", ["postgres_password", "pagerduty_routing_key", "grafana_api_token"])
    def test_a_blank_secret_is_refused_and_not_echoed(self, name):
        message = refused({}, f"secrets.{name}", secrets={name: "   "})
        assert "empty" in message


# --- 7. the experience of a mistake --------------------------------------------------------------

class TestMessages:
    @pytest.mark.parametrize("stack", STACKS)
    def test_the_message_names_the_stack_and_its_file(self, stack):
        with pytest.raises(ConfigError) as error:
            parse(stack, merge(stack_config(stack), at("prometheus.port", 0)))
        first = str(error.value).splitlines()[0]
        assert first == f"stack '{stack}': invalid configuration: 1 problem in stacks/Pulumi.{stack}.yaml"

    def test_several_problems_are_counted_in_one_message(self):
        with pytest.raises(ConfigError) as error:
            parse("dev", merge(stack_config("dev"), {"cluster": "", "prometheus": {"port": 0}}))
        assert str(error.value).splitlines()[0].endswith(": 2 problems in stacks/Pulumi.dev.yaml")

    @pytest.mark.parametrize("override", [
        at("prometheus.port", True), at("prometheus.scrape_interval", "15x"), at("cluster", "Laptop"),
        at("exporters.postgres", {"enabled": True}), at("loki.retention", "1h"), at("jaeger.max_traces", 0),
        at("alertmanager.group_by", ["a-b"]), at("grafana.url", "ftp://x"), at("alertmanager.port", 9090),
        at("prometheus.scrape_targets", [{"job": "api"}]), at("exporters.gpu.exporter", "rocm"),
        at("loki.storage.type", "s3"), at("grafana.folders", ["A", "a"]), at("prometheus.scrape_timeout", "1m"),
        at("alerts.overrides", {"HostHighCpu": {"for": "0s"}}),
    ])
    def test_every_problem_carries_a_good_value(self, override):
        found = problems(override)
        assert found
        hints = ("for example", "did you mean", "the keys here are", "pulumi config set", "Input should be '")
        for key, message in found.items():
            assert any(hint in message for hint in hints), f"{key}: {message}"

    @pytest.mark.parametrize("override, key, suggestion", [
        (at("prometheus.scrape_intervall", "15s"), "prometheus.scrape_intervall", "'scrape_interval'"),
        ({"grafanna": {}}, "grafanna", "'grafana'"),
        (at("alerts.overrides", {"HostHighCpu": {"fro": "5m"}}), "alerts.overrides.HostHighCpu.fro", "'for'"),
    ])
    def test_an_unknown_key_suggests_the_key_it_resembles(self, override, key, suggestion):
        message = refused(override, key)
        assert message.startswith("unknown key") and suggestion in message


class TestMisplacedNamespace:
    @pytest.mark.parametrize("key, meant", [
        ("observabilty:loki", "observability:loki"),
        ("Observability:loki", "observability:loki"),
        ("OBSERVABILITY:prometheus", "observability:prometheus"),
        ("observablity:grafana", "observability:grafana"),
        ("observability_:cluster", "observability:cluster"),
    ])
    def test_a_look_alike_namespace_is_reported_with_the_key_meant(self, key, meant):
        [(found, message)] = misplaced_keys("dev", [key])
        assert found == key and meant in message and "stacks/Pulumi.dev.yaml" in message

    @pytest.mark.parametrize("key", [
        "aws:region", "kubernetes:context", "docker:host", "pulumi:tags", "gcp:project", "observability:loki", "obs:x",
    ])
    def test_the_projects_and_other_real_namespaces_are_not_problems(self, key):
        assert misplaced_keys("dev", [key]) == []

    def test_load_reports_a_misspelled_namespace(self, monkeypatch):
        import pulumi

        from components import settings as settings_module

        pulumi.runtime.set_all_config({}, [])
        monkeypatch.setattr(pulumi, "get_stack", lambda: "qa")
        monkeypatch.setenv("PULUMI_CONFIG", json.dumps({
            "observability:platform": "docker",
            "observabilty:loki": json.dumps({"retention": "30d"}),
            "aws:region": "eu-west-1",
        }))
        monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", "[]")
        with pytest.raises(ConfigError) as error:
            settings_module.load()
        message = str(error.value)
        assert "key 'observabilty:loki':" in message and "did you mean 'observability:loki'" in message
        assert "aws:region" not in message


# --- 8. good values of every class, together ----------------------------------------------------

GOOD = {
    "cluster": "eu-1",
    "docker": {"host": "tcp://10.0.0.5:2376", "bind_address": "0.0.0.0", "socket_path": "/run/docker.sock"},
    "prometheus": {
        "retention": {"time": "292y", "size": "7EB"},
        "external_labels": {"region": "eu west", "_cost": "cost$$centre"},
        "scrape_targets": [
            {"job": "api", "targets": ["api.internal:8000", "10.0.0.8:65535", "[fd00::8]:9100"],
             "labels": {"team": "payments {core}"}, "metrics_path": "/api/v1/metrics"},
        ],
        "remote_write": {"url": "https://mimir.example.internal:8443/api/v1/push", "username": "prom@eu-1"},
    },
    "alertmanager": {"group_by": ["..."], "receivers": {"slack": {"enabled": True, "critical_channel": "C0123ABC"}}},
    "exporters": {
        "postgres": {"enabled": True, "host": "10.0.0.9", "user": "svc@corp", "database": "App_1", "sslmode": "verify-full"},
        "redis": {"enabled": True, "address": "rediss://[fd00::9]:6380"},
    },
    "loki": {"storage": {"type": "s3", "bucket": "acme.logs-eu", "endpoint": "minio.storage.svc:9000", "insecure": True}},
    "grafana": {"url": "http://[::1]:3000", "admin_user": "ops-admin", "folders": [
        "Platform", "Applications", "Databases", "GPU & ML", "LLM & RAG", "Équipe & co"]},
    "alerts": {"runbook_url": "https://wiki.example.internal/runbook?q={a}"},
}
GOOD_SECRETS = {
    "slack_webhook_url": SECRETS["slack_webhook_url"],
    "postgres_password": SECRETS["postgres_password"],
    "remote_write_password": SECRETS["remote_write_password"],
    "redis_password": SECRETS["redis_password"],
}


def test_good_values_of_every_class_parse_and_render():
    assert problems(GOOD, secrets=GOOD_SECRETS) == {}
    run = run_program("dev", merge(stack_config("dev"), GOOD), GOOD_SECRETS)
    assert run.resources


@pytest.mark.parametrize("stack", STACKS)
def test_the_shipped_stacks_have_no_problems(stack):
    secrets = {name: SECRETS[name] for name in SECRETS}
    assert problems({}, stack=stack, secrets=secrets) == {}
