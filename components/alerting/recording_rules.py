"""The recording rules the built-in dashboards read (configs/prometheus/records.yml), rendered per
stack as records.yml.

A record is rendered where what it `requires` is deployed, with the stack's rate window in its
expression and its name (`rate${window}`: rate5m in every shipped stack). The dashboards ask
`name()` for a record's name, so a panel and the record it reads cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from components import CONFIGS, yaml_text
from components.alerting import alert_rules, user_rules
from components.settings import Settings

SOURCE = CONFIGS / "prometheus" / "records.yml"
RULES = user_rules.RECORDS
# level:metric:operations (https://prometheus.io/docs/practices/rules/), before ${window} is filled in.
NAME = re.compile(r"[a-z][a-z0-9_]*:[A-Za-z][A-Za-z0-9_]*:[a-z0-9_]+(\$\{window\})?")


@dataclass(frozen=True)
class Record:
    record: str  # as written, with ${window}
    group: str
    expr: str
    requires: tuple[str, ...] = ()
    every: int | None = None  # the group's: evaluated every `every` evaluation intervals


def catalog() -> list[Record]:
    """Every record of configs/prometheus/records.yml, checked."""
    document = yaml_text.load(SOURCE.read_text())
    found = [
        Record(entry["record"], group["name"], entry["expr"], tuple(entry.get("requires", ())), group.get("every"))
        for group in document["groups"] for entry in group["records"]
    ]
    known = alert_rules.known_producers()
    names = [r.record for r in found]
    for r in found:
        where = f"configs/prometheus/records.yml: {r.record}"
        if not NAME.fullmatch(r.record):
            raise ValueError(f"{where}: the name is not level:metric:operations")
        if names.count(r.record) > 1:
            raise ValueError(f"{where}: the name is used twice")
        if ("rate" + alert_rules.WINDOW in r.record) != (f"[{alert_rules.WINDOW}]" in r.expr):
            raise ValueError(f"{where}: a rate over ${{window}} and rate${{window}} in the name go together")
        if r.every is not None and (type(r.every) is not int or r.every < 2):
            raise ValueError(f"{where}: its group's `every` is {r.every!r}, not a whole number of evaluation intervals above 1")
        for requirement in r.requires:
            if requirement not in known:
                raise ValueError(f"{where}: requires {requirement!r}, which configs/metrics/catalog.yml does not name")
    return found


def name(settings: Settings, record: str) -> str:
    """A record's name as the stack renders it: `record` as written in records.yml."""
    return record.replace(alert_rules.WINDOW, alert_rules.window(settings))


def _rendered(settings: Settings, producers: set[str]) -> list[tuple[Record, dict]]:
    rate_window = alert_rules.window(settings)
    return [(r, {"record": name(settings, r.record), "expr": r.expr.replace(alert_rules.WINDOW, rate_window)})
            for r in catalog() if set(r.requires) <= producers]


def recorded(settings: Settings, producers: set[str]) -> frozenset[str]:
    """The names of the series the stack's records write."""
    return frozenset(rule["record"] for _, rule in _rendered(settings, producers))


def render(settings: Settings, producers: set[str]) -> str:
    """The stack's records.yml: `producers` as alert_rules.producers gives them."""
    groups: dict[str, dict] = {}
    for r, rule in _rendered(settings, producers):
        interval = alert_rules.group_interval(settings, r.every, [])
        group = groups.setdefault(r.group, {"name": r.group, **({"interval": interval} if interval else {}), "rules": []})
        group["rules"].append(rule)
    return yaml_text.dump({"groups": list(groups.values())}, sort_keys=False)
