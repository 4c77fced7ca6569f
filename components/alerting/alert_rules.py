"""The alert catalog (configs/alerts/catalog.yml) rendered as a Prometheus rule file per stack.

Thresholds, `for` durations and severities live in the catalog with their defaults; a stack
changes or disables an alert by name under `alerts.overrides`. An alert whose metrics come from an
exporter is rendered only where that exporter is deployed (`requires`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from components import CONFIGS, yaml_text
from components.settings import Settings, milliseconds

CATALOG = CONFIGS / "alerts" / "catalog.yml"
METRICS = CONFIGS / "metrics" / "catalog.yml"
SEVERITIES = ("critical", "warning", "info")
# Beside the producers of configs/metrics/catalog.yml, `requires` may name the platform: an alert
# whose metric means something else, or nothing, on the other one.
PLATFORMS = ("platform/docker", "platform/kubernetes")
# Rate windows span at least four scrapes, and never less than five minutes.
MIN_WINDOW_MS = 5 * 60_000
THRESHOLD, WINDOW = "${threshold}", "${window}"


@dataclass(frozen=True)
class Alert:
    name: str  # unique in the catalog; what overrides name
    alert: str  # the alertname (a critical level shares it with its warning)
    group: str
    expr: str
    severity: str
    summary: str
    description: str
    threshold: Optional[float] = None
    for_: Optional[str] = None
    requires: tuple[str, ...] = ()
    every: Optional[int] = None  # its group's `every`, where the group sets one


# A group's own interval spans at most a fifth of each of its alerts' `for`.
EVALUATIONS_PER_FOR = 5


def catalog() -> list[Alert]:
    """The catalog, checked: a mistake in it is reported, never silently dropped."""
    document = yaml_text.load(CATALOG.read_text())
    alerts = [
        Alert(
            name=entry["name"],
            alert=entry.get("alert", entry["name"]),
            group=group["name"],
            expr=entry["expr"],
            severity=entry["severity"],
            summary=entry["summary"],
            description=entry["description"],
            threshold=entry.get("threshold"),
            for_=entry.get("for"),
            requires=tuple(entry.get("requires", ())),
            every=group.get("every"),
        )
        for group in document["groups"]
        for entry in group["alerts"]
    ]
    known = known_producers()
    names = [a.name for a in alerts]
    for a in alerts:
        where = f"configs/alerts/catalog.yml: {a.name}"
        if names.count(a.name) > 1:
            raise ValueError(f"{where}: the name is used twice")
        if a.severity not in SEVERITIES:
            raise ValueError(f"{where}: severity {a.severity!r} is not one of {', '.join(SEVERITIES)}")
        for requirement in a.requires:
            if requirement not in known:
                raise ValueError(f"{where}: requires {requirement!r}, which configs/metrics/catalog.yml does not name")
        if (THRESHOLD in a.expr) != (a.threshold is not None):
            raise ValueError(f"{where}: a threshold and {THRESHOLD} in the expression go together")
        if a.every is not None and (type(a.every) is not int or a.every < 2):
            raise ValueError(f"{where}: its group's `every` is {a.every!r}, not a whole number of evaluation intervals above 1")
    return alerts


def known_producers() -> set[str]:
    """What `requires` may name: the producers of configs/metrics/catalog.yml, and the platforms."""
    return (set(yaml_text.load(METRICS.read_text())) - {"application"}) | set(PLATFORMS)


def producers(settings: Settings, services: list[str]) -> set[str]:
    """What the stack deploys, in the terms of `requires` and configs/metrics/catalog.yml, and the
    platform it runs on."""
    found = set(services) | {f"platform/{settings.platform}"}
    if "gpu-exporter" in found:
        found.add(f"gpu-exporter/{settings.exporters.gpu.exporter}")
    return found


def window(settings: Settings) -> str:
    """Four scrapes of the slowest job (a rule sees every job's series), five minutes at least."""
    intervals = [settings.prometheus.scrape_interval]
    intervals += [t.interval for t in settings.prometheus.scrape_targets if t.interval is not None]
    return duration_text(max(MIN_WINDOW_MS, 4 * max(milliseconds(i) for i in intervals)))


def duration_text(ms: int) -> str:
    """Whole seconds as Prometheus writes a duration: 60000 is 1m, 24000 is 24s."""
    seconds = ms // 1000
    return f"{seconds}s" if seconds % 60 else f"{seconds // 60}m"


def group_interval(settings: Settings, every: Optional[int], fors: list[str]) -> Optional[str]:
    """A group's own interval: `every` times the stack's evaluation interval, but no more than a
    fifth of its alerts' shortest `for`, so each still spans five evaluations; None where that
    comes to the global interval (or less), which the group then keeps."""
    if every is None:
        return None
    base = milliseconds(settings.prometheus.evaluation_interval)
    ms = min([every * base, *(milliseconds(f) // EVALUATIONS_PER_FOR for f in fors)])
    return duration_text(ms) if ms // 1000 * 1000 > base else None


def number_text(value: float) -> str:
    """Exactly as given: 1234567 stays 1234567, 0.95 stays 0.95."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(settings: Settings, services: list[str]) -> str:
    """The catalog as one rule file for this stack."""
    alerts = catalog()
    known = {a.name for a in alerts}
    for name in sorted(set(settings.alerts.overrides) - known):
        raise ValueError(f"key 'alerts.overrides.{name}': no alert named {name!r} in configs/alerts/catalog.yml")
    for a in alerts:
        override = settings.alerts.overrides.get(a.name)
        if override is not None and override.threshold is not None and a.threshold is None:
            raise ValueError(f"key 'alerts.overrides.{a.name}.threshold': {a.name} compares against no threshold")
        if override is not None and override.for_ is not None and a.for_ is None:
            raise ValueError(f"key 'alerts.overrides.{a.name}.for': {a.name} fires at once, by design")
    deployed = producers(settings, services)
    # Once, not per alert: it reads every scrape target.
    rate_window = window(settings)
    groups: dict[str, list[dict]] = {}
    for a in alerts:
        override = settings.alerts.overrides.get(a.name)
        if override is not None and not override.enabled:
            continue
        if not set(a.requires) <= deployed:
            continue
        threshold = override.threshold if override and override.threshold is not None else a.threshold
        duration = override.for_ if override and override.for_ is not None else a.for_
        severity = override.severity if override and override.severity is not None else a.severity
        # Plain replacement: PromQL may hold a '$' of its own (a regex anchor).
        expr = a.expr.replace(WINDOW, rate_window)
        if threshold is not None:
            expr = expr.replace(THRESHOLD, number_text(threshold))
        rule: dict = {"alert": a.alert, "expr": expr, "labels": {"severity": severity}}
        if duration is not None:
            rule["for"] = duration
        rule["annotations"] = {
            "summary": a.summary,
            "description": a.description,
            "runbook_url": f"{settings.alerts.runbook_url}#{a.alert.lower()}",
        }
        groups.setdefault(a.group, []).append(rule)
    every = {a.group: a.every for a in alerts}
    document = {"groups": []}
    for name, rules in groups.items():
        interval = group_interval(settings, every[name], [r["for"] for r in rules if "for" in r])
        document["groups"].append({"name": name, **({"interval": interval} if interval else {}), "rules": rules})
    return yaml_text.dump(document, sort_keys=False)
