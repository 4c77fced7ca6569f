"""The SLOs dashboard: every service level objective the stack file sets (`slos`), its budget and
its burn rates.

Built only where the stack sets an objective. Every panel reads the series the objectives' rules
record (components/alerting/slos.py) and the ALERTS series of their burn-rate alerts, never the
raw request counters: the dashboard costs a handful of series whatever the traffic.
"""

from __future__ import annotations

from components.alerting import slos
from components.grafana.dashboards import PROMETHEUS, Dashboard, dashboard, panel, row, stat, table, timeseries
from components.settings import Settings, milliseconds

UID = "slos"
FOLDER = "Applications"
# The objective the panels below the overview show, chosen by its service and its name.
CHOSEN = 'service="$service", slo="$slo"'
BY_OBJECTIVE = "{{service}} / {{slo}}"
FIRING = f'ALERTS{{alertname="{slos.ALERTNAME}", alertstate="firing"'


def _variable(name: str, label: str, query: str) -> dict:
    return {
        "name": name, "label": label, "type": "query", "datasource": PROMETHEUS, "query": query,
        "refresh": 2,  # on every change of the time range: objectives come and go with the stack file
        "sort": 1, "regex": "", "hide": 0, "includeAll": False, "multi": False, "current": {}, "options": [],
    }


VARIABLES = (
    _variable("service", "Service", "label_values(slo:objective:ratio, service)"),
    _variable("slo", "Objective", 'label_values(slo:objective:ratio{service="$service"}, slo)'),
)


def _burn_rate(window: str) -> str:
    """The burn rate over `window`: the share of bad events over the share the objective allows."""
    return f"slo:sli_error:ratio_rate{window}{{{CHOSEN}}} / (1 - slo:objective:ratio{{{CHOSEN}}})"


def overview() -> list[dict]:
    return [
        row("Every objective"),
        stat("Objectives paging", "Objectives whose fast-burn alert (critical) fires now.",
             [(f'count({FIRING}, severity="critical"}}) or vector(0)', "")]),
        stat("Objectives with a ticket", "Objectives whose slow-burn alert (warning) fires now.",
             [(f'count({FIRING}, severity="warning"}}) or vector(0)', "")]),
        table("Error budget remaining by objective", "Each objective's budget still unspent over its window; below 0 it is "
              "overspent.", [("slo:error_budget:remaining_ratio", BY_OBJECTIVE)], "percentunit", width=12),
    ]


def objective() -> list[dict]:
    burn = [(_burn_rate(window), window) for window in slos.WINDOWS]
    pairs = "; ".join(f"{'a page' if a.severity == 'critical' else 'a ticket'} when {a.long} and {a.short} are above "
                      f"{a.burn_rate:g}" for a in slos.BURN_ALERTS)
    return [
        row("Objective: $service / $slo"),
        stat("Service level", "Share of good events over the objective's window, now.",
             [(f"1 - slo:sli_error:ratio_window{{{CHOSEN}}}", "")], "percentunit"),
        stat("Objective", "Share of good events the objective asks for over its window.",
             [(f"slo:objective:ratio{{{CHOSEN}}}", "")], "percentunit"),
        stat("Error budget remaining", "Share of the window's error budget still unspent; below 0 it is overspent.",
             [(f"slo:error_budget:remaining_ratio{{{CHOSEN}}}", "")], "percentunit"),
        stat("Burn rate over 1h", "How many times faster than the objective allows the budget was spent over "
             "the last hour; 1 spends exactly the budget over the window.", [(_burn_rate("1h"), "")]),
        timeseries("Error budget remaining", "Share of the error budget unspent over the objective's window, as "
                   "it stood at each moment.", [(f"slo:error_budget:remaining_ratio{{{CHOSEN}}}", "remaining")],
                   "percentunit"),
        timeseries("Burn rate by alert window", f"The burn rate over each window the alerts read ({pairs}).",
                   burn),
        panel("state-timeline", "Burn-rate alerts", "When the objective's alerts fired: critical pages, warning "
              "opens a ticket.", [(f'count by (severity) ({FIRING}, {CHOSEN}}})', "{{severity}}")], width=24,
              height=5),
    ]


def slo_dashboard(settings: Settings) -> Dashboard | None:
    found = slos.objectives(settings)
    if not found:
        return None
    # The longest window the stack's objectives count their budget over, at a glance.
    longest = max((o.spec.window for o in found), key=milliseconds)
    model = dashboard(UID, "Service level objectives", FOLDER,
                      "The objectives of the stack file's slos: each one's error budget and burn rates, from the "
                      "series their rules record. Choose an objective in Service and Objective.",
                      overview() + objective(), tags=("slo",), variables=VARIABLES)
    model.model["time"] = {"from": f"now-{longest}", "to": "now"}
    return model
