"""Service level objectives (the stack file's `slos`) as Prometheus rules: multi-window,
multi-burn-rate alerts and error budgets.

The method is the one of the Google SRE workbook's chapter "Alerting on SLOs": an objective
allows a share of bad events over its window (the error budget); the burn rate is how many times
faster than that allowance the budget is being spent. Each alert compares the burn rate over a
long window, which says enough budget is gone to matter, and over a short window of 1/12 of it,
which says it is still going now (so the alert also resets soon after the burn stops). The
windows and burn rates are the workbook's recommended table for a 30-day objective: a fast burn
pages, a slow burn opens a ticket.

Every objective becomes one rule group in slos.yml, beside the alert catalog, whose recorded
series are named level:metric:operations and carry the labels `service` and `slo`:

- slo:sli_errors:rate5m, slo:sli_requests:rate5m: bad and all events per second, over 5m;
- slo:sli_error:ratio_rate<w>: the share of bad events over each alert window w;
- slo:sli_error:ratio_window: the share of bad events over the objective's whole window, from the
  5m rates (a rate over 30 days of raw series would be read again at every evaluation);
- slo:objective:ratio and slo:error_budget:remaining_ratio: the objective, and the share of its
  budget still unspent over the window (negative once overspent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Optional

import promql_parser
import pulumi

from components import yaml_text
from components.alerting import alert_rules, user_rules
from components.settings import SloObjective, Settings, milliseconds

RULES = user_rules.SLO_RULES
ALERTNAME = "ErrorBudgetBurn"
LABELS = ("service", "slo")


@dataclass(frozen=True)
class BurnAlert:
    severity: str  # critical pages, warning opens a ticket (alertmanager routes by severity)
    long: str
    short: str
    burn_rate: float
    budget_spent: int  # percent of a 30-day budget spent when it fires


# The workbook's recommended table ("Alerting on SLOs", multiwindow, multi-burn-rate alerts): on a
# 30-day objective, a page once 2% of the budget went in an hour or 5% in six hours, a ticket
# once 10% went in a day or in three days. The burn rates stay as they are on other windows, so a
# burn rate below 1, which the objective can sustain, never alerts.
BURN_ALERTS = (
    BurnAlert("critical", "1h", "5m", 14.4, 2),
    BurnAlert("critical", "6h", "30m", 6, 5),
    BurnAlert("warning", "1d", "2h", 3, 10),
    BurnAlert("warning", "3d", "6h", 1, 10),
)
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
SHORTEST, LONGEST = WINDOWS[0], WINDOWS[-1]

# The application contract (configs/metrics/catalog.yml, docs/grafana.md): a 5xx status is a bad
# request; request durations are a histogram whose boundaries include client_golang's DefBuckets
# (prometheus/histogram.go, v1.24.1), which client_python's DEFAULT_BUCKETS also hold.
REQUESTS = "http_requests_total"
SERVER_ERRORS = 'status=~"5.."'
DURATIONS = "http_request_duration_seconds"
CONTRACT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

RECORDED = frozenset({
    "slo:sli_errors:rate5m", "slo:sli_requests:rate5m", "slo:sli_error:ratio_window",
    "slo:objective:ratio", "slo:error_budget:remaining_ratio",
    *(f"slo:sli_error:ratio_rate{w}" for w in WINDOWS),
})


def _decimal(value: float) -> Decimal:
    """A settings number as the decimal it was written as: 99.9, not 99.900000000000006."""
    return Decimal(repr(float(value)))


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _le(boundary: float) -> str:
    """The `le` matcher of one bucket. Prometheus 3 stores a whole boundary as "1.0" whatever the
    client wrote (docs/migration.md, v3.0); older data and other stores may hold "1"."""
    text = alert_rules.number_text(boundary)
    return f'le=~"{text}|{text}\\\\.0"' if float(boundary).is_integer() else f'le="{text}"'


def _with(selector: str, *matchers: str, suffix: str = "") -> str:
    """A selector with a suffix on its metric name and more matchers: http_x{job="a"} -> http_x_bucket{job="a", le="1"}."""
    name, _, rest = selector.partition("{")
    inner = [m for m in (rest.rstrip().removesuffix("}").strip(), *matchers) if m]
    return f"{name.strip()}{suffix}{{{', '.join(inner)}}}" if inner else f"{name.strip()}{suffix}"


def _quoted(value: str) -> str:
    """A PromQL string literal: JSON's escapes are Go's."""
    return json.dumps(value)


def _metric(selector: str) -> str:
    return promql_parser.parse(selector).name


@dataclass(frozen=True)
class Objective:
    service: str
    name: str
    job: str
    spec: SloObjective

    @property
    def key(self) -> str:
        return f"slos.{self.service}.objectives.{self.name}"

    @property
    def target(self) -> Decimal:
        return _decimal(self.spec.target)

    @property
    def budget(self) -> Decimal:
        """The share of events that may be bad: 0.001 for 99.9%."""
        return (100 - self.target) / 100

    @property
    def uses_contract(self) -> bool:
        return self.spec.good is None and self.spec.histogram is None

    @property
    def histogram(self) -> str:
        return self.spec.histogram or f"{DURATIONS}{{job={_quoted(self.job)}}}"

    @property
    def buckets(self) -> Optional[tuple[float, ...]]:
        if self.spec.buckets is not None:
            return tuple(self.spec.buckets)
        return CONTRACT_BUCKETS if _metric(self.histogram) == DURATIONS else None

    def selectors(self) -> tuple[Optional[str], Optional[str], str]:
        """(bad, good, total) series: one of bad and good is None."""
        if self.spec.sli == "latency":
            return None, _with(self.histogram, _le(self.spec.threshold), suffix="_bucket"), _with(self.histogram, suffix="_count")
        if self.spec.good is not None:
            return None, self.spec.good, self.spec.total
        total = f"{REQUESTS}{{job={_quoted(self.job)}}}"
        return _with(total, SERVER_ERRORS), None, total

    def metrics(self) -> list[str]:
        """Every metric the objective reads."""
        if self.spec.sli == "latency":
            return [f"{_metric(self.histogram)}_bucket", f"{_metric(self.histogram)}_count"]
        return [_metric(s) for s in self.selectors() if s is not None]

    def rates(self, window: str) -> tuple[str, str]:
        """PromQL of bad events and of all events per second over `window`."""
        bad, good, total = self.selectors()
        requests = f"sum(rate({total}[{window}]))"
        if bad is not None:
            # No series of bad events yet is none of them, not an unknown share.
            return f"(sum(rate({bad}[{window}])) or vector(0))", requests
        return f"({requests} - (sum(rate({good}[{window}])) or vector(0)))", requests

    def series(self, metric: str) -> str:
        return f'{metric}{{service="{self.service}", slo="{self.name}"}}'


def objectives(settings: Settings) -> list[Objective]:
    return [
        Objective(service, name, service_settings.job or service, spec)
        for service, service_settings in settings.slos.items()
        for name, spec in service_settings.objectives.items()
    ]


# --- what is wrong with an objective --------------------------------------------------------------


def problems(settings: Settings) -> list[tuple[str, str]]:
    """Each objective the rules could not measure or alert on truly, as (key, message)."""
    found: list[tuple[str, str]] = []
    if not settings.slos:
        return found
    produced = user_rules.produced_metrics(settings)
    retention = milliseconds(settings.prometheus.retention.time)
    rate_window = alert_rules.window(settings)
    static_jobs = {t.job for t in settings.prometheus.scrape_targets}
    for o in objectives(settings):
        spec, key = o.spec, o.key
        if spec.sli == "availability":
            for field in ("threshold", "histogram", "buckets"):
                if getattr(spec, field) is not None:
                    found.append((f"{key}.{field}", "applies only to sli: latency; remove the key"))
            if (spec.good is None) != (spec.total is None):
                given, missing = ("good", "total") if spec.total is None else ("total", "good")
                found.append((f"{key}.{missing}", f"required because {key}.{given} is set: the objective is the "
                                                  "share of good events among all events"))
        else:
            for field in ("good", "total"):
                if getattr(spec, field) is not None:
                    found.append((f"{key}.{field}", "applies only to sli: availability; a latency objective counts "
                                                    "the events of its histogram faster than its threshold"))
            found += _latency_problems(o)
        if milliseconds(spec.window) < milliseconds(LONGEST):
            found.append((f"{key}.window", f"{spec.window} is shorter than the longest alert window ({LONGEST}): "
                                           f"the slow-burn ticket measures {LONGEST}; use at least {LONGEST}, "
                                           "typically 28d or 30d"))
        elif milliseconds(spec.window) > retention:
            found.append((f"{key}.window", f"{spec.window} is longer than prometheus.retention.time "
                                           f"({settings.prometheus.retention.time}): the error budget is counted "
                                           "over the whole window, from the samples Prometheus keeps; shorten the "
                                           "window or keep samples longer"))
        if milliseconds(rate_window) > milliseconds(SHORTEST):
            found.append((key, f"the shortest alert window is {SHORTEST}, which spans fewer than four scrapes at the "
                               f"stack's slowest scrape interval (its rate window is {rate_window}); scrape every "
                               "75s or faster"))
        for metric in sorted(set(o.metrics())):
            why = produced.missing(metric)
            if why is not None:
                found.append((f"{key}.{_field_of(o, metric)}", f"nothing the stack scrapes produces {why}, by "
                              "configs/metrics/catalog.yml, so the objective would measure nothing; if your "
                              "services export it, add it there under application"))
        if o.uses_contract and not settings.prometheus.discovery and o.job not in static_jobs:
            found.append((f"slos.{o.service}.job", f"{o.job!r} is no job of prometheus.scrape_targets, and "
                                                   "prometheus.discovery is off: no series would carry it"))
        if not any(a.severity == "critical" and _decimal(a.burn_rate) * o.budget < 1 for a in BURN_ALERTS):
            slowest = min(a.burn_rate for a in BURN_ALERTS if a.severity == "critical")
            found.append((f"{key}.target", f"{alert_rules.number_text(spec.target)}% lets {_text(o.budget * 100)}% of "
                                           "events be bad, so even a total outage burns the budget too slowly to "
                                           f"page (the slowest page needs a burn rate of {alert_rules.number_text(slowest)}); "
                                           f"aim above {100 - 100 / slowest:.1f}%"))
    return found


def _latency_problems(o: Objective) -> list[tuple[str, str]]:
    spec, key = o.spec, o.key
    found = []
    if spec.threshold is None:
        found.append((f"{key}.threshold", "required because sli is latency: the duration, in seconds, that a good "
                                          "event is faster than"))
    if "le" in {m.name for m in promql_parser.parse(o.histogram).matchers.matchers}:
        found.append((f"{key}.histogram", "must not match le: the threshold picks the bucket"))
    buckets = o.buckets
    if buckets is None:
        found.append((f"{key}.buckets", f"required because {_metric(o.histogram)} is not the application "
                                        "contract's histogram: list its bucket boundaries, so the threshold "
                                        "can be checked against them"))
    elif spec.threshold is not None and float(spec.threshold) not in buckets:
        listed = ", ".join(alert_rules.number_text(b) for b in buckets)
        found.append((f"{key}.threshold", f"{alert_rules.number_text(spec.threshold)} is not a bucket boundary of "
                                          f"{_metric(o.histogram)} ({listed}): a histogram counts only the events "
                                          "at or below one of its boundaries, so the share faster than any other "
                                          "duration cannot be measured; choose one of them"
                                          + ("" if spec.buckets is not None else
                                             ", or set buckets if the service's histogram has other boundaries")))
    return found


def _field_of(o: Objective, metric: str) -> str:
    """The key that named `metric`."""
    for field in ("good", "total", "histogram"):
        selector = getattr(o.spec, field)
        if selector is not None and metric.startswith(_metric(selector)):
            return field
    return "sli"


def warnings(settings: Settings) -> list[str]:
    """Alerts an objective renders that can never fire: its budget is so large that even every
    event bad burns it slower than they need."""
    found = []
    for o in objectives(settings):
        dead = [a for a in BURN_ALERTS if _decimal(a.burn_rate) * o.budget >= 1]
        if dead and any(a.severity == "critical" and a not in dead for a in BURN_ALERTS):
            pairs = ", ".join(f"{a.long}/{a.short} at {alert_rules.number_text(a.burn_rate)}x" for a in dead)
            found.append(f"key '{o.key}.target': {alert_rules.number_text(o.spec.target)}% lets {_text(o.budget * 100)}% of events be bad; "
                         f"even a total outage never reaches the burn rate of {pairs}, so those alerts never fire")
    return found


# --- the rules ------------------------------------------------------------------------------------


def group_name(o: Objective) -> str:
    return f"slo-{o.service}-{o.name}"


def _group(o: Objective, runbook_url: str) -> dict:
    labels = {"service": o.service, "slo": o.name}
    budget = _text(o.budget)

    def record(metric: str, expr: str) -> dict:
        return {"record": metric, "expr": expr, "labels": dict(labels)}

    errors, requests = o.rates(SHORTEST)
    rules = [
        record("slo:sli_errors:rate5m", errors),
        record("slo:sli_requests:rate5m", requests),
        record(f"slo:sli_error:ratio_rate{SHORTEST}",
               f"{o.series('slo:sli_errors:rate5m')} / {o.series('slo:sli_requests:rate5m')}"),
    ]
    for window in WINDOWS[1:]:
        errors, requests = o.rates(window)
        rules.append(record(f"slo:sli_error:ratio_rate{window}", f"{errors} / {requests}"))
    window = o.spec.window
    rules += [
        record("slo:sli_error:ratio_window",
               f"sum_over_time({o.series('slo:sli_errors:rate5m')}[{window}])"
               f" / sum_over_time({o.series('slo:sli_requests:rate5m')}[{window}])"),
        record("slo:objective:ratio", f"vector({_text(o.target / 100)})"),
        record("slo:error_budget:remaining_ratio", f"1 - {o.series('slo:sli_error:ratio_window')} / {budget}"),
    ]
    good = (f"requests faster than {alert_rules.number_text(o.spec.threshold)}s" if o.spec.sli == "latency"
            else "events good")
    what = f"{alert_rules.number_text(o.spec.target)}% of {good} over {window}"
    for severity, summary, speed in (
        ("critical", "A service is spending its error budget fast enough to page.", "at this rate the budget is gone within days"),
        ("warning", "A service is spending its error budget faster than its objective allows.",
         "at this rate the budget runs out before the window ends"),
    ):
        pairs = [a for a in BURN_ALERTS if a.severity == severity]
        # The value of each pair is its long window's burn rate.
        conditions = [
            f"({o.series(f'slo:sli_error:ratio_rate{a.long}')} / {budget} > {alert_rules.number_text(a.burn_rate)}"
            f" and {o.series(f'slo:sli_error:ratio_rate{a.short}')} / {budget} > {alert_rules.number_text(a.burn_rate)})"
            for a in pairs
        ]
        windows = " or ".join(a.long for a in pairs)
        rules.append({
            "alert": ALERTNAME,
            "expr": " or ".join(conditions),
            # The series carry service and slo already; said here too, each rule's labels are its own.
            "labels": {"severity": severity, **labels},
            "annotations": {
                "summary": summary,
                "description": (f"{{{{ $labels.service }}}} is spending the error budget of its {{{{ $labels.slo }}}} "
                                f"objective ({what}) {{{{ printf \"%.1f\" $value }}}} times as fast as the objective "
                                f"allows, over the last {windows}: {speed}."),
                "runbook_url": f"{runbook_url}#{ALERTNAME.lower()}",
            },
        })
    return {"name": group_name(o), "rules": rules}


def render(settings: Settings) -> Optional[str]:
    """slos.yml for the stack, or None when it sets no objective."""
    found = objectives(settings)
    if not found:
        return None
    for warning in warnings(settings):
        pulumi.log.warn(warning)
    document = {"groups": [_group(o, settings.alerts.runbook_url) for o in found]}
    return yaml_text.dump(document, sort_keys=False)
