"""The built-in dashboards' house style, over every built-in dashboard every stack deploys: queries
parse, datasources come from the variables `datasource` and `logs`, every panel has a description
and a unit, rates use $__rate_interval, and every metric is one the catalog lists for something in
the stack (configs/metrics/catalog.yml). The user's own dashboards are held to what makes a
dashboard work, not to this style (tests/grafana/test_user_dashboards.py, with the basics of user
dashboards). Also that rendering is deterministic."""

import itertools
import json
import re

import promql_parser
import pytest
import yaml

from components.alerting import recording_rules
from components.grafana import dashboards, kubernetes_dashboard
from components.settings import parse
from conftest import ROOT, STACKS, container_files, run_program, scrape_jobs, stack_config, stack_secrets
from test_user_dashboards import user_dir, write  # noqa: F401 (user_dir is a fixture)

DASHBOARD = "grafana:oss/dashboard:Dashboard"
CATALOG = yaml.safe_load((ROOT / "configs" / "metrics" / "catalog.yml").read_text())
# A panel names its datasource by one of these variables, of this datasource type.
VARIABLES = {"${datasource}": ("datasource", "prometheus"), "${logs}": ("logs", "loki")}
# Stands in for $__rate_interval when checking rate windows: a duration no query would write.
RATE_SENTINEL = "1h2m3s"
# A LogQL stream selector: braces holding at least one label matcher.
STREAM_SELECTOR = re.compile(r'\{\s*[A-Za-z_][A-Za-z0-9_]*\s*(=~|!~|!=|=)\s*"[^"]*"[^{}]*\}')


# --- helpers ---------------------------------------------------------------------------------------


def deployed(run):
    """The dashboard models a stack run deploys, parsed from each Dashboard's configJson."""
    return [json.loads(r.inputs["configJson"]) for r in run.of_type(DASHBOARD)]


def built_in_uids(stack):
    """The uids of the dashboards the program builds for a stack: the house style is theirs."""
    settings = settings_of(stack)
    return {d.uid for d in (build(settings) for build in dashboards.BUILT_IN) if d is not None}


def panels(model):
    """A dashboard's panels, without its rows: a row holds no query, description or unit."""
    return [p for p in model["panels"] if p["type"] != "row"]


def targets(model):
    for panel in panels(model):
        for target in panel["targets"]:
            yield panel, target


def is_logql(target):
    return target["datasource"]["uid"] == "${logs}"


def promql_targets(models):
    """(where, expr) of every target that is not a LogQL one."""
    return [
        (f"{m['uid']} / {panel['title']} / {target['refId']}", target["expr"])
        for m in models for panel, target in targets(m) if not is_logql(target)
    ]


def promql(expr, rate_interval="5m"):
    """The expression's AST once Grafana's interval variables are replaced by durations."""
    for variable, value in (("$__rate_interval", rate_interval), ("$__interval", "5m"), ("$__range", "5m")):
        expr = expr.replace(variable, value)
    return promql_parser.parse(expr)


def nodes(ast, kind):
    found = []

    def visit(node):
        if isinstance(node, kind):
            found.append(node)

    promql_parser.walk(ast, visit)
    return found


def bad_rate_windows(expr):
    """Arguments of rate(), irate() and increase() that are not a range of [$__rate_interval]."""
    window = promql_parser.parse_duration(RATE_SENTINEL)
    return [
        str(arg)
        for call in nodes(promql(expr, RATE_SENTINEL), promql_parser.Call)
        if call.func.name in ("rate", "irate", "increase")
        for arg in call.args
        if not (isinstance(arg, promql_parser.MatrixSelector) and arg.range == window)
    ]


def metric_names(expr):
    names = set()
    for selector in nodes(promql(expr), promql_parser.VectorSelector):
        by_matcher = [m.value for m in selector.matchers.matchers if m.name == "__name__"]
        names.add(selector.name or (by_matcher or ["<selector without a metric name>"])[0])
    return names


def deployed_producers(run):
    """The catalog's producers a stack run deploys: its services, and the jobs Prometheus scrapes
    of the cluster itself (kubelet, cadvisor, apiserver, coredns: no service of the stack's, but
    each job named after its producer)."""
    return (set(run.outputs["services"]) | set(scrape_jobs(run))) & set(CATALOG)


def produced_metrics(run, stack):
    """Metrics of the catalog's producers this stack deploys, the application contract, the series
    its recording rules record (records.yml), and those the rules of its objectives record, with
    their alerts' ALERTS."""
    producers = {"application"}
    for service in set(run.outputs["services"]) | deployed_producers(run):
        if service == "gpu-exporter":
            service = f"gpu-exporter/{stack_config(stack)['exporters']['gpu']['exporter']}"
        producers.add(service)
    found = {metric for producer in producers for metric in CATALOG.get(producer, [])}
    records = container_files(run, "prometheus")["/etc/prometheus/rules/records.yml"]
    found |= {rule["record"] for group in yaml.safe_load(records)["groups"] for rule in group["rules"]}
    objectives = container_files(run, "prometheus").get("/etc/prometheus/rules/slos.yml")
    if objectives is not None:
        rules = [rule for group in yaml.safe_load(objectives)["groups"] for rule in group["rules"]]
        found |= {rule["record"] for rule in rules if "record" in rule}
        found |= {"ALERTS"} if any("alert" in rule for rule in rules) else set()
    return found


def unknown_metrics(expr, produced):
    return sorted(metric_names(expr) - produced)


def settings_of(stack):
    secrets = stack_secrets(stack)
    values = {**stack_config(stack), **({"secrets": secrets} if secrets else {})}
    return parse(stack, values, {"secrets"} if secrets else set())


@pytest.fixture(scope="module")
def models(stack_runs):
    """The built-in dashboards each stack deploys."""
    return {stack: [m for m in deployed(run) if m["uid"] in built_in_uids(stack)] for stack, run in stack_runs.items()}


@pytest.mark.parametrize("stack", STACKS)
def test_the_house_style_covers_every_built_in_dashboard(models, stack):
    assert {m["uid"] for m in models[stack]} == built_in_uids(stack)
    assert len(models[stack]) >= 7


# --- queries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_promql_query_parses(models, stack):
    queries = promql_targets(models[stack])
    assert len(queries) > 30
    failures = []
    for where, expr in queries:
        try:
            promql(expr)
        except ValueError as error:
            failures.append(f"{where}: {expr}: {error}")
    assert failures == []


def test_the_parse_check_rejects_broken_promql():
    promql("sum(rate(http_requests_total[$__rate_interval]))")
    with pytest.raises(ValueError):
        promql("sum(rate(http_requests_total[$__rate_interval])")
    with pytest.raises(ValueError):
        promql("sum(rate(http_requests_total[$__rate_window]))")


@pytest.mark.parametrize("stack", STACKS)
def test_every_table_panel_shows_each_series_latest_value_once(models, stack):
    """A table shows one row per series, its current value: each query is an instant query
    (`instant`) returned as a table (`format: table`). A range query would give a row per sample."""
    tables = [(m["uid"], p) for m in models[stack] for p in panels(m) if p["type"] == "table"]
    assert len(tables) >= 1
    for uid, panel in tables:
        for target in panel["targets"]:
            assert (target.get("instant"), target.get("format")) == (True, "table"), (uid, panel["title"], target["refId"])


@pytest.mark.parametrize("stack", STACKS)
def test_every_logql_query_selects_a_stream(models, stack):
    logql = [target["expr"] for m in models[stack] for _, target in targets(m) if is_logql(target)]
    assert len(logql) == 3
    assert [expr for expr in logql if not STREAM_SELECTOR.search(expr)] == []


def test_the_stream_selector_check_rejects_a_query_without_one():
    assert STREAM_SELECTOR.search('sum(count_over_time({service_name=~".+"}[5m]))')
    assert not STREAM_SELECTOR.search("sum(count_over_time({}[5m]))")
    assert not STREAM_SELECTOR.search('count_over_time(service_name=".+"[5m])')


# --- datasources -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_panel_and_target_reads_its_datasource_from_a_variable(models, stack):
    for model in models[stack]:
        for panel in panels(model):
            for datasource in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
                assert datasource["uid"] in VARIABLES, (model["uid"], panel["title"], datasource)
                assert datasource["type"] == VARIABLES[datasource["uid"]][1], (model["uid"], panel["title"])


@pytest.mark.parametrize("stack", STACKS)
def test_each_dashboard_defines_the_variables_its_panels_use(models, stack):
    for model in models[stack]:
        defined = {v["name"]: (v["type"], v["query"]) for v in model["templating"]["list"]}
        used = {t["datasource"]["uid"] for _, t in targets(model)} | {p["datasource"]["uid"] for p in panels(model)}
        for uid in used:
            name, kind = VARIABLES[uid]
            assert defined.get(name) == ("datasource", kind), (model["uid"], name)


def test_only_the_logs_dashboard_needs_the_logs_variable(models):
    for stack in STACKS:
        with_logs = {m["uid"] for m in models[stack] if any(v["name"] == "logs" for v in m["templating"]["list"])}
        assert with_logs == {"logs"}


# VariableModel in Grafana's dashboard schema (packages/grafana-schema/src/raw/dashboard/x/
# dashboard_types.gen.ts, at the commit tests/upstream/grafana.json's source.read_at gives for it,
# the file its dashboard_keys and panel_keys come from): the keys Grafana reads of a variable.
VARIABLE_KEYS = {"allValue", "current", "datasource", "description", "hide", "includeAll", "label", "multi", "name",
                 "options", "query", "refresh", "regex", "skipUrlSync", "sort", "type"}


@pytest.mark.parametrize("stack", STACKS)
def test_each_datasource_variable_selects_one_datasource_in_keys_grafana_reads(models, stack):
    """docs/grafana.md, Datasource variables: every panel reads its datasource from the variable, so the
    variable holds one datasource: no "All" option (`includeAll`) and no multiple selection
    (`multi`). Every variable is written under the keys Grafana's VariableModel has, which it would
    otherwise drop."""
    variables = [(m["uid"], v) for m in models[stack] for v in m["templating"]["list"]]
    assert len([v for _, v in variables if v["type"] == "datasource"]) >= 8
    for uid, variable in variables:
        assert set(variable) - VARIABLE_KEYS == set(), (uid, variable["name"])
        if variable["type"] == "datasource":
            assert (variable["includeAll"], variable["multi"]) == (False, False), (uid, variable["name"])


def test_the_level_panels_read_the_level_loki_detects_on_every_line(models):
    """Lines that arrive over OTLP carry their severity as structured metadata, not as the
    shippers' level label: only detected_level covers both."""
    (logs,) = [m for m in models["dev"] if m["uid"] == "logs"]
    exprs = {panel["title"]: [t["expr"] for t in panel["targets"]] for panel in logs["panels"]}
    assert exprs["Log volume by level"] == ['sum by (detected_level) (count_over_time({service_name=~".+"}[$__auto]))']
    assert exprs["Error lines"] == ['{service_name=~".+"} | detected_level="error"']


@pytest.mark.parametrize("stack", STACKS)
def test_every_logs_panel_opens_a_lines_details(models, stack):
    """docs/grafana.md, Logs: the lines at level error are shown "with their details and a link from
    `trace_id` to the trace": the logs panel's `enableLogDetails` (Grafana's logs panelcfg.cue)
    lets a line open to its fields, where the trace_id link is."""
    found = [(m["uid"], p) for m in models[stack] for p in panels(m) if p["type"] == "logs"]
    assert len(found) >= 1
    for uid, panel in found:
        assert panel["options"]["enableLogDetails"] is True, (uid, panel["title"])


# --- identity and descriptions ---------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_dashboard_uids_are_unique_and_everything_is_titled_described_and_unitised(models, stack):
    uids = [m["uid"] for m in models[stack]]
    assert len(uids) == len(set(uids))
    for model in models[stack]:
        assert model["title"] and model["uid"]
        for panel in panels(model):
            assert panel["title"], model["uid"]
            assert panel["description"], (model["uid"], panel["title"])
            assert panel["fieldConfig"]["defaults"]["unit"], (model["uid"], panel["title"])


# --- rate windows ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_rate_window_is_the_rate_interval(models, stack):
    queries = promql_targets(models[stack])
    assert sum("rate(" in expr for _, expr in queries) > 20
    assert {where: bad_rate_windows(expr) for where, expr in queries if bad_rate_windows(expr)} == {}


def test_the_rate_window_check_rejects_fixed_and_other_windows():
    assert bad_rate_windows("sum(rate(http_requests_total[$__rate_interval]))") == []
    (fixed,) = bad_rate_windows("sum(rate(http_requests_total[5m]))")
    assert fixed.endswith("[5m]")
    (interval,) = bad_rate_windows("increase(http_requests_total[$__interval])")
    assert interval.endswith("[5m]")
    assert len(bad_rate_windows("irate(http_requests_total[1m])")) == 1
    # A subquery is no range of $__rate_interval either.
    assert len(bad_rate_windows("rate(rate(http_requests_total[$__rate_interval])[10m:1m])")) == 1


# --- the metric catalog ----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_metric_is_produced_by_something_the_stack_deploys(stack_runs, models, stack):
    produced = produced_metrics(stack_runs[stack], stack)
    queries = promql_targets(models[stack])
    assert {where: unknown_metrics(expr, produced) for where, expr in queries if unknown_metrics(expr, produced)} == {}


def test_the_catalog_check_rejects_metrics_nothing_in_the_stack_produces(stack_runs):
    dev = produced_metrics(stack_runs["dev"], "dev")
    assert unknown_metrics("sum(rate(made_up_requests_total[$__rate_interval]))", dev) == ["made_up_requests_total"]
    # dev runs no GPU exporter; prod runs DCGM, staging nvidia-smi: each has the other's metric wrong.
    assert unknown_metrics("DCGM_FI_DEV_GPU_UTIL", dev) == ["DCGM_FI_DEV_GPU_UTIL"]
    assert unknown_metrics("nvidia_smi_utilization_gpu_ratio", produced_metrics(stack_runs["prod"], "prod")) == [
        "nvidia_smi_utilization_gpu_ratio"
    ]
    assert unknown_metrics("DCGM_FI_DEV_GPU_UTIL", produced_metrics(stack_runs["staging"], "staging")) == [
        "DCGM_FI_DEV_GPU_UTIL"
    ]
    assert unknown_metrics('{__name__="made_up_metric"}', dev) == ["made_up_metric"]
    assert unknown_metrics("sum(up) / http_requests_total", dev) == []


@pytest.mark.parametrize("stack, metric, unit, legend", [
    ("prod", "DCGM_FI_DEV_GPU_UTIL", "percent", "{{instance}} GPU {{gpu}} {{namespace}}/{{pod}}"),
    ("staging", "nvidia_smi_utilization_gpu_ratio", "percentunit", "{{instance}} {{uuid}}"),
])
def test_the_gpu_dashboard_reads_the_stacks_gpu_exporter(models, stack, metric, unit, legend):
    (gpu,) = [m for m in models[stack] if m["uid"] == "gpu-ml"]
    panels = {p["title"]: p for p in gpu["panels"]}
    utilisation = panels["GPU utilisation"]
    assert utilisation["targets"][0]["expr"] == metric
    assert utilisation["targets"][0]["legendFormat"] == legend
    assert utilisation["fieldConfig"]["defaults"]["unit"] == unit
    prefix = metric.split("_")[0]
    names = {name for _, t in targets(gpu) for name in metric_names(t["expr"])}
    assert {name for name in names if not name.startswith(prefix)} == {"ml_model_drift_score"}


def test_dcgm_shows_sm_and_tensor_core_activity_as_ratios(models):
    (gpu,) = [m for m in models["prod"] if m["uid"] == "gpu-ml"]
    panels = {p["title"]: p for p in gpu["panels"]}
    for title, metric in (("GPU SM activity", "DCGM_FI_PROF_SM_ACTIVE"),
                          ("GPU tensor core activity", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE")):
        # DCGM's profiling fields are ratios of cycles, 0 to 1.
        assert [t["expr"] for t in panels[title]["targets"]] == [metric]
        assert panels[title]["fieldConfig"]["defaults"]["unit"] == "percentunit"


def test_dev_has_no_database_dashboard_and_no_gpu_panels(models):
    assert "databases" not in {m["uid"] for m in models["dev"]}
    # Without a GPU exporter the GPU & ML dashboard keeps only model drift (application metrics).
    (ml,) = [m for m in models["dev"] if m["uid"] == "gpu-ml"]
    assert [p["title"] for p in ml["panels"]] == ["Model drift"]


# --- user dashboards are left out of the house style -----------------------------------------------


def test_the_house_style_is_not_asked_of_a_user_dashboard(user_dir):
    """A plain export: a datasource variable named DS, panels without description or unit, a text
    panel, a collapsed row. It deploys, and the house-style tests leave it out."""
    fixture = (ROOT / "tests" / "fixtures" / "dashboards" / "plain-export.json").read_text()
    write(user_dir, "applications/checkout.json", fixture)
    run = run_program("dev", stack_config("dev"))
    assert {m["uid"] for m in deployed(run)} - built_in_uids("dev") == {"checkout-service"}
    model = json.loads(run.one(DASHBOARD, "dashboard-checkout-service").inputs["configJson"])
    assert [v["name"] for v in model["templating"]["list"] if v["type"] == "datasource"] == ["DS", "logs_ds"]
    assert any("description" not in p for p in model["panels"])


# --- determinism -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_dashboards_are_byte_identical_across_runs(stack_runs, stack):
    again = run_program(stack, stack_config(stack), stack_secrets(stack))
    first = {r.name: r.inputs["configJson"] for r in stack_runs[stack].of_type(DASHBOARD)}
    second = {r.name: r.inputs["configJson"] for r in again.of_type(DASHBOARD)}
    assert len(first) >= 6
    assert first == second
    rendered = {f"dashboard-{d.uid}": d.json() for d in dashboards.render(settings_of(stack))}
    assert rendered == first


def keeps_exemplars(expr: str) -> bool:
    """A percentile of a histogram as its producer exposes it: a recorded series (level:metric:
    operations) carries no exemplars."""
    return "histogram_quantile" in expr and not any(":" in m for m in metric_names(expr))


def test_latency_panels_ask_for_exemplars(models):
    asked = set()
    for model in models["prod"]:
        for panel in panels(model):
            for target in panel["targets"]:
                assert target.get("exemplar", False) == keeps_exemplars(target["expr"]), (model["uid"], panel["title"])
                if target.get("exemplar"):
                    asked.add(model["uid"])
    assert {"llm-rag"} <= asked


# --- the Kubernetes dashboard ----------------------------------------------------------------------
# Built from what the stack deploys, like the others; rendered here for chosen producers as well,
# so that each of its panels is held to the house style whatever a stack deploys.

STATE = "kube-state-metrics"
# The panels each optional producer brings, by title.
ONLY_WITH = {
    "apiserver": {"API server requests", "API server error ratio", "API server p99 latency"},
    "coredns": {"CoreDNS requests", "CoreDNS SERVFAIL share"},
    "kubelet": {"Volume space used", "Volume inodes used", "Volume space free", "Predicted time until full"},
    "cadvisor": {"CPU by namespace", "Memory by namespace"},
}
EVERY_PRODUCER = {STATE, *ONLY_WITH}
ROWS = ["Cluster", "Namespace", "Workload", "Persistent volumes"]
GRAFANA = json.loads((ROOT / "tests" / "upstream" / "grafana.json").read_text())


def kubernetes_model(producers, stack="staging"):
    """The Kubernetes dashboard's model for a stack's settings and these producers, or None."""
    found = kubernetes_dashboard.kubernetes(settings_of(stack), set(producers))
    return None if found is None else json.loads(found.json())


def subsets(items):
    items = sorted(items)
    return [set(c) for n in range(len(items) + 1) for c in itertools.combinations(items, n)]


def titles(model):
    return {p["title"] for p in panels(model)}


def by_row(model):
    """{row title: its panels}, in the order the dashboard lists them."""
    found, current = {}, None
    for panel in model["panels"]:
        if panel["type"] == "row":
            current = found.setdefault(panel["title"], [])
        else:
            current.append(panel)
    return found


def selectors(expr):
    return nodes(promql(expr), promql_parser.VectorSelector)


@pytest.fixture(scope="module")
def every_panel():
    """The dashboard with every producer it reads: all of its panels."""
    return kubernetes_model(EVERY_PRODUCER)


@pytest.mark.parametrize("producers", subsets(EVERY_PRODUCER), ids=lambda p: "+".join(sorted(p)) or "none")
def test_the_kubernetes_dashboard_is_built_exactly_where_kube_state_metrics_runs(producers):
    model = kubernetes_model(producers)
    assert (model is not None) == (STATE in producers)
    if model is not None:
        # Each optional group of panels is there exactly with its producer.
        for producer, group in ONLY_WITH.items():
            assert (group <= titles(model)) == (producer in producers), producer
            assert (group & titles(model) == set()) == (producer not in producers), producer


@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_ships_the_kubernetes_dashboard_exactly_where_it_deploys_kube_state_metrics(stack_runs, stack):
    """What the stack runs and scrapes decides, not the platform's name: dev (docker) runs no
    kube-state-metrics; a Kubernetes stack that disables it gets no dashboard either."""
    run = stack_runs[stack]
    producers = deployed_producers(run)
    shipped = [m for m in deployed(run) if m["uid"] == "kubernetes"]
    assert len(shipped) == (1 if STATE in producers else 0)
    for model in shipped:
        assert model == kubernetes_model(producers, stack)
        for producer, group in ONLY_WITH.items():
            assert (group <= titles(model)) == (producer in producers), producer


def test_without_kube_state_metrics_no_other_producer_builds_the_dashboard():
    assert kubernetes_model(EVERY_PRODUCER - {STATE}) is None
    assert kubernetes_model(EVERY_PRODUCER, "dev") is not None  # the producers decide, whatever the stack


@pytest.mark.parametrize("producers", subsets(ONLY_WITH), ids=lambda p: "+".join(sorted(p)) or "state only")
def test_every_kubernetes_query_parses_and_reads_only_what_its_producers_produce(producers):
    model = kubernetes_model({STATE, *producers})
    produced = {m for producer in {"application", STATE, *producers} for m in CATALOG.get(producer, [])}
    # With the series the recording rules of configs/prometheus/records.yml record for them.
    produced |= recording_rules.recorded(settings_of("staging"), {STATE, *producers})
    queries = promql_targets([model])
    assert len(queries) >= 15
    for where, expr in queries:
        promql(expr)  # raises on a query Prometheus would not parse
    assert {where: unknown_metrics(expr, produced) for where, expr in queries if unknown_metrics(expr, produced)} == {}
    # The namespace variable's query reads kube-state-metrics too.
    (namespace,) = [v for v in model["templating"]["list"] if v["name"] == "namespace"]
    metric = re.fullmatch(r"label_values\((\w+), namespace\)", namespace["query"]).group(1)
    assert metric in CATALOG[STATE]
    # What makes any dashboard work in the stack: datasources resolve, PromQL parses once the
    # variables are filled in.
    assert dashboards.DashboardCheck(model).problems == []


def test_the_kubernetes_dashboard_keeps_the_house_style(every_panel):
    """The checks the stacks' dashboards get above, on every panel of this one."""
    model = every_panel
    assert model["uid"] == "kubernetes" and model["title"] == "Kubernetes" and model["description"]
    for panel in panels(model):
        where = panel["title"]
        assert panel["description"] and panel["fieldConfig"]["defaults"]["unit"], where
        for datasource in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
            assert datasource == {"type": "prometheus", "uid": "${datasource}"}, where
        for target in panel["targets"]:
            assert bad_rate_windows(target["expr"]) == [], where
            assert target.get("exemplar", False) == keeps_exemplars(target["expr"]), where
            if panel["type"] == "table":
                assert (target.get("instant"), target.get("format")) == (True, "table"), where
        assert set(panel) <= set(GRAFANA["panel_keys"]) and panel["type"] in GRAFANA["panel_types"], where
    assert set(model) <= set(GRAFANA["dashboard_keys"])
    # Rows are expanded and hold no panels of their own: every panel is in the dashboard's list,
    # where Grafana shows it under its row and the checks above see it.
    rows = [p for p in model["panels"] if p["type"] == "row"]
    assert [r["title"] for r in rows] == ROWS
    for r in rows:
        assert (r["collapsed"], r["panels"]) == (False, []) and set(r) <= set(GRAFANA["row_panel_keys"])
        assert r["gridPos"]["x"] == 0 and r["gridPos"]["w"] == 24
    # Rates over $__rate_interval; the one fixed window is the 6 hours a prediction of days takes.
    windows = {str(n.range) for _, expr in promql_targets([model])
               for n in nodes(promql(expr), promql_parser.MatrixSelector)}
    assert windows - {str(promql_parser.parse_duration("5m"))} == {str(promql_parser.parse_duration("6h"))}


def test_the_desired_and_available_tables_join_their_two_queries_into_columns(every_panel):
    tables = [p for p in panels(every_panel) if p["title"].endswith(": desired and available")]
    assert [p["title"].split(":")[0] for p in tables] == ["Deployments", "StatefulSets", "DaemonSets"]
    for table in tables:
        assert [(t["refId"], t["legendFormat"]) for t in table["targets"]] == [("A", "desired"), ("B", "available")]
        # Grafana names each instant query's value column "Value #<refId>"; merge joins the rows
        # on their labels, organize names the columns.
        assert [t["id"] for t in table["transformations"]] == ["merge", "organize"]
        assert table["transformations"][1]["options"]["renameByName"] == {"Value #A": "desired", "Value #B": "available"}


def test_the_namespace_variable_lists_the_namespaces_that_hold_pods(every_panel):
    variables = {v["name"]: v for v in every_panel["templating"]["list"]}
    assert list(variables) == ["datasource", "namespace"]
    namespace = variables["namespace"]
    assert namespace["type"] == "query" and namespace["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert namespace["query"] == "label_values(kube_pod_info, namespace)"
    # Several namespaces at once, or all: "All" is a regex for any namespace, not a list of them.
    assert (namespace["multi"], namespace["includeAll"], namespace["allValue"]) == (True, True, ".+")
    assert set(namespace) <= VARIABLE_KEYS


def test_the_namespace_variable_filters_every_panel_below_the_cluster_row(every_panel):
    rows = by_row(every_panel)
    assert list(rows) == ROWS
    for title, members in rows.items():
        for panel in members:
            for target in panel["targets"]:
                found = selectors(target["expr"])
                assert found, (title, panel["title"])
                for selector in found:
                    by_namespace = [(m.op, m.value) for m in selector.matchers.matchers if m.name == "namespace"]
                    if title == "Cluster":
                        # The cluster as a whole: the namespace chosen changes nothing here.
                        assert by_namespace == [], (panel["title"], str(selector))
                    else:
                        assert by_namespace == [(promql_parser.MatchOp.Re, "$namespace")], (panel["title"], str(selector))
