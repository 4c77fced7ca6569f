"""Exact oracles for the values users depend on in the rendered configs (issue 15): scrape timing,
Loki's S3 transport, where alerts are sent, the collector's memory limiter, Slack notifications and
the Grafana-managed rules.

Expected values come from the stack files' settings, the documented defaults and promises (docs/),
and the upstream programs' rules; never from the code under test.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import (
    container_files,
    merge,
    prometheus_config,
    run_program,
    scrape_jobs,
    stack_config,
    stack_secrets,
)
from components.tools.render import unwrap

STACKS = ("dev", "staging", "prod")
# docs/configuration.md "Configuration reference": prometheus.scrape_interval and scrape_timeout defaults.
DEFAULT_INTERVAL, DEFAULT_TIMEOUT = "15s", "10s"
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> float:
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * UNITS[u] for n, u in parts)


def render(stack: str, override: dict):
    return run_program(stack, merge(stack_config(stack), override), stack_secrets(stack))


def expected_timing(config: dict) -> tuple[str, str, dict[str, str]]:
    """From the stack's settings: global interval and timeout, and each own target's interval."""
    prom = config.get("prometheus", {})
    targets = {t["job"]: t.get("interval") for t in prom.get("scrape_targets", [])}
    return prom.get("scrape_interval", DEFAULT_INTERVAL), prom.get("scrape_timeout", DEFAULT_TIMEOUT), targets


def check_timing(run, config: dict) -> None:
    interval, timeout, targets = expected_timing(config)
    rendered = prometheus_config(run)["global"]
    # Requirement: the global interval and timeout are the stack's settings, exactly.
    assert seconds(rendered["scrape_interval"]) == seconds(interval)
    assert seconds(rendered["scrape_timeout"]) == seconds(timeout)
    for name, job in scrape_jobs(run).items():
        want_interval = targets.get(name) or interval
        # Prometheus (config.go, v3.14.0): a job without its own timeout gets
        # min(global timeout, job interval).
        want_timeout = min(seconds(timeout), seconds(want_interval))
        got_interval = seconds(job.get("scrape_interval", rendered["scrape_interval"]))
        got_timeout = job.get("scrape_timeout")
        got_timeout = seconds(got_timeout) if got_timeout else min(seconds(rendered["scrape_timeout"]), got_interval)
        assert (got_interval, got_timeout) == (seconds(want_interval), want_timeout), name


class TestScrapeTiming:
    # Requirement: every job scrapes at its configured interval (a target's own or the default)
    # and times out after scrape_timeout (never later than its interval), as each stack file says.
    @pytest.mark.parametrize("stack", STACKS)
    def test_shipped_stacks(self, stack_runs, stack):
        check_timing(stack_runs[stack], stack_config(stack))

    @pytest.mark.parametrize(
        "interval, timeout, target_interval",
        [("30s", "20s", "1m"), ("1m", "45s", None), ("15s", "10s", "5s"), ("20s", "20s", "10s"), ("2m", "1m30s", "30s")],
    )
    def test_chosen_settings(self, interval, timeout, target_interval):
        target = {"job": "app", "targets": ["app.example:8000"]}
        if target_interval:
            target["interval"] = target_interval
        override = {"prometheus": {"scrape_interval": interval, "scrape_timeout": timeout, "scrape_targets": [target]}}
        config = merge(stack_config("staging"), override)
        # Without staging's objectives: their 5m windows need scrapes every 75s or faster.
        del config["slos"]
        check_timing(run_program("staging", config, stack_secrets("staging")), config)


def loki_s3(run) -> dict:
    # prod runs Loki's roles apart; its ingesters write the bucket.
    pod = "loki-ingester" if "loki-ingester" in run.outputs["services"] else "loki"
    return yaml.safe_load(container_files(run, pod)["/etc/loki/loki.yml"])["common"]["storage"]["s3"]


class TestLokiS3:
    # Requirement: prod's Loki talks HTTPS (insecure: false, docs/configuration.md default) to exactly the
    # endpoint, bucket and region prod's stack file names.
    def test_prod_uses_https_to_its_endpoint(self, stack_runs):
        s3 = loki_s3(stack_runs["prod"])
        assert s3["insecure"] is False
        assert s3["endpoint"] == "s3.eu-west-1.amazonaws.com"
        assert s3["bucketnames"] == "acme-prod-loki"
        assert s3["region"] == "eu-west-1"

    # Requirement: `insecure` follows loki.storage.insecure exactly, and the endpoint is passed as
    # given (no scheme: Loki chooses https unless insecure).
    @pytest.mark.parametrize("insecure", [True, False])
    @pytest.mark.parametrize("endpoint", ["minio.storage.svc:9000", "s3.us-east-2.amazonaws.com", "ceph.internal"])
    def test_insecure_and_endpoint_follow_the_settings(self, insecure, endpoint):
        storage = {"type": "s3", "bucket": "b-logs", "region": "us-east-2", "endpoint": endpoint, "insecure": insecure}
        s3 = loki_s3(render("prod", {"loki": {"storage": storage}}))
        assert (s3["insecure"], s3["endpoint"], s3["bucketnames"]) == (insecure, endpoint, "b-logs")


def alertmanager_targets(run) -> list[str]:
    return [t for am in prometheus_config(run)["alerting"]["alertmanagers"]
            for sc in am["static_configs"] for t in sc["targets"]]


class TestAlertmanagerTargets:
    # Requirement (docs/architecture.md): Prometheus sends each alert once to each Alertmanager replica, by the
    # replica's own DNS name (not N times to the Service); docker has one container, `alertmanager`.
    @pytest.mark.parametrize(
        "stack, targets",
        [("dev", ["alertmanager:9093"]),
         ("staging", ["alertmanager-0.alertmanager:9093"]),
         ("prod", [f"alertmanager-{i}.alertmanager:9093" for i in range(3)])],
    )
    def test_shipped_stacks(self, stack_runs, stack, targets):
        assert sorted(alertmanager_targets(stack_runs[stack])) == targets

    @pytest.mark.parametrize("replicas", [1, 2, 3, 5])
    def test_one_target_per_replica(self, replicas):
        run = render("staging", {"alertmanager": {"replicas": replicas}})
        assert sorted(alertmanager_targets(run)) == [f"alertmanager-{i}.alertmanager:9093" for i in range(replicas)]
        # Requirement (docs/alerting.md, Grafana-managed rules): the contact point lists every replica's URL.
        point = next(r for r in run.resources if r.type == "grafana:alerting/contactPoint:ContactPoint")
        urls = unwrap(point.inputs)["alertmanagers"][0]["url"].split(",")
        assert sorted(urls) == [f"http://alertmanager-{i}.alertmanager:9093" for i in range(replicas)]


# Requirement (docs/traces.md): each pipeline starts with a memory limiter at 80% of the container's
# limit with 25% for spikes, checked every second, and ends with a batch of 8192 items or 5s.
@pytest.mark.parametrize("stack", STACKS)
def test_collector_memory_limiter_is_exact(stack_runs, stack):
    config = yaml.safe_load(container_files(stack_runs[stack], "otel-collector")["/etc/otelcol-contrib/config.yaml"])
    assert config["processors"]["memory_limiter"] == {
        "check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 25,
    }
    assert config["processors"]["batch"] == {"send_batch_size": 8192, "timeout": "5s"}
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    for name, pipeline in pipelines.items():
        assert pipeline["processors"][0] == "memory_limiter", name
        assert pipeline["processors"][-1] == "batch", name


def alertmanager_config(run) -> dict:
    return yaml.safe_load(container_files(run, "alertmanager")["/etc/alertmanager/alertmanager.yml"])


SLACK_CHANNELS = {"staging": ("#staging-alerts", "#staging-alerts"), "prod": ("#prod-alerts-critical", "#prod-alerts")}


@pytest.mark.parametrize("stack", ("staging", "prod"))
class TestNotifications:
    # Requirement: Slack says when an alert resolves; the title and text come from the shared
    # templates (docs/alerting.md "Routing"); each receiver posts to its stack's channel via the secret file.
    def test_slack_receivers_are_exact(self, stack_runs, stack):
        receivers = {r["name"]: r for r in alertmanager_config(stack_runs[stack])["receivers"]}
        critical, warning = SLACK_CHANNELS[stack]
        for name, channel in (("slack-critical", critical), ("slack-warning", warning)):
            assert receivers[name]["slack_configs"] == [{
                "api_url_file": "/run/secrets/slack_webhook_url",
                "channel": channel,
                "send_resolved": True,
                "title": '{{ template "obs.title" . }}',
                "text": '{{ template "obs.text" . }}',
            }], name

    # Requirement (docs/alerting.md, Routing): the text carries each alert's summary, description and runbook link,
    # and the title its status, name and environment; the template file is loaded.
    def test_templates_carry_summary_description_and_runbook(self, stack_runs, stack):
        files = container_files(stack_runs[stack], "alertmanager")
        assert alertmanager_config(stack_runs[stack])["templates"] == ["/etc/alertmanager/*.tmpl"]
        template = files["/etc/alertmanager/notifications.tmpl"]
        text = template.split('define "obs.text"', 1)[1].split("{{- end }}", 1)[0]
        for field in (".Annotations.summary", ".Annotations.description", ".Annotations.runbook_url"):
            assert field in text, field
        title = template.split('define "obs.title"', 1)[1].split("{{- end }}", 1)[0]
        for field in (".Status", ".CommonLabels.alertname", ".CommonLabels.environment"):
            assert field in title, field


# Requirement: PagerDuty, when on, also resolves its incidents.
def test_pagerduty_sends_resolved(stack_runs):
    receivers = {r["name"]: r for r in alertmanager_config(stack_runs["prod"])["receivers"]}
    assert [c["send_resolved"] for c in receivers["pagerduty"]["pagerduty_configs"]] == [True]


# docs/alerting.md "Grafana-managed rules": the queries, word for word (whitespace aside).
ERROR_LOG_BURST = 'sum by (service_name) (count_over_time({service_name=~".+"} | detected_level="error"[5m]))'
LOG_VOLUME_SPIKE = """(sum by (service_name) (count_over_time({service_name=~".+"}[10m]))
  / (sum by (service_name) (count_over_time({service_name=~".+"}[1d])) / 144))
and on (service_name)
  (sum by (service_name) (count_over_time({service_name=~".+"}[10m] offset 1d)) > 0)"""


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("( ", "(").replace(" )", ")").strip()


def grafana_rules(run) -> tuple[dict, dict[str, dict]]:
    group = next(unwrap(r.inputs) for r in run.resources if r.type == "grafana:alerting/ruleGroup:RuleGroup")
    return group, {rule["name"]: rule for rule in group["rules"]}


class TestGrafanaRules:
    # Requirement (docs/alerting.md, Grafana-managed rules): group `logs`, evaluated every 60s; ErrorLogBurst counts 5 minutes of
    # error lines and must hold 5m, LogVolumeSpike compares 10 minutes with the day and holds 10m;
    # no data counts as normal (OK); a failing query is Error; thresholds from grafana.alerts
    # (defaults 10 and 3); severity warning; sent through the contact point `alertmanager`.
    @pytest.mark.parametrize("stack, burst, factor", [("dev", 10, 3), ("staging", 10, 3), ("prod", 20, 3)])
    def test_shipped_stacks(self, stack_runs, stack, burst, factor):
        self.check(stack_runs[stack], burst, factor)

    @pytest.mark.parametrize("burst, factor", [(1, 1.5), (50, 10), (500, 2.25)])
    def test_chosen_thresholds(self, burst, factor):
        run = render("dev", {"grafana": {"alerts": {"error_log_burst": burst, "log_volume_factor": factor}}})
        self.check(run, burst, factor)

    @staticmethod
    def check(run, burst: float, factor: float) -> None:
        group, rules = grafana_rules(run)
        assert (group["name"], group["intervalSeconds"]) == ("logs", 60)
        assert set(rules) == {"ErrorLogBurst", "LogVolumeSpike"}
        expected = {"ErrorLogBurst": (ERROR_LOG_BURST, "5m", burst), "LogVolumeSpike": (LOG_VOLUME_SPIKE, "10m", factor)}
        for name, (query, hold, threshold) in expected.items():
            rule = rules[name]
            assert (rule["for"], rule["noDataState"], rule["execErrState"]) == (hold, "OK", "Error"), name
            assert rule["labels"] == {"severity": "warning"}, name
            assert rule["notificationSettings"]["contactPoint"] == "alertmanager", name
            data = {d["refId"]: d for d in rule["datas"]}
            model = json.loads(data["A"]["model"])
            assert (data["A"]["datasourceUid"], model["queryType"]) == ("loki", "instant"), name
            assert squash(model["expr"]) == squash(query), name
            condition = json.loads(data[rule["condition"]]["model"])
            assert condition["expression"] == "A", name
            assert condition["conditions"][0]["evaluator"] == {"type": "gt", "params": [threshold]}, name
