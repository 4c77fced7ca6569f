"""The user's own rule files (configs/prometheus/rules/*.yml), and what the stack produces.

Prometheus v3.14.0 loads every rule file with model/rulefmt and refuses to start or to reload when
one does not load: all alerting stops. Each file is read here as that loader reads it
(components/settings/grammar.py), so a file that passes is one Prometheus takes; one that fails stops the
program before anything is deployed, naming the file, the line, the group and the rule.

What the stack produces (configs/metrics/catalog.yml, the deployed producers and the series the
user's recording rules write) is worked out here too: a rule on a metric nothing produces never
fires, and a dashboard panel on one stays empty (components/grafana/dashboards.py), so both warn.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import pulumi

from components import CONFIGS, yaml_text
from components.alerting import alert_rules
from components.settings import grammar
from components.settings import Settings, cluster_targets

SOURCE = CONFIGS / "prometheus" / "rules"
# The rendered alert catalog's file name in the same folder.
CATALOG_RULES = "catalog.yml"
# The rendered rules of the stack's service level objectives (components/alerting/slos.py).
SLO_RULES = "slos.yml"
# The rendered recording rules the dashboards read (components/alerting/recording_rules.py).
RECORDS = "records.yml"
METRICS = CONFIGS / "metrics" / "catalog.yml"
# Series Prometheus writes for every alerting rule (rules/alerting.go): queries may name them.
ALERT_SERIES = ("ALERTS", "ALERTS_FOR_STATE")


def problem_list(title: str, problems: list[str]) -> str:
    """One problem as it is; several as one message that lists every one."""
    return problems[0] if len(problems) == 1 else "\n  - ".join([f"{title} ({len(problems)} problems):", *problems])


@dataclass(frozen=True)
class UserRuleFile:
    name: str  # the file's name in configs/prometheus/rules/
    text: str
    read: grammar.RuleFile

    @property
    def where(self) -> str:
        """The path as the user knows it."""
        return f"configs/prometheus/rules/{self.name}"

    def problems(self) -> list[str]:
        found = []
        for problem in self.read.problems:
            line = f":{problem.line}" if problem.line else ""
            context = f"{problem.context}: " if problem.context else ""
            found.append(f"{self.where}{line}: {context}{problem.message}")
        return found

    def warnings(self) -> list[str]:
        return [f"{self.where}: {warning}" for warning in self.read.warnings]

    def rules(self) -> list[grammar.Rule]:
        """The rules Prometheus will evaluate: named, with an expression that parses."""
        return [rule for rule in self.read.rules if rule.name and rule.expr_ok]


def load() -> tuple[list[UserRuleFile], list[str]]:
    """Every user rule file, read as the stack's Prometheus reads it (UTF-8 names, no experimental
    functions); and the problems that stop the program."""
    problems = []
    for taken, by in ((CATALOG_RULES, "the alert catalog"), (RECORDS, "the recording rules of configs/prometheus/records.yml"),
                      (SLO_RULES, "the rules of the stack's slos")):
        if (SOURCE / taken).exists():
            problems.append(f"configs/prometheus/rules/{taken}: the name is taken by {by}; "
                            "rename the file (for example team-rules.yml)")
    for path in sorted(SOURCE.glob("*.yaml")):
        # prometheus.yml loads rules/*.yml: this file would be shipped nowhere and never evaluated.
        problems.append(f"configs/prometheus/rules/{path.name}: Prometheus loads only *.yml rule files; "
                        f"rename it to {path.stem}.yml")
    files = []
    for path in sorted(SOURCE.glob("*.yml")):
        if path.name not in (CATALOG_RULES, RECORDS, SLO_RULES):
            text = path.read_text()
            files.append(UserRuleFile(path.name, text, grammar.read_rule_file(text)))
    return files, problems + [p for f in files for p in f.problems()]


def checked(settings: Optional[Settings] = None) -> list[tuple[str, str]]:
    """(name, text) of every user rule file, once each is one Prometheus loads; raises ValueError
    listing every problem otherwise. With the stack's settings, a rule on a metric nothing in the
    stack produces is a warning: such an alert never fires."""
    files, problems = load()
    if problems:
        raise ValueError(problem_list("rule files under configs/prometheus/rules/ that Prometheus would refuse", problems))
    warnings = [w for f in files for w in f.warnings()]
    if settings is not None:
        produced = produced_metrics(settings)
        for f in files:
            for rule in f.rules():
                unknown = [why for metric in sorted(grammar.metric_names(rule.expr)) if (why := produced.missing(metric))]
                if unknown:
                    effect = "records nothing" if rule.record else "never fires"
                    warnings.append(f"{f.where}: group {rule.group!r}, rule {rule.name!r}: nothing this stack "
                                    f"deploys produces {', '.join(unknown)}, by configs/metrics/catalog.yml; "
                                    f"unless something else does, the rule {effect}")
    for warning in warnings:
        pulumi.log.warn(warning)
    return [(f.name, f.text) for f in files]


# --- what the stack produces ----------------------------------------------------------------------


def recorded_metrics() -> set[str]:
    """The series the user's recording rules write: a dashboard or another rule may read them."""
    return {r.record for f in load()[0] for r in f.rules() if r.record}


def deployed_producers(settings: Settings) -> set[str]:
    """What the stack deploys and scrapes, as configs/metrics/catalog.yml names producers.
    Prometheus, Alertmanager, Loki, the collector and Jaeger run in every stack; exporters where
    enabled; on kubernetes also the cluster's own jobs, as Prometheus renders them (the kubelets
    and their cAdvisor, the API server, CoreDNS where enabled)."""
    # Here, not at the top: the Prometheus module reads this one's rule files.
    from components.services.prometheus import cluster_job_names

    exporters = settings.exporters
    services = {"prometheus", "alertmanager", "loki", "otel-collector", "jaeger"}
    services |= {name for name, enabled in (
        ("node-exporter", exporters.node.enabled), ("cadvisor", exporters.cadvisor.enabled),
        ("postgres-exporter", exporters.postgres.enabled), ("redis-exporter", exporters.redis.enabled),
        ("gpu-exporter", exporters.gpu.enabled),
        ("kube-state-metrics", settings.platform == "kubernetes" and exporters.kube_state_metrics.enabled),
    ) if enabled}
    services |= set(cluster_job_names(cluster_targets(settings)))
    return alert_rules.producers(settings, sorted(services))


def namespace(metric: str) -> str:
    """A metric's first word: node for node_cpu_seconds_total, DCGM for DCGM_FI_DEV_GPU_UTIL."""
    return metric.split("_", 1)[0]


@dataclass(frozen=True)
class Produced:
    """What the stack produces, by configs/metrics/catalog.yml: each listed metric of a deployed
    producer, and every metric in the namespace of one (an exporter names all its metrics with its
    own first word; the catalog lists only those the project's dashboards and alerts use)."""

    metrics: frozenset
    namespaces: frozenset
    elsewhere: dict  # namespace -> the producers, none deployed here, whose metrics it names

    def missing(self, metric: str) -> Optional[str]:
        """Why nothing in the stack produces `metric`, or None when something may."""
        if metric in self.metrics or namespace(metric) in self.namespaces:
            return None
        owners = self.elsewhere.get(namespace(metric))
        if owners:
            return f"{metric} (from {' or '.join(owners)}, which this stack does not deploy)"
        return f"{metric} (in no namespace of anything this stack deploys)"


def produced_metrics(settings: Settings) -> Produced:
    # The series the stack's recording rules and its objectives' rules record
    # (components/alerting/recording_rules.py, slos.py; imported here, since they read this module).
    from components.alerting import recording_rules, slos

    producers = deployed_producers(settings)
    produced = produced_by(producers)
    recorded = recording_rules.recorded(settings, producers) | (slos.RECORDED if settings.slos else frozenset())
    return dataclasses.replace(produced, metrics=produced.metrics | recorded)


def produced_by(producers: set[str]) -> Produced:
    """The producers' metrics and namespaces, with the application contract's, Prometheus's alert
    series and the series the user's recording rules write."""
    catalog = yaml_text.load(METRICS.read_text()) or {}
    deployed = set(producers) | {"application"}
    metrics = {m for producer in deployed for m in catalog.get(producer) or []}
    namespaces = {namespace(m) for m in metrics}
    elsewhere: dict = {}
    for producer in sorted(set(catalog) - deployed):
        for ns in sorted({namespace(m) for m in catalog[producer] or []} - namespaces):
            elsewhere.setdefault(ns, []).append(producer)
    return Produced(frozenset(metrics | set(ALERT_SERIES) | recorded_metrics()), frozenset(namespaces), elsewhere)
