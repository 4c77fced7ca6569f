"""Everything inside a Grafana, managed as code through its API: folders, datasources,
dashboards, the contact point and the rules that need Loki.

Datasources have fixed uids and link to each other: Prometheus exemplars and Loki's trace_id open
the trace in Jaeger, a trace's spans open their logs in Loki. Rules that need Loki, which
Prometheus cannot evaluate, live in Grafana and notify through a contact point that hands them to
the stack's Alertmanager, so every alert is routed by the same tree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumiverse_grafana as grafana

from components.grafana.dashboards import Dashboard, folder_uid
from components.settings import DatasourceUrls, GrafanaAlerts, GrafanaContentArgs, LongTermMetrics

CONTACT_POINT = "alertmanager"
# Datasource uids: fixed, so dashboards, links and rules can name them.
PROMETHEUS, LOKI, JAEGER, ALERTMANAGER = "prometheus", "loki", "jaeger", "alertmanager"
LONG_TERM = "long-term-metrics"
# jsonData prometheusType of each long-term store: Grafana's PromApplication values
# (@grafana/prometheus 13.2.3, PromApplication: Cortex, Mimir, Prometheus, Thanos).
PROMETHEUS_TYPES = {"mimir": "Mimir", "thanos": "Thanos", "prometheus": "Prometheus"}
# The header that names a Mimir tenant (Mimir's authentication and authorization guide).
TENANT_HEADER = "X-Scope-OrgID"


@dataclass(frozen=True)
class Endpoints:
    """http://host:port of each service Grafana reads, as Grafana reaches it."""

    prometheus: str
    loki: str
    jaeger: str
    alertmanagers: tuple[str, ...]

    def override(self, given: DatasourceUrls) -> "Endpoints":
        return Endpoints(
            prometheus=given.prometheus or self.prometheus,
            loki=given.loki or self.loki,
            jaeger=given.jaeger or self.jaeger,
            alertmanagers=(given.alertmanager,) if given.alertmanager else self.alertmanagers,
        )


def long_term_datasource(given: LongTermMetrics) -> dict:
    """The long-term store, as a second Prometheus-type datasource: the same queries over a longer
    past. Its credentials: basic auth as `basic_auth_username` (the password is the caller's),
    and the tenant as a header (the provider turns http_headers into jsonData httpHeaderName1 and
    secureJsonData httpHeaderValue1, and refuses those keys anywhere else)."""
    source = {
        "uid": LONG_TERM, "name": "Long-term metrics", "type": "prometheus", "url": given.url, "is_default": False,
        "json_data": {"httpMethod": "POST", "prometheusType": PROMETHEUS_TYPES[given.type]},
    }
    if given.username is not None:
        source["basic_auth_username"] = given.username
    if given.tenant is not None:
        source["http_headers"] = {TENANT_HEADER: given.tenant}
    return source


def datasources(endpoints: Endpoints, long_term: Optional[LongTermMetrics] = None) -> list[dict]:
    """Arguments of each oss.DataSource; json_data is serialised with sorted keys."""
    extra = [long_term_datasource(long_term)] if long_term is not None else []
    return _stack_datasources(endpoints) + extra


def _stack_datasources(endpoints: Endpoints) -> list[dict]:
    return [
        {
            "uid": PROMETHEUS, "name": "Prometheus", "type": "prometheus", "url": endpoints.prometheus, "is_default": True,
            "json_data": {
                "httpMethod": "POST",
                "exemplarTraceIdDestinations": [{"name": "trace_id", "datasourceUid": JAEGER}],
            },
        },
        {
            "uid": LOKI, "name": "Loki", "type": "loki", "url": endpoints.loki, "is_default": False,
            "json_data": {
                "derivedFields": [
                    # trace_id travels as structured metadata; the shippers keep it there.
                    {"name": "TraceID", "matcherType": "label", "matcherRegex": "trace_id",
                     "datasourceUid": JAEGER, "url": "${__value.raw}", "urlDisplayLabel": "Open trace"},
                ],
            },
        },
        {
            "uid": JAEGER, "name": "Jaeger", "type": "jaeger", "url": endpoints.jaeger, "is_default": False,
            "json_data": {
                "tracesToLogsV2": {
                    "datasourceUid": LOKI, "filterByTraceID": True, "spanStartTimeShift": "-5m", "spanEndTimeShift": "5m",
                    "tags": [{"key": "service.name", "value": "service_name"}],
                },
            },
        },
        {
            "uid": ALERTMANAGER, "name": "Alertmanager", "type": "alertmanager", "url": endpoints.alertmanagers[0],
            "is_default": False,
            "json_data": {"implementation": "prometheus", "handleGrafanaManagedAlerts": False},
        },
    ]


def _loki_query(ref: str, expr: str) -> dict:
    return {
        "ref_id": ref,
        "datasource_uid": LOKI,
        "query_type": "instant",
        "relative_time_range": {"from_": 600, "to": 0},
        # Keys as Grafana stores them, so a refresh shows no difference.
        "model": {"datasource": {"type": "loki", "uid": LOKI}, "editorMode": "code", "expr": expr,
                  "intervalMs": 1000, "maxDataPoints": 43200, "queryType": "instant", "refId": ref},
    }


def _threshold(ref: str, source: str, above: float) -> dict:
    return {
        "ref_id": ref,
        "datasource_uid": "__expr__",
        "query_type": "",
        "relative_time_range": {"from_": 0, "to": 0},
        "model": {"datasource": {"type": "__expr__", "uid": "__expr__"}, "expression": source,
                  "conditions": [{"evaluator": {"params": [above], "type": "gt"}}],
                  "intervalMs": 1000, "maxDataPoints": 43200, "refId": ref, "type": "threshold"},
    }


def alert_rules(a: GrafanaAlerts) -> list[dict]:
    """The rules only Grafana can evaluate: they query Loki."""
    every = '{service_name=~".+"}'
    # Loki's detected_level covers shipped lines and OTLP lines alike (see the Logs dashboard).
    errors = f'{every} | detected_level="error"'
    return [
        {
            "name": "ErrorLogBurst",
            "expr": f"sum by (service_name) (count_over_time({errors}[5m]))",
            "above": a.error_log_burst,
            "for": "5m",
            "summary": "A service is logging errors in a burst.",
            "description": f"{{{{ $labels.service_name }}}} logged more than {a.error_log_burst} error lines in 5 minutes.",
        },
        {
            "name": "LogVolumeSpike",
            # The last 10 minutes against the average 10 minutes of the last day, for services
            # that already logged a day ago: a new service or a fresh stack has no normal yet.
            "expr": (f"(sum by (service_name) (count_over_time({every}[10m])) / "
                     f"(sum by (service_name) (count_over_time({every}[1d])) / 144)) "
                     f"and on (service_name) (sum by (service_name) (count_over_time({every}[10m] offset 1d)) > 0)"),
            "above": a.log_volume_factor,
            "for": "10m",
            "summary": "A service logs far more than it normally does.",
            "description": f"{{{{ $labels.service_name }}}} logged over {a.log_volume_factor:g} times its usual volume in the last 10 minutes.",
        },
    ]


class GrafanaContent(pulumi.ComponentResource):
    """Folders, datasources, dashboards, the contact point and the Loki rules, in one Grafana.

    args: the Grafana to configure (url) and what goes in it (GrafanaContentArgs). dashboards:
    each in one of args.folders. endpoints: where that Grafana reaches Prometheus, Loki, Jaeger
    and each Alertmanager (args.datasource_urls override them). auth: "<user>:<password>" or a
    service account token. long_term_metrics_password: the basic-auth password of
    args.long_term_metrics.username (required with it), kept secret. depends_on: what must be
    ready first (a Grafana component).
    """

    def __init__(self, name: str, args: GrafanaContentArgs, *, dashboards: Sequence[Dashboard], endpoints: Endpoints,
                 auth: pulumi.Input[str], long_term_metrics_password: Optional[pulumi.Input[str]] = None,
                 depends_on: Optional[list[pulumi.Resource]] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        misplaced = [f"{d.uid} (in {d.folder!r})" for d in dashboards if d.folder not in args.folders]
        if misplaced:
            raise ValueError(f"{name}: dashboards in a folder that folders does not list: {', '.join(misplaced)}")
        long_term = args.long_term_metrics
        if long_term is not None and long_term.username is not None and long_term_metrics_password is None:
            raise ValueError(f"{name}: long_term_metrics.username is set, so long_term_metrics_password is required")
        super().__init__("observability:grafana:Content", name, None, opts)
        # Bound to the Grafana the stack deploys, created once that Grafana answers (the
        # platform waits for its health check), so a fresh stack comes up in one `pulumi up`.
        # auth is a secret in the state and the preview, whatever the caller passed.
        self.provider = grafana.Provider(
            "grafana", url=args.url.rstrip("/"), auth=pulumi.Output.secret(auth),
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on or []),
        )
        child = pulumi.ResourceOptions(parent=self, provider=self.provider)
        endpoints = endpoints.override(args.datasource_urls)

        folders = {
            title: grafana.oss.Folder(f"folder-{folder_uid(title)}", title=title, uid=folder_uid(title), opts=child)
            for title in args.folders
        }
        for source in datasources(endpoints, long_term):
            access = {}
            if "basic_auth_username" in source:
                # A secret in the state and the preview, whatever the caller passed.
                password = pulumi.Output.secret(long_term_metrics_password)
                access = {
                    "basic_auth_enabled": True, "basic_auth_username": source["basic_auth_username"],
                    "secure_json_data_encoded": password.apply(lambda p: json.dumps({"basicAuthPassword": p})),
                }
            if "http_headers" in source:
                access["http_headers"] = source["http_headers"]
            grafana.oss.DataSource(
                f"datasource-{source['uid']}",
                uid=source["uid"], name=source["name"], type=source["type"], url=source["url"],
                is_default=source["is_default"], access_mode="proxy",
                json_data_encoded=json.dumps(source["json_data"], sort_keys=True),
                **access,
                opts=child,
            )
        for d in dashboards:
            grafana.oss.Dashboard(
                f"dashboard-{d.uid}", config_json=d.json(), folder=folders[d.folder].uid, overwrite=True, opts=child,
            )
        contact = grafana.alerting.ContactPoint(
            "contact-point", name=CONTACT_POINT,
            alertmanagers=[{"url": ",".join(endpoints.alertmanagers)}],
            opts=child,
        )
        # Each rule names its contact point; the organisation's notification policy tree, which
        # a Grafana shared with others may rely on, is left as it is.
        grafana.alerting.RuleGroup(
            "rules-logs", name="logs", folder_uid=folders[args.folders[0]].uid, interval_seconds=60,
            rules=[
                {
                    "name": r["name"],
                    "condition": "B",
                    "for_": r["for"],
                    "no_data_state": "OK",
                    "exec_err_state": "Error",
                    "labels": {"severity": "warning"},
                    "annotations": {"summary": r["summary"], "description": r["description"],
                                    "runbook_url": f"{args.runbook_url}#{r['name'].lower()}"},
                    "notification_settings": {"contact_point": contact.name},
                    "datas": [
                        {**data, "model": json.dumps(data["model"], sort_keys=True)}
                        for data in (_loki_query("A", r["expr"]), _threshold("B", "A", r["above"]))
                    ],
                }
                for r in alert_rules(args.alerts)
            ],
            opts=child,
        )
        self.register_outputs({})
