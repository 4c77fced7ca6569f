"""The built-in dashboards' house style, over every built-in dashboard every stack deploys: queries
parse, datasources come from the variables `datasource` and `logs`, every panel has a description
and a unit, rates use $__rate_interval, and every metric is one the catalog lists for something in
the stack (configs/metrics/catalog.yml). The user's own dashboards are held to what makes a
dashboard work, not to this style (tests/grafana/test_user_dashboards.py, with the basics of user
dashboards). Also that rendering is deterministic."""

import json
import re

import promql_parser
import pytest
import yaml

from components.grafana import dashboards
from components.settings import parse
from conftest import ROOT, STACKS, run_program, stack_config, stack_secrets
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


def targets(model):
    for panel in model["panels"]:
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


def produced_metrics(run, stack):
    """Metrics of the catalog's producers this stack deploys, and the application contract."""
    producers = {"application"}
    for service in run.outputs["services"]:
        if service == "gpu-exporter":
            service = f"gpu-exporter/{stack_config(stack)['exporters']['gpu']['exporter']}"
        producers.add(service)
    return {metric for producer in producers for metric in CATALOG.get(producer, [])}


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
    tables = [(m["uid"], p) for m in models[stack] for p in m["panels"] if p["type"] == "table"]
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
        for panel in model["panels"]:
            for datasource in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
                assert datasource["uid"] in VARIABLES, (model["uid"], panel["title"], datasource)
                assert datasource["type"] == VARIABLES[datasource["uid"]][1], (model["uid"], panel["title"])


@pytest.mark.parametrize("stack", STACKS)
def test_each_dashboard_defines_the_variables_its_panels_use(models, stack):
    for model in models[stack]:
        defined = {v["name"]: (v["type"], v["query"]) for v in model["templating"]["list"]}
        used = {t["datasource"]["uid"] for _, t in targets(model)} | {p["datasource"]["uid"] for p in model["panels"]}
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
    (`multi`), written under the keys Grafana's VariableModel has, which it would otherwise drop."""
    variables = [(m["uid"], v) for m in models[stack] for v in m["templating"]["list"]]
    assert len(variables) >= 8
    for uid, variable in variables:
        assert set(variable) - VARIABLE_KEYS == set(), (uid, variable["name"])
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
    panels = [(m["uid"], p) for m in models[stack] for p in m["panels"] if p["type"] == "logs"]
    assert len(panels) >= 1
    for uid, panel in panels:
        assert panel["options"]["enableLogDetails"] is True, (uid, panel["title"])


# --- identity and descriptions ---------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_dashboard_uids_are_unique_and_everything_is_titled_described_and_unitised(models, stack):
    uids = [m["uid"] for m in models[stack]]
    assert len(uids) == len(set(uids))
    for model in models[stack]:
        assert model["title"] and model["uid"]
        for panel in model["panels"]:
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


def test_latency_panels_ask_for_exemplars(models):
    for model in models["prod"]:
        for panel in model["panels"]:
            for target in panel["targets"]:
                assert target.get("exemplar", False) == ("histogram_quantile" in target["expr"]), (model["uid"], panel["title"])
