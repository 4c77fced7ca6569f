"""The dashboards every stack ships, as classic Grafana dashboard JSON, and the user's own.

Each built-in dashboard is assembled from what the stack deploys: a panel appears only where
something produces its metrics (configs/metrics/catalog.yml says what produces what). Every panel
reads its datasource from a template variable, so no dashboard names a datasource uid.
User dashboards: exported JSON files under configs/grafana/dashboards/<folder>/, where <folder> is
the folder's uid (its title in lower case, words joined by '-', e.g. gpu-ml for "GPU & ML"), in
either export form; they are checked for what makes them work in the stack, not held to the
built-in dashboards' style.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi

from components import CONFIGS
from components.alerting import recording_rules, user_rules
from components.settings import grammar
from components.settings import Settings, folder_uid

USER_DASHBOARDS = CONFIGS / "grafana" / "dashboards"
PROMETHEUS = {"type": "prometheus", "uid": "${datasource}"}
LOKI = {"type": "loki", "uid": "${logs}"}
RATE = "$__rate_interval"
ERRORS = '{status=~"5.."}'
# A recorded series' name (level:metric:operations): its histograms keep no exemplars.
RECORDED = re.compile(r"\b[a-z][a-z0-9_]*:[A-Za-z]\w*:\w+")


@dataclass(frozen=True)
class Dashboard:
    uid: str
    folder: str  # folder title
    model: dict

    def json(self) -> str:
        """Serialised with sorted keys: the same dashboard always gives the same bytes."""
        return json.dumps(self.model, sort_keys=True, separators=(",", ":"))


def _targets(queries, datasource) -> list[dict]:
    targets = []
    for i, (expr, legend) in enumerate(queries):
        target = {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": datasource}
        if "histogram_quantile" in expr and not RECORDED.search(expr):
            # Latency panels show exemplars: a dot on the graph opens its trace in Jaeger. A
            # recording rule keeps none, so panels on recorded buckets cannot.
            target["exemplar"] = True
        targets.append(target)
    return targets


def panel(kind: str, title: str, description: str, queries, unit: str = "short", width: int = 12,
          height: int = 8, datasource: dict = PROMETHEUS, **options) -> dict:
    """One panel; `queries` are (expression, legend) pairs."""
    found = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": datasource,
        "targets": _targets(queries, datasource),
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "gridPos": {"w": width, "h": height},
    }
    if options:
        found["options"] = options
    return found


def timeseries(title, description, queries, unit="short", **kw) -> dict:
    return panel("timeseries", title, description, queries, unit, **kw)


def stat(title, description, queries, unit="short", **kw) -> dict:
    return panel("stat", title, description, queries, unit, width=6, height=4, **kw)


def table(title, description, queries, unit="short", **kw) -> dict:
    found = panel("table", title, description, queries, unit, **kw)
    for target in found["targets"]:
        # One row per series, its latest value.
        target.update(instant=True, format="table")
    return found


def row(title: str) -> dict:
    """A row across the grid: the panels after it, up to the next row, are its own. Expanded, so
    they stay in the dashboard's own list (a collapsed row would carry them inside itself)."""
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24, "h": 1}}


def logs(title, description, query) -> dict:
    return panel("logs", title, description, [(query, "")], width=24, height=10, datasource=LOKI,
                 showTime=True, wrapLogMessage=True, enableLogDetails=True)


def _layout(panels: list[dict]) -> list[dict]:
    """Left to right, top to bottom, on Grafana's 24-column grid; ids in order."""
    x = y = row_height = 0
    for index, p in enumerate(panels, start=1):
        grid = p["gridPos"]
        if x + grid["w"] > 24:
            x, y, row_height = 0, y + row_height, 0
        grid.update(x=x, y=y)
        x += grid["w"]
        row_height = max(row_height, grid["h"])
        p["id"] = index
    return panels


def _variable(name: str, label: str, kind: str) -> dict:
    return {"name": name, "label": label, "type": "datasource", "query": kind, "current": {}, "hide": 0,
            "refresh": 1, "options": [], "includeAll": False, "multi": False}


def dashboard(uid: str, title: str, folder: str, description: str, panels: list[dict], tags=(),
              variables=()) -> Dashboard:
    """`variables`: the dashboard's own, after the datasource variables its panels read."""
    datasources = [_variable("datasource", "Metrics", "prometheus")]
    if any(p.get("datasource") == LOKI for p in panels):
        datasources.append(_variable("logs", "Logs", "loki"))
    return Dashboard(uid, folder, {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["observability", *tags],
        "timezone": "browser",
        "editable": False,
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [*datasources, *variables]},
        "annotations": {"list": []},
        "panels": _layout(panels),
    })


def _quantile(q: float, metric: str, by: str = "") -> str:
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({metric}[{RATE}])))"


def recorded(settings: Settings, record: str) -> str:
    """The series a record of configs/prometheus/records.yml writes in this stack."""
    return recording_rules.name(settings, record)


class _Http:
    """The application contract's HTTP traffic, as the records of configs/prometheus/records.yml
    hold it: rates over the catalog's window (five minutes), per job and status, per endpoint, and
    each endpoint's latency buckets. Reading them, a panel reads a few series per service instead
    of every instance's and method's on every refresh."""

    def __init__(self, settings: Settings):
        self.by_status = recorded(settings, "job_status:http_requests:rate${window}")
        self.by_endpoint = recorded(settings, "endpoint:http_requests:rate${window}")
        self.buckets = recorded(settings, "endpoint_le:http_request_duration_seconds_bucket:rate${window}")

    def rate(self, selector: str = "", by: str = "") -> str:
        group = f" by ({by})" if by else ""
        return f"sum{group} ({self.by_status}{selector})"

    def error_ratio(self, by: str = "") -> str:
        return f"{self.rate(ERRORS, by)} / {self.rate(by=by)}"

    def quantile(self, q: float, by: str = "") -> str:
        group = f"le, {by}" if by else "le"
        return f"histogram_quantile({q}, sum by ({group}) ({self.buckets}))"


def system_overview(settings: Settings) -> Dashboard:
    http = _Http(settings)
    return dashboard("system-overview", "System overview", "Platform",
                     "Health of every scraped service, and the traffic the applications serve (HTTP rates over "
                     "5 minutes, from recording rules).", [
        stat("Targets up", "Scrape targets answering now.", [("sum(up)", "")]),
        stat("Targets down", "Scrape targets that failed their last scrape.", [("count(up == 0) or vector(0)", "")]),
        stat("Request rate", "HTTP requests per second, all services.", [(http.rate(), "")], "reqps"),
        stat("Error rate", "Share of HTTP requests answered with a 5xx status.", [(http.error_ratio(), "")], "percentunit"),
        timeseries("Service health", "1 when a target answers its scrape, 0 when it does not.",
                   [("min by (job) (up)", "{{job}}")], "bool"),
        timeseries("Request rate by service", "HTTP requests per second.", [(http.rate(by="job"), "{{job}}")], "reqps"),
        timeseries("Error rate by service", "Share of requests answered with a 5xx status.",
                   [(http.error_ratio("job"), "{{job}}")], "percentunit"),
        timeseries("p95 latency by endpoint", "95th percentile of request duration.",
                   [(http.quantile(0.95, "endpoint"), "{{endpoint}}")], "s"),
        # The instance too: prod's replicas share a job, and each line must say which one restarted.
        timeseries("Uptime", "Time since each process started.",
                   [("time() - process_start_time_seconds", "{{job}} {{instance}}")], "s", width=24),
    ], tags=("overview",))


def api_performance(settings: Settings) -> Dashboard:
    http = _Http(settings)
    return dashboard("api-performance", "API performance", "Applications",
                     "Request rate, latency and errors by endpoint (http_requests_total, http_request_duration_seconds; "
                     "rates over 5 minutes, from recording rules).", [
        timeseries("Request rate by endpoint", "HTTP requests per second.",
                   [(f"sum by (endpoint) ({http.by_endpoint})", "{{endpoint}}")], "reqps"),
        timeseries("Latency percentiles", "p50, p95 and p99 of request duration.", [
            (http.quantile(0.5), "p50"), (http.quantile(0.95), "p95"), (http.quantile(0.99), "p99"),
        ], "s"),
        timeseries("Status codes", "Requests per second by HTTP status.", [(http.rate(by="status"), "{{status}}")], "reqps"),
        timeseries("Error rate", "Share of requests answered with a 5xx status.", [(http.error_ratio(), "errors")], "percentunit"),
        table("Top 10 slowest endpoints", "Endpoints by p95 request duration.",
              [(f"topk(10, {http.quantile(0.95, 'endpoint')})", "{{endpoint}}")], "s"),
        timeseries("Requests in progress", "Requests being served right now.",
                   [("sum by (job) (http_requests_in_progress)", "{{job}}")]),
    ], tags=("http",))


def containers_and_hosts(settings: Settings) -> Dashboard | None:
    """The ten hosts and the ten containers using the most of each resource, from the records of
    configs/prometheus/records.yml: a line for each of a thousand hosts or twenty thousand
    containers is unreadable, and costs seconds on every refresh."""
    exporters = settings.exporters

    def top(record: str) -> str:
        """The ten highest series of a record with one series per host (or per filesystem)."""
        return f"topk(10, {recorded(settings, record)})"

    panels: list[dict] = []
    if exporters.node.enabled:
        panels += [
            timeseries("Host CPU", "Share of CPU time not idle: the ten busiest hosts.",
                       [(top("instance:node_cpu_utilisation:rate${window}"), "{{instance}}")], "percentunit"),
            timeseries("Host memory", "Share of memory in use: the ten fullest hosts.",
                       [(top("instance:node_memory_utilisation:ratio"), "{{instance}}")], "percentunit"),
            timeseries("Host disk", "Share of each filesystem in use: the ten fullest filesystems.",
                       [(top("instance_mountpoint:node_filesystem_utilisation:ratio"), "{{instance}} {{mountpoint}}")],
                       "percentunit"),
            timeseries("Host network", "Bytes per second received (+) and sent (-) on physical interfaces: the ten "
                       "busiest hosts each way.", [
                (top("instance:node_network_receive_bytes_physical:rate${window}"), "{{instance}} in"),
                ("-" + top("instance:node_network_transmit_bytes_physical:rate${window}"), "{{instance}} out"),
            ], "Bps"),
        ]
    if exporters.cadvisor.enabled:
        # Recorded as the ten highest at each evaluation (once a minute).
        panels += [
            timeseries("Container CPU", "CPU cores used: the ten busiest containers.",
                       [(recorded(settings, "name:container_cpu_usage_seconds:topk10_rate${window}"), "{{name}}")]),
            timeseries("Container memory", "Working set: the ten largest containers.",
                       [(recorded(settings, "name:container_memory_working_set_bytes:topk10"), "{{name}}")], "bytes"),
            timeseries("Container disk", "Filesystem use: the ten largest containers.",
                       [(recorded(settings, "name:container_fs_usage_bytes:topk10"), "{{name}}")], "bytes"),
            timeseries("Container network", "Bytes per second received (+) and sent (-): the ten busiest "
                       "containers each way.", [
                (recorded(settings, "name:container_network_receive_bytes:topk10_rate${window}"), "{{name}} in"),
                ("-" + recorded(settings, "name:container_network_transmit_bytes:topk10_rate${window}"), "{{name}} out"),
            ], "Bps"),
        ]
    if not panels:
        return None
    return dashboard("containers-hosts", "Containers and hosts", "Platform",
                     "CPU, memory, disk and network: the ten hosts (node-exporter) and the ten containers (cAdvisor) "
                     "using the most of each, from recording rules (rates over 5 minutes).", panels)


def databases(settings: Settings) -> Dashboard | None:
    exporters = settings.exporters
    panels: list[dict] = []
    if exporters.postgres.enabled:
        hits = f"sum(rate(pg_stat_database_blks_hit[{RATE}]))"
        panels += [
            timeseries("PostgreSQL connections", "Connections in use against the server's limit.", [
                ("sum(pg_stat_database_numbackends)", "in use"), ("max(pg_settings_max_connections)", "max"),
            ]),
            timeseries("PostgreSQL transactions", "Commits and rollbacks per second.", [
                (f"sum(rate(pg_stat_database_xact_commit[{RATE}]))", "commits"),
                (f"sum(rate(pg_stat_database_xact_rollback[{RATE}]))", "rollbacks"),
            ], "ops"),
            timeseries("PostgreSQL database size", "Size of each database.", [("pg_database_size_bytes", "{{datname}}")], "bytes"),
            timeseries("PostgreSQL tuple operations", "Rows fetched, inserted, updated and deleted per second.", [
                (f"sum(rate(pg_stat_database_tup_{op}[{RATE}]))", op) for op in ("fetched", "inserted", "updated", "deleted")
            ], "ops"),
            stat("PostgreSQL cache hit ratio", "Blocks read from shared buffers rather than disk.",
                 [(f"{hits} / ({hits} + sum(rate(pg_stat_database_blks_read[{RATE}])))", "")], "percentunit"),
        ]
    if exporters.redis.enabled:
        hits = f"sum(rate(redis_keyspace_hits_total[{RATE}]))"
        panels += [
            timeseries("Redis clients", "Connected clients.", [("sum(redis_connected_clients)", "clients")]),
            timeseries("Redis memory", "Memory used against the configured maximum.", [
                ("sum(redis_memory_used_bytes)", "used"), ("sum(redis_memory_max_bytes)", "max"),
            ], "bytes"),
            timeseries("Redis commands", "Commands processed per second.",
                       [(f"sum(rate(redis_commands_processed_total[{RATE}]))", "commands")], "ops"),
            stat("Redis keyspace hit rate", "Lookups that found their key.",
                 [(f"{hits} / ({hits} + sum(rate(redis_keyspace_misses_total[{RATE}])))", "")], "percentunit"),
            timeseries("Redis keys", "Keys per database.", [("sum by (db) (redis_db_keys)", "{{db}}")]),
            timeseries("Redis evictions", "Keys evicted per second for lack of memory.",
                       [(f"sum(rate(redis_evicted_keys_total[{RATE}]))", "evicted")], "ops"),
        ]
    if not panels:
        return None
    return dashboard("databases", "Databases", "Databases", "PostgreSQL and Redis, as the stack's exporters see them.", panels)


# Per GPU exporter: (metric, unit, scale to the panel's unit) for utilisation, memory, temperature, power.
GPU_METRICS = {
    "dcgm": {
        "utilisation": ("DCGM_FI_DEV_GPU_UTIL", "percent", ""),
        "memory": ("DCGM_FI_DEV_FB_USED", "bytes", " * 1048576"),  # MiB
        "temperature": ("DCGM_FI_DEV_GPU_TEMP", "celsius", ""),
        "power": ("DCGM_FI_DEV_POWER_USAGE", "watt", ""),
        # Profiling counters: how busy the GPU really is (GPU_UTIL only says a kernel ran).
        "SM activity": ("DCGM_FI_PROF_SM_ACTIVE", "percentunit", ""),
        "tensor core activity": ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "percentunit", ""),
    },
    "nvidia_smi": {
        "utilisation": ("nvidia_smi_utilization_gpu_ratio", "percentunit", ""),
        "memory": ("nvidia_smi_memory_used_bytes", "bytes", ""),
        "temperature": ("nvidia_smi_temperature_gpu", "celsius", ""),
        "power": ("nvidia_smi_power_draw_watts", "watt", ""),
    },
}


def gpu_and_ml(settings: Settings) -> Dashboard:
    """GPU panels where the stack runs a GPU exporter; model drift (application metrics) always."""
    gpu = settings.exporters.gpu
    panels = []
    if gpu.enabled:
        legend = "{{instance}} GPU {{gpu}}" if gpu.exporter == "dcgm" else "{{instance}} {{uuid}}"
        if gpu.exporter == "dcgm" and settings.platform == "kubernetes":
            # The exporter's kubernetes mode labels each GPU with the pod that holds it.
            legend += " {{namespace}}/{{pod}}"
        panels = [
            timeseries(f"GPU {what}", f"{what[0].upper()}{what[1:]} per GPU ({gpu.exporter} exporter).",
                       [(f"{metric}{scale}", legend)], unit)
            for what, (metric, unit, scale) in GPU_METRICS[gpu.exporter].items()
        ]
    panels.append(timeseries("Model drift", "Drift score per deployed model (ml_model_drift_score).",
                             [("max by (model) (ml_model_drift_score)", "{{model}}")], width=24))
    return dashboard("gpu-ml", "GPU and ML", "GPU & ML", "GPU utilisation, memory, temperature and power, and model drift.", panels)


def llm_and_rag(settings: Settings) -> Dashboard:
    def ratio(hits, requests):
        return f"sum(rate({hits}[{RATE}])) / sum(rate({requests}[{RATE}]))"

    return dashboard("llm-rag", "LLM and RAG", "LLM & RAG", "Model calls, tokens, cost, caching and retrieval.", [
        timeseries("LLM requests by model", "Requests per second.",
                   [(f"sum by (model) (rate(llm_requests_total[{RATE}]))", "{{model}}")], "reqps"),
        timeseries("LLM latency p95 by model", "95th percentile of call duration.",
                   [(_quantile(0.95, "llm_request_duration_seconds_bucket", "model"), "{{model}}")], "s"),
        timeseries("Tokens", "Tokens per second by model and type (prompt, completion).",
                   [(f"sum by (model, type) (rate(llm_tokens_total[{RATE}]))", "{{model}} {{type}}")]),
        timeseries("Cost per hour", "Spend in US dollars per hour, by model.",
                   [(f"sum by (model) (rate(llm_cost_usd_total[{RATE}])) * 3600", "{{model}}")], "currencyUSD"),
        stat("LLM cache hit rate", "Calls answered from the cache.", [(ratio("llm_cache_hits_total", "llm_cache_requests_total"), "")], "percentunit"),
        stat("Retrieval cache hit rate", "Retrievals answered from the cache.", [(ratio("rag_cache_hits_total", "rag_cache_requests_total"), "")], "percentunit"),
        timeseries("Retrieval latency", "p50 and p95 of retrieval duration.", [
            (_quantile(0.5, "rag_retrieval_duration_seconds_bucket"), "p50"),
            (_quantile(0.95, "rag_retrieval_duration_seconds_bucket"), "p95"),
        ], "s"),
        timeseries("Similarity scores", "Median and 10th percentile of the retrieved documents' similarity.", [
            (_quantile(0.5, "rag_similarity_score_bucket"), "median"),
            (_quantile(0.1, "rag_similarity_score_bucket"), "p10"),
        ]),
    ], tags=("llm",))


def log_overview(settings: Settings) -> Dashboard:
    every = '{service_name=~".+"}'
    return dashboard("logs", "Logs", "Applications",
                     "Log volume by service and level, and error lines; a trace_id links a line to its trace in Jaeger.", [
        timeseries("Log volume by service", "Lines per interval.",
                   [(f"sum by (service_name) (count_over_time({every}[$__auto]))", "{{service_name}}")], datasource=LOKI),
        # detected_level, not the shippers' level label: Loki sets it on every line, from the
        # shipper's label or from the OTLP severity, so lines sent over OTLP count too.
        timeseries("Log volume by level", "Lines per interval.",
                   [(f"sum by (detected_level) (count_over_time({every}[$__auto]))", "{{detected_level}}")],
                   datasource=LOKI),
        logs("Error lines", "Lines logged at level error; open a line's trace_id to see its trace.",
             f'{every} | detected_level="error"'),
    ], tags=("logs",))


def observability_stack(settings: Settings) -> Dashboard:
    def rate(metric, selector="", by=""):
        group = f" by ({by})" if by else ""
        return f"sum{group} (rate({metric}{selector}[{RATE}]))"

    return dashboard("observability-stack", "Observability stack", "Platform",
                     "Prometheus, Alertmanager, Loki, the OpenTelemetry Collector and Jaeger watching themselves.", [
        timeseries("Targets up by job", "Scrape targets answering, per job.", [("sum by (job) (up)", "{{job}}")]),
        timeseries("Prometheus head series", "Series in memory.", [("prometheus_tsdb_head_series", "{{instance}}")]),
        timeseries("Rule evaluation failures", "Failed rule evaluations per second.",
                   [(rate("prometheus_rule_evaluation_failures_total", by="instance"), "{{instance}}")], "ops"),
        timeseries("Notifications dropped", "Alerts Prometheus could not hand to Alertmanager.",
                   [(rate("prometheus_notifications_dropped_total", by="instance"), "{{instance}}")], "ops"),
        timeseries("Alertmanager notifications failed", "Failed notifications per second, by integration.",
                   [(rate("alertmanager_notifications_failed_total", by="integration"), "{{integration}}")], "ops"),
        # max, not sum: every replica of a cluster holds every alert.
        timeseries("Active alerts", "Alerts held by Alertmanager, by state.", [("max by (state) (alertmanager_alerts)", "{{state}}")]),
        timeseries("Loki lines received", "Log lines ingested per second.", [(rate("loki_distributor_lines_received_total"), "lines")], "ops"),
        timeseries("Loki request errors", "Loki requests answered with a 5xx status.",
                   [(rate("loki_request_duration_seconds_count", '{status_code=~"5.."}', "route"), "{{route}}")], "reqps"),
        # Where the collector runs as two tiers, every span crosses both: counted at the first.
        timeseries("Collector spans accepted and refused", "Spans per second at the collector's receivers "
                   "(the gateways', where it runs as two tiers).", [
            (rate("otelcol_receiver_accepted_spans", '{job="otel-collector", component!="sampler"}'), "accepted"),
            (rate("otelcol_receiver_refused_spans", '{job="otel-collector", component!="sampler"}'), "refused"),
        ], "ops"),
        timeseries("Collector export failures", "Spans, log records and metric points the collector failed to send.", [
            (rate("otelcol_exporter_send_failed_spans"), "spans"),
            (rate("otelcol_exporter_send_failed_log_records"), "log records"),
            (rate("otelcol_exporter_send_failed_metric_points"), "metric points"),
        ], "ops"),
        timeseries("Jaeger spans received", "Spans per second received by Jaeger.",
                   [(rate("otelcol_receiver_accepted_spans", '{job="jaeger"}'), "spans")], "ops", width=24),
    ], tags=("meta",))


def kubernetes(settings: Settings) -> Dashboard | None:
    # Its own module, for its size; bound at call time, since it builds on this module's helpers.
    from components.grafana import kubernetes_dashboard

    return kubernetes_dashboard.kubernetes(settings)


def service_level_objectives(settings: Settings) -> Dashboard | None:
    # Its own module, like the Kubernetes dashboard's.
    from components.grafana import slo_dashboard

    return slo_dashboard.slo_dashboard(settings)


BUILT_IN = [system_overview, api_performance, containers_and_hosts, databases, gpu_and_ml, llm_and_rag,
            log_overview, observability_stack, kubernetes, service_level_objectives]


# --- the user's own dashboards --------------------------------------------------------------------
# Files as Grafana exports them, plain or "for sharing externally". The program checks what makes
# a dashboard work in this stack (JSON, uid and title as Grafana takes them, queries that parse,
# datasources that resolve) and stops where one cannot; where a panel would only stay empty it
# warns. The house style of the built-in dashboards above is not asked of them.

# Grafana's dashboard save (BuildSaveDashboardCommand, pkg/services/dashboards/service) takes a uid
# of letters, digits, '-' and '_' (util.IsValidShortUID) and at most 40 characters
# (util.MaxUIDLength, pkg/util/shortid_generator.go); a title that is not empty once trimmed, and
# at most 5000 bytes long.
UID = re.compile(r"[A-Za-z0-9_-]{1,40}")
MAX_TITLE_BYTES = 5000
# A template variable reference in each form Grafana interpolates (variableRegex,
# public/app/features/variables/utils.ts): $name, [[name]] or [[name:format]], ${name},
# ${name.path} or ${name:format}.
VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
# Datasources every Grafana has, by uid (their uid is their name where they have none): "-- Grafana
# --" (pkg/tsdb/grafanads, uid grafana), "-- Mixed --", "-- Dashboard --", and server-side
# expressions (__expr__, formerly -100).
BUILT_IN_DATASOURCES = {
    "grafana": "grafana", "-- Grafana --": "grafana", "-- Mixed --": "mixed", "-- Dashboard --": "dashboard",
    "__expr__": "__expr__", "-100": "__expr__",
}
# Grafana's import of an "Export for sharing externally" (dash_template_evaluator.go,
# pkg/services/dashboardimport/utils) replaces each ${NAME} of an __inputs entry in every string
# value; the export's own keys are no part of the dashboard it saves.
INPUT_REFERENCE = re.compile(r"\$\{.+?\}")
EXPORT_KEYS = ("__inputs", "__requires", "__elements")
# Grafana's global variables a query may use, by what they stand for.
# (Grafana's documentation, "Global variables"; $__auto is the Loki datasource's.)
DURATION_VARIABLES = frozenset({"__interval", "__rate_interval", "__range", "__auto"})
NUMBER_VARIABLES = frozenset({"__interval_ms", "__rate_interval_ms", "__range_s", "__range_ms", "__from", "__to"})
GLOBAL_VARIABLES = DURATION_VARIABLES | NUMBER_VARIABLES | {
    "__dashboard", "__name", "__org", "__user", "__timezone", "__timeFilter", "__all_variables", "__url_time_range"}
# Stands in for a variable where PromQL takes a name; never a metric anything produces.
PLACEHOLDER = "__grafana_variable__"
# A LogQL label matcher: name, operator and a "quoted" or `raw` value.
_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|`[^`]*`)\s*(?:,|$)')


@dataclass(frozen=True)
class Datasources:
    """The datasources a dashboard in this stack can reach: the stack's own (components/grafana/content.py)."""

    by_key: dict  # uid or name -> type
    uid_of_type: dict  # type (plugin id) -> uid
    default: str  # type of the default datasource

    @property
    def types(self) -> list[str]:
        return sorted(self.uid_of_type)


def stack_datasources() -> Datasources:
    from components.grafana import content  # content imports this module: bound at call time

    listed = content.datasources(content.Endpoints("", "", "", ("",)))
    by_key = {key: d["type"] for d in listed for key in (d["uid"], d["name"])}
    default = next(d["type"] for d in listed if d["is_default"])
    return Datasources(by_key, {d["type"]: d["uid"] for d in listed}, default)


def _items(value) -> list:
    return value if isinstance(value, list) else []


def _name(match: re.Match) -> str:
    return match.group(1) or match.group(2) or match.group(4)


def fill_variables(expr: str, known: set[str], bare: str = PLACEHOLDER) -> str:
    """`expr` with each variable Grafana would interpolate replaced by a stand-in of the kind its
    place takes: a word inside quotes, a duration inside [...] or after offset, a number after @,
    and `bare` elsewhere. A name the dashboard does not define is left as it is, as Grafana does."""
    out: list[str] = []
    i, quote, depth = 0, "", 0
    while i < len(expr):
        c = expr[i]
        match = VARIABLE.match(expr, i) if c in "$[" else None
        if match and (_name(match) in known or _name(match) in GLOBAL_VARIABLES):
            name, before, after = _name(match), "".join(out).rstrip(), expr[match.end():match.end() + 1]
            if quote:
                stand_in = "x"
            elif depth:
                stand_in = "300" if after.isalpha() else "5m"  # [${__range_s}s]
            elif re.search(r"\boffset\s*-?$", before):
                stand_in = "5m"
            elif before.endswith("@"):
                stand_in = "1700000000"
            elif name in NUMBER_VARIABLES:
                stand_in = "300"
            elif name in DURATION_VARIABLES:
                stand_in = "5m"
            else:
                stand_in = bare
            out.append(stand_in)
            i = match.end()
            continue
        if quote:
            if c == "\\" and quote != "`":
                out.append(expr[i:i + 2])
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
        elif c in "[]":
            depth += 1 if c == "[" else -1
        out.append(c)
        i += 1
    return "".join(out)


def promql_ready(expr: str, known: set[str]) -> tuple[Optional[str], Optional[str]]:
    """(problem, expression as Prometheus would get it): a variable outside quotes and brackets
    may stand for a name or for a number, so both are tried."""
    first = None
    for bare in (PLACEHOLDER, "1"):
        ready = fill_variables(expr, known, bare)
        problem = grammar.promql_problem(ready)
        if problem is None:
            return None, ready
        first = first or problem
    undefined = [n for n in sorted({_name(m) for m in VARIABLE.finditer(expr)} - known - GLOBAL_VARIABLES) if not n.isdigit()]
    hint = f" ({', '.join('$' + n for n in undefined)}: no such variable on this dashboard)" if undefined else ""
    return f"{first}{hint}", None


def _selectors(expr: str) -> list[str]:
    """The bodies of the {...} outside quoted strings: LogQL's stream selectors."""
    found, i, quote = [], 0, ""
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"`":
            quote = c
        elif c == "{":
            start, i = i + 1, i + 1
            while i < len(expr) and expr[i] != "}":
                if expr[i] in "\"`":
                    close = expr[i]
                    i += 1
                    while i < len(expr) and expr[i] != close:
                        i += 2 if expr[i] == "\\" and close == '"' else 1
                i += 1
            found.append(expr[start:i])
        i += 1
    return found


def _matches_empty(op: str, quoted: str) -> bool:
    value = quoted[1:-1]
    if quoted[0] == '"':
        value = bytes(value, "utf-8").decode("unicode_escape", errors="replace")
    if op in ("=", "!="):
        return (value == "") == (op == "=")
    try:
        empty = re.fullmatch(value, "") is not None
    except re.error:
        return False
    return empty == (op == "=~")


def logql_problem(expr: str) -> Optional[str]:
    """Why Loki would refuse a query for its stream selectors, or None. Loki (v3.7.6,
    validateMatchers in pkg/logql/syntax/parser.go) wants in each selector at least one matcher
    that the empty value does not satisfy."""
    selectors = _selectors(expr)
    if not selectors:
        return 'LogQL has no stream selector (for example {service_name="checkout"} |= "error")'
    for body in selectors:
        matchers, at = [], 0
        for match in _MATCHER.finditer(body):
            if match.start() != at:
                break
            matchers.append((match.group(2), match.group(3)))
            at = match.end()
        if at != len(body) or not body.strip():
            return f"{{{body}}} is not a LogQL stream selector (for example {{service_name=\"checkout\"}})"
        if all(_matches_empty(op, value) for op, value in matchers):
            return (f"{{{body}}} selects every stream: Loki wants a matcher the empty value does not satisfy "
                    '(for example app=~".+", not app=~".*")')
    return None


def _panel_name(panel, index: int, row: str = "") -> str:
    if not isinstance(panel, dict):
        return f"{row}panel #{index}"
    title, pid = panel.get("title"), panel.get("id")
    name = f"panel {title!r}" if isinstance(title, str) and title.strip() else "untitled panel"
    return f"{row}{name} ({f'id {pid}' if pid is not None else f'#{index}'})"


def all_panels(model: dict) -> list[tuple[str, object]]:
    """Every panel with the name messages give it: rows' panels (a collapsed row keeps its own)
    and the old schema's rows included."""
    found = []
    for index, panel in enumerate(_items(model.get("panels")), start=1):
        where = _panel_name(panel, index)
        found.append((where, panel))
        if isinstance(panel, dict) and panel.get("type") == "row":
            row = f"row {panel.get('title')!r} / " if isinstance(panel.get("title"), str) else f"row #{index} / "
            found += [(_panel_name(child, j, row), child)
                      for j, child in enumerate(_items(panel.get("panels")), start=1)]
    for r, row in enumerate(_items(model.get("rows")), start=1):
        children = _items(row.get("panels")) if isinstance(row, dict) else []
        found += [(_panel_name(child, j, f"row #{r} / "), child) for j, child in enumerate(children, start=1)]
    return found


class DashboardCheck:
    """What makes one dashboard work in this stack: its datasource references resolve, its PromQL
    parses, its LogQL selects streams. `problems` stop the program; `promql` feeds the warning
    about metrics nothing produces; `library_panels` names panels Grafana must find elsewhere."""

    def __init__(self, model: dict, stack: Optional[Datasources] = None):
        self.stack = stack or stack_datasources()
        self.problems: list[str] = []
        self.promql: list[tuple[str, str]] = []  # (where, expression as Prometheus gets it)
        self.library_panels: list[str] = []
        templating = model.get("templating")
        listed = _items(templating.get("list")) if isinstance(templating, dict) else []
        self.variables = {v["name"]: v for v in listed if isinstance(v, dict) and isinstance(v.get("name"), str)}
        self.known = set(self.variables)
        for key in ("panels", "rows"):
            if model.get(key) is not None and not isinstance(model[key], list):
                self.problems.append(f"{key} must be a list of panels")
        for name, variable in self.variables.items():
            self.variable(name, variable)
        annotations = model.get("annotations")
        for index, annotation in enumerate(_items(annotations.get("list") if isinstance(annotations, dict) else None), 1):
            self.annotation(index, annotation)
        for where, panel in all_panels(model):
            self.panel(where, panel)

    def resolve(self, ref) -> tuple[Optional[str], Optional[str]]:
        """(type, problem): the type of datasource a reference reaches, or why it reaches none.
        As Grafana's datasource service: no reference is the default; a type alone, the first of
        that type; a variable, the datasources it lists; else a uid or a name."""
        stack = self.stack
        uid, kind = (ref.get("uid"), ref.get("type")) if isinstance(ref, dict) else (ref, None)
        if uid is None or uid == "default":
            if kind is None or kind in stack.uid_of_type:
                return kind or stack.default, None
            if kind in ("__expr__", "datasource", "grafana"):
                return ("__expr__" if kind == "__expr__" else "grafana"), None
            return None, f"asks for a datasource of type {kind!r}; the stack has {', '.join(stack.types)}"
        if not isinstance(uid, str):
            return None, f"datasource {uid!r} is not a uid or a name"
        if uid in BUILT_IN_DATASOURCES or kind == "__expr__":
            return BUILT_IN_DATASOURCES.get(uid, "__expr__"), None
        match = VARIABLE.fullmatch(uid)
        if match:
            variable = self.variables.get(_name(match))
            if variable is None:
                hint = " (an __inputs placeholder that no __inputs entry fills)" if uid.startswith("${") else ""
                return None, (f"datasource {uid} names a variable the dashboard does not define{hint}; define a "
                              f"datasource variable of that name, or use one of the stack's uids ({', '.join(stack.uid_of_type.values())})")
            if variable.get("type") != "datasource":
                return None, f"datasource {uid} names variable {_name(match)!r}, which is not a datasource variable"
            query = variable.get("query")
            return (query if isinstance(query, str) else None), None
        if uid in stack.by_key:
            return stack.by_key[uid], None
        return None, (f"datasource {uid!r} is none of the stack's ({', '.join(stack.uid_of_type.values())}): "
                      'name one of those uids, for example {"type": "prometheus", "uid": "prometheus"}, '
                      "or a datasource variable of the dashboard")

    def variable(self, name: str, variable: dict) -> None:
        where = f"variable {name!r}"
        if variable.get("type") == "datasource":
            query = variable.get("query")
            if isinstance(query, str) and query not in self.stack.uid_of_type and not VARIABLE.search(query):
                self.problems.append(f"{where} lists datasources of type {query!r}, and the stack has none "
                                     f"(it has {', '.join(self.stack.types)})")
        elif variable.get("type") in ("query", "adhoc"):
            _, problem = self.resolve(variable.get("datasource"))
            if problem:
                self.problems.append(f"{where}: {problem}")

    def annotation(self, index: int, annotation) -> None:
        if not isinstance(annotation, dict) or annotation.get("builtIn"):
            return  # Grafana's own annotations
        name = annotation.get("name")
        where = f"annotation {name!r}" if isinstance(name, str) else f"annotation #{index}"
        kind, problem = self.resolve(annotation.get("datasource"))
        if problem:
            self.problems.append(f"{where}: {problem}")
        elif isinstance(annotation.get("expr"), str) and annotation["expr"]:
            self.query(where, kind, annotation["expr"])

    def panel(self, where: str, panel) -> None:
        if not isinstance(panel, dict):
            self.problems.append(f"{where} is not a JSON object")
            return
        if isinstance(panel.get("libraryPanel"), dict):
            self.library_panels.append(where)
            return
        targets = panel.get("targets")
        if targets is None or targets == [] or panel.get("type") == "row":
            return  # a text panel, a panel with nothing to query; a row runs no query, whatever it carries
        if not isinstance(targets, list):
            self.problems.append(f"{where}: targets must be a list of queries")
            return
        panel_kind, problem = self.resolve(panel.get("datasource"))
        if problem:
            self.problems.append(f"{where}: {problem}")
        for index, target in enumerate(targets, start=1):
            if not isinstance(target, dict):
                self.problems.append(f"{where}, query #{index} is not a JSON object")
                continue
            ref_id = target.get("refId")
            query_where = f"{where}, query {ref_id if isinstance(ref_id, str) and ref_id else f'#{index}'}"
            if target.get("datasource") is not None:
                kind, problem = self.resolve(target["datasource"])
                if problem:
                    self.problems.append(f"{query_where}: {problem}")
                    continue
            else:
                kind = self.stack.default if panel_kind == "mixed" else panel_kind
            expr = target.get("expr")
            if kind in ("prometheus", "loki") and expr not in (None, ""):
                if not isinstance(expr, str):
                    self.problems.append(f"{query_where}: expr must be a string")
                else:
                    self.query(query_where, kind, expr)

    def query(self, where: str, kind: Optional[str], expr: str) -> None:
        if kind == "prometheus":
            problem, ready = promql_ready(expr, self.known)
            if ready is not None:
                self.promql.append((where, ready))
        elif kind == "loki":
            problem = logql_problem(fill_variables(expr, self.known))
        else:
            return
        if problem:
            self.problems.append(f"{where}: {problem}; the query: {expr}")


def unknown_metrics(check: DashboardCheck, produced: user_rules.Produced) -> list[tuple[str, list[str]]]:
    """(where, why) for each query naming metrics nothing in the stack produces."""
    found = []
    for where, ready in check.promql:
        names = sorted(n for n in grammar.metric_names(ready) if PLACEHOLDER not in n)
        missing = [why for name in names if (why := produced.missing(name))]
        if missing:
            found.append((where, missing))
    return found


def _bind_inputs(model: dict, stack: Datasources) -> tuple[dict, list[str]]:
    """An "Export for sharing externally" as Grafana's import would save it in this stack: each
    datasource input bound to the stack's datasource of its plugin, each constant to its value."""
    inputs = model.get("__inputs")
    if inputs is None:
        return model, []
    if not isinstance(inputs, list):
        return model, ["__inputs must be a list"]
    values, problems = {}, []
    for index, entry in enumerate(inputs, start=1):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            problems.append(f"__inputs entry #{index} has no name")
            continue
        kind, label = entry.get("type"), f"__inputs entry {name!r}"
        if kind == "datasource":
            plugin = entry.get("pluginId")
            if plugin == "__expr__":
                values[name] = "__expr__"
            elif plugin in stack.uid_of_type:
                values[name] = stack.uid_of_type[plugin]
            else:
                problems.append(f"{label} asks for a {plugin!r} datasource; the stack has {', '.join(stack.types)} "
                                "(point the panels that use it at one of those, or remove them)")
        elif kind == "constant":
            value = entry.get("value")
            if isinstance(value, bool) or value is None or value == "" or not isinstance(value, (str, int, float)):
                problems.append(f'{label} is a constant with no value: give it one (for example "value": "production")')
            else:
                values[name] = str(value)
        else:
            problems.append(f"{label} has type {kind!r}; Grafana's import fills datasource and constant inputs only")
    if problems:
        return model, problems

    def bind(value):
        if isinstance(value, str):
            return INPUT_REFERENCE.sub(lambda m: values.get(m.group(0)[2:-1], m.group(0)), value)
        if isinstance(value, list):
            return [bind(v) for v in value]
        if isinstance(value, dict):
            return {k: bind(v) for k, v in value.items() if k != "__inputs"}
        return value

    return bind(model), []


def _inline_library_panels(model: dict) -> None:
    """A library panel an external export carries in __elements becomes a plain panel in its place:
    the stack's Grafana has no library panel of that uid, and a dashboard save does not create one."""
    elements = model.get("__elements")
    if not isinstance(elements, dict):
        return
    for holder in [model, *(p for p in _items(model.get("panels")) if isinstance(p, dict) and p.get("type") == "row")]:
        panels = _items(holder.get("panels"))
        for index, panel in enumerate(panels):
            library = panel.get("libraryPanel") if isinstance(panel, dict) else None
            element = elements.get(library.get("uid")) if isinstance(library, dict) else None
            if isinstance(element, dict) and isinstance(element.get("model"), dict):
                placed = {k: panel[k] for k in ("id", "gridPos") if k in panel}
                panels[index] = {**{k: v for k, v in element["model"].items() if k != "libraryPanel"}, **placed}


def _load(path: Path, where: str, stack: Datasources) -> tuple[Optional[dict], list[str]]:
    """The dashboard a file holds, as the stack deploys it, and the file's problems."""
    try:
        model = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        return None, [f"{where}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"]
    if not isinstance(model, dict):
        return None, [f"{where}: a dashboard export is a JSON object, not a {type(model).__name__}"]
    if "spec" in model and "kind" in model and "uid" not in model:
        return None, [f"{where}: this is a Grafana {model.get('kind')!r} resource, not a dashboard's JSON model; "
                      "export the dashboard as classic JSON"]
    model, problems = _bind_inputs(model, stack)
    if problems:
        return None, [f"{where}: {p}" for p in problems]
    _inline_library_panels(model)
    for key in EXPORT_KEYS:
        model.pop(key, None)
    # Exported dashboards carry an id from the Grafana they came from; Grafana assigns its own.
    model.pop("id", None)
    uid, title = model.get("uid"), model.get("title")
    if not isinstance(uid, str) or not uid or not isinstance(title, str) or not title.strip():
        return None, [f'{where}: a dashboard needs a "uid" and a "title" (for example "uid": "checkout-latency", '
                      '"title": "Checkout latency")']
    if not UID.fullmatch(uid):
        problems.append(f"{where}: uid {uid!r} is not one Grafana takes: 1 to 40 letters, digits, '-' and '_' "
                        "(for example checkout-latency)")
    if len(title.strip().encode()) > MAX_TITLE_BYTES:
        problems.append(f"{where}: the title is longer than Grafana's {MAX_TITLE_BYTES} bytes")
    return model, problems


def user_dashboards(settings: Settings) -> list[Dashboard]:
    """Exported dashboards under configs/grafana/dashboards/<folder uid>/*.json, each checked; every
    problem in every file is reported at once."""
    by_uid = {folder_uid(title): title for title in settings.grafana.folders}
    stack = stack_datasources()
    produced = user_rules.produced_metrics(settings)
    found, problems, warnings = [], [], []
    for path in sorted(USER_DASHBOARDS.glob("*/*.json")):
        where = path.relative_to(USER_DASHBOARDS.parent.parent.parent)
        folder = by_uid.get(path.parent.name)
        if folder is None:
            problems.append(f"{where}: folder {path.parent.name!r} is not one of grafana.folders ({', '.join(sorted(by_uid))})")
            continue
        model, file_problems = _load(path, str(where), stack)
        problems += file_problems
        if model is None:
            continue
        check = DashboardCheck(model, stack)
        problems += [f"{where}: {p}" for p in check.problems]
        warnings += [f"{where}: {w} is a library panel; it shows only where Grafana already holds a library panel of "
                     "its uid (an export for sharing externally carries its model)" for w in check.library_panels]
        unknown = unknown_metrics(check, produced)
        if unknown:
            # One warning a dashboard: a community dashboard may read dozens of such metrics.
            listing = "; ".join(f"{w}: {', '.join(metrics)}" for w, metrics in unknown)
            warnings.append(f"{where}: {len(unknown)} queries read metrics nothing this stack deploys produces, by "
                            f"configs/metrics/catalog.yml; unless something else does, their panels stay empty: {listing}")
        found.append(Dashboard(model["uid"], folder, model))
    if problems:
        raise ValueError(user_rules.problem_list("dashboards under configs/grafana/dashboards/ that cannot work", problems))
    for warning in warnings:
        pulumi.log.warn(warning)
    return found


def render(settings: Settings) -> list[Dashboard]:
    """Every dashboard the stack ships, in a folder the stack has; uids unique."""
    found = [d for d in (build(settings) for build in BUILT_IN) if d is not None]
    found += user_dashboards(settings)
    for d in found:
        if d.folder not in settings.grafana.folders:
            raise ValueError(f"dashboard {d.uid!r} belongs in folder {d.folder!r}, which grafana.folders does not list")
    uids = [d.uid for d in found]
    duplicates = sorted({uid for uid in uids if uids.count(uid) > 1})
    if duplicates:
        raise ValueError(f"dashboard uids used twice: {', '.join(duplicates)}")
    return found
