"""The dashboards every stack ships, as classic Grafana dashboard JSON, and the user's own.

Each built-in dashboard is assembled from what the stack deploys: a panel appears only where
something produces its metrics (configs/metrics/catalog.yml says what produces what). Every panel
reads its datasource from a template variable, so no dashboard names a datasource uid.
User dashboards: exported JSON files under configs/grafana/dashboards/<folder>/, where <folder> is
the folder's uid (its title in lower case, words joined by '-', e.g. gpu-ml for "GPU & ML").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from components.settings import Settings, folder_uid

USER_DASHBOARDS = Path(__file__).parent.parent / "configs" / "grafana" / "dashboards"
PROMETHEUS = {"type": "prometheus", "uid": "${datasource}"}
LOKI = {"type": "loki", "uid": "${logs}"}
RATE = "$__rate_interval"
ERRORS = '{status=~"5.."}'


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
        if "histogram_quantile" in expr:
            # Latency panels show exemplars: a dot on the graph opens its trace in Jaeger.
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


def dashboard(uid: str, title: str, folder: str, description: str, panels: list[dict], tags=()) -> Dashboard:
    variables = [_variable("datasource", "Metrics", "prometheus")]
    if any(p["datasource"] == LOKI for p in panels):
        variables.append(_variable("logs", "Logs", "loki"))
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
        "templating": {"list": variables},
        "annotations": {"list": []},
        "panels": _layout(panels),
    })


def _http_rate(selector: str = "", by: str = "job") -> str:
    return f"sum by ({by}) (rate(http_requests_total{selector}[{RATE}]))"


def _quantile(q: float, metric: str, by: str = "") -> str:
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({metric}[{RATE}])))"


def system_overview(settings: Settings) -> Dashboard:
    return dashboard("system-overview", "System overview", "Platform",
                     "Health of every scraped service, and the traffic the applications serve.", [
        stat("Targets up", "Scrape targets answering now.", [("sum(up)", "")]),
        stat("Targets down", "Scrape targets that failed their last scrape.", [("count(up == 0) or vector(0)", "")]),
        stat("Request rate", "HTTP requests per second, all services.", [(f"sum(rate(http_requests_total[{RATE}]))", "")], "reqps"),
        stat("Error rate", "Share of HTTP requests answered with a 5xx status.",
             [(f"sum(rate(http_requests_total{ERRORS}[{RATE}])) / sum(rate(http_requests_total[{RATE}]))", "")], "percentunit"),
        timeseries("Service health", "1 when a target answers its scrape, 0 when it does not.",
                   [("min by (job) (up)", "{{job}}")], "bool"),
        timeseries("Request rate by service", "HTTP requests per second.", [(_http_rate(), "{{job}}")], "reqps"),
        timeseries("Error rate by service", "Share of requests answered with a 5xx status.",
                   [(f"{_http_rate(selector=ERRORS)} / {_http_rate()}", "{{job}}")], "percentunit"),
        timeseries("p95 latency by endpoint", "95th percentile of request duration.",
                   [(_quantile(0.95, "http_request_duration_seconds_bucket", "endpoint"), "{{endpoint}}")], "s"),
        timeseries("Uptime", "Time since each process started.", [("time() - process_start_time_seconds", "{{job}}")], "s", width=24),
    ], tags=("overview",))


def api_performance(settings: Settings) -> Dashboard:
    return dashboard("api-performance", "API performance", "Applications",
                     "Request rate, latency and errors by endpoint (http_requests_total, http_request_duration_seconds).", [
        timeseries("Request rate by endpoint", "HTTP requests per second.", [(_http_rate(by="endpoint"), "{{endpoint}}")], "reqps"),
        timeseries("Latency percentiles", "p50, p95 and p99 of request duration.", [
            (_quantile(0.5, "http_request_duration_seconds_bucket"), "p50"),
            (_quantile(0.95, "http_request_duration_seconds_bucket"), "p95"),
            (_quantile(0.99, "http_request_duration_seconds_bucket"), "p99"),
        ], "s"),
        timeseries("Status codes", "Requests per second by HTTP status.", [(_http_rate(by="status"), "{{status}}")], "reqps"),
        timeseries("Error rate", "Share of requests answered with a 5xx status.",
                   [(f"sum(rate(http_requests_total{ERRORS}[{RATE}])) / sum(rate(http_requests_total[{RATE}]))", "errors")], "percentunit"),
        table("Top 10 slowest endpoints", "Endpoints by p95 request duration.",
              [(f"topk(10, {_quantile(0.95, 'http_request_duration_seconds_bucket', 'endpoint')})", "{{endpoint}}")], "s"),
        timeseries("Requests in progress", "Requests being served right now.",
                   [("sum by (job) (http_requests_in_progress)", "{{job}}")]),
    ], tags=("http",))


def containers_and_hosts(settings: Settings) -> Dashboard | None:
    exporters = settings.exporters
    panels: list[dict] = []
    if exporters.node.enabled:
        fs = 'fstype!~"tmpfs|overlay|squashfs"'
        panels += [
            timeseries("Host CPU", "Share of CPU time not idle, per host.",
                       [(f'1 - avg by (instance) (rate(node_cpu_seconds_total{{mode="idle"}}[{RATE}]))', "{{instance}}")], "percentunit"),
            timeseries("Host memory", "Share of memory in use, per host.",
                       [("1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", "{{instance}}")], "percentunit"),
            timeseries("Host disk", "Share of each filesystem in use.",
                       [(f"1 - node_filesystem_avail_bytes{{{fs}}} / node_filesystem_size_bytes{{{fs}}}", "{{instance}} {{mountpoint}}")], "percentunit"),
            timeseries("Host network", "Bytes per second received (+) and sent (-), per host.", [
                (f'sum by (instance) (rate(node_network_receive_bytes_total{{device!="lo"}}[{RATE}]))', "{{instance}} in"),
                (f'-sum by (instance) (rate(node_network_transmit_bytes_total{{device!="lo"}}[{RATE}]))', "{{instance}} out"),
            ], "Bps"),
        ]
    if exporters.cadvisor.enabled:
        named = 'name!=""'
        panels += [
            timeseries("Container CPU", "CPU cores used, per container.",
                       [(f"sum by (name) (rate(container_cpu_usage_seconds_total{{{named}}}[{RATE}]))", "{{name}}")], "short"),
            timeseries("Container memory", "Working set, per container.",
                       [(f"sum by (name) (container_memory_working_set_bytes{{{named}}})", "{{name}}")], "bytes"),
            timeseries("Container disk", "Filesystem use, per container.",
                       [(f"sum by (name) (container_fs_usage_bytes{{{named}}})", "{{name}}")], "bytes"),
            timeseries("Container network", "Bytes per second received (+) and sent (-), per container.", [
                (f"sum by (name) (rate(container_network_receive_bytes_total{{{named}}}[{RATE}]))", "{{name}} in"),
                (f"-sum by (name) (rate(container_network_transmit_bytes_total{{{named}}}[{RATE}]))", "{{name}} out"),
            ], "Bps"),
        ]
    if not panels:
        return None
    return dashboard("containers-hosts", "Containers and hosts", "Platform",
                     "CPU, memory, disk and network by host (node-exporter) and container (cAdvisor).", panels)


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
        timeseries("Active alerts", "Alerts held by Alertmanager, by state.", [("sum by (state) (alertmanager_alerts)", "{{state}}")]),
        timeseries("Loki lines received", "Log lines ingested per second.", [(rate("loki_distributor_lines_received_total"), "lines")], "ops"),
        timeseries("Loki request errors", "Loki requests answered with a 5xx status.",
                   [(rate("loki_request_duration_seconds_count", '{status_code=~"5.."}', "route"), "{{route}}")], "reqps"),
        timeseries("Collector spans accepted and refused", "Spans per second at the collector's receivers.", [
            (rate("otelcol_receiver_accepted_spans", '{job="otel-collector"}'), "accepted"),
            (rate("otelcol_receiver_refused_spans", '{job="otel-collector"}'), "refused"),
        ], "ops"),
        timeseries("Collector export failures", "Spans, log records and metric points the collector failed to send.", [
            (rate("otelcol_exporter_send_failed_spans"), "spans"),
            (rate("otelcol_exporter_send_failed_log_records"), "log records"),
            (rate("otelcol_exporter_send_failed_metric_points"), "metric points"),
        ], "ops"),
        timeseries("Jaeger spans received", "Spans per second received by Jaeger.",
                   [(rate("otelcol_receiver_accepted_spans", '{job="jaeger"}'), "spans")], "ops", width=24),
    ], tags=("meta",))


BUILT_IN = [system_overview, api_performance, containers_and_hosts, databases, gpu_and_ml, llm_and_rag,
            log_overview, observability_stack]


def user_dashboards(folders: list[str]) -> list[Dashboard]:
    """Exported dashboards under configs/grafana/dashboards/<folder uid>/*.json."""
    by_uid = {folder_uid(title): title for title in folders}
    found = []
    for path in sorted(USER_DASHBOARDS.glob("*/*.json")):
        where = path.relative_to(USER_DASHBOARDS.parent.parent.parent)
        folder = by_uid.get(path.parent.name)
        if folder is None:
            raise ValueError(f"{where}: folder {path.parent.name!r} is not one of grafana.folders ({', '.join(sorted(by_uid))})")
        try:
            model = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not valid JSON ({error})") from None
        if not isinstance(model, dict) or not model.get("uid") or not model.get("title"):
            raise ValueError(f"{where}: a dashboard needs a \"uid\" and a \"title\"")
        # Exported dashboards carry an id from the Grafana they came from; Grafana assigns its own.
        model.pop("id", None)
        found.append(Dashboard(model["uid"], folder, model))
    return found


def render(settings: Settings) -> list[Dashboard]:
    """Every dashboard the stack ships, in a folder the stack has; uids unique."""
    found = [d for d in (build(settings) for build in BUILT_IN) if d is not None]
    found += user_dashboards(settings.grafana.folders)
    for d in found:
        if d.folder not in settings.grafana.folders:
            raise ValueError(f"dashboard {d.uid!r} belongs in folder {d.folder!r}, which grafana.folders does not list")
    uids = [d.uid for d in found]
    duplicates = sorted({uid for uid in uids if uids.count(uid) > 1})
    if duplicates:
        raise ValueError(f"dashboard uids used twice: {', '.join(duplicates)}")
    return found
