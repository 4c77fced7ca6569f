"""The alert catalog (configs/alerts/catalog.yml) rendered as a Prometheus rule file per stack.

Thresholds, `for` durations and severities live in the catalog with their defaults; a stack
changes or disables an alert by name under `alerts.overrides`. An alert whose metrics come from an
exporter is rendered only where that exporter is deployed (`requires`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Optional

import yaml

from components.settings import Settings, milliseconds

CATALOG = Path(__file__).parent.parent / "configs" / "alerts" / "catalog.yml"
SEVERITIES = ("critical", "warning", "info")
# Rate windows span at least four scrapes, and never less than five minutes.
MIN_WINDOW_MS = 5 * 60_000


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


def catalog() -> list[Alert]:
    document = yaml.safe_load(CATALOG.read_text())
    return [
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
        )
        for group in document["groups"]
        for entry in group["alerts"]
    ]


def producers(settings: Settings, services: list[str]) -> set[str]:
    """What the stack deploys, in the terms of `requires` and configs/metrics/catalog.yml."""
    found = set(services)
    if "gpu-exporter" in found:
        found.add(f"gpu-exporter/{settings.exporters.gpu.exporter}")
    return found


def window(settings: Settings) -> str:
    ms = max(MIN_WINDOW_MS, 4 * milliseconds(settings.prometheus.scrape_interval))
    return f"{ms // 1000}s" if ms % 60_000 else f"{ms // 60_000}m"


def _number(value: float) -> str:
    return f"{value:g}"


def render(settings: Settings, services: list[str]) -> str:
    """The catalog as one rule file for this stack."""
    alerts = catalog()
    known = {a.name for a in alerts}
    for name in sorted(set(settings.alerts.overrides) - known):
        raise ValueError(f"key 'alerts.overrides.{name}': no alert named {name!r} in configs/alerts/catalog.yml")
    deployed = producers(settings, services)
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
        expr = Template(a.expr).substitute(
            threshold=_number(threshold) if threshold is not None else "", window=window(settings)
        )
        rule: dict = {"alert": a.alert, "expr": expr, "labels": {"severity": severity}}
        if duration is not None:
            rule["for"] = duration
        rule["annotations"] = {
            "summary": a.summary,
            "description": a.description,
            "runbook_url": f"{settings.alerts.runbook_url}#{a.alert.lower()}",
        }
        groups.setdefault(a.group, []).append(rule)
    document = {"groups": [{"name": name, "rules": rules} for name, rules in groups.items()]}
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=1000)
