"""The user's own dashboards, as Grafana exports them: both export forms deploy and work, what
cannot work stops the program naming the file and the panel, and a panel that would only stay
empty is a warning. The fixtures under tests/fixtures/dashboards/ are written for these tests."""

import copy
import json
from pathlib import Path

import pytest

from components.alerting import user_rules
from components.grafana import dashboards
from components.settings import ConfigError, parse
from conftest import ROOT, Run, run_program, scrape_jobs, stack_config, stack_secrets

DASHBOARD = "grafana:oss/dashboard:Dashboard"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "dashboards"
PLAIN = json.loads((FIXTURES / "plain-export.json").read_text())
SHARED = json.loads((FIXTURES / "shared-export.json").read_text())
# The stack's datasource uids (components/services/grafana.py) and the ones every Grafana has.
STACK_UIDS = {"prometheus", "loki", "jaeger", "alertmanager"}
GRAFANA_UIDS = {"grafana", "-- Grafana --", "-- Mixed --", "-- Dashboard --", "__expr__"}


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    root = tmp_path / "dashboards"
    root.mkdir()
    monkeypatch.setattr(dashboards, "USER_DASHBOARDS", root)
    return root


def write(root, relative, content):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def deployed(run, uid):
    return json.loads(run.one(DASHBOARD, f"dashboard-{uid}").inputs["configJson"])


def settings_of(stack):
    secrets = stack_secrets(stack)
    values = {**stack_config(stack), **({"secrets": secrets} if secrets else {})}
    return parse(stack, values, {"secrets"} if secrets else set())


def datasource_refs(value):
    """Every datasource reference anywhere in a dashboard model."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "datasource":
                yield item
            yield from datasource_refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from datasource_refs(item)


def panels_by_id(model):
    found = {}
    for panel in model["panels"]:
        found[panel["id"]] = panel
        for child in panel.get("panels", []):
            found[child["id"]] = child
    return found


def warnings(caplog, needle):
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and needle in r.getMessage()]


def broken(stack, user_dir, relative, content):
    """Run the program on one broken file: the ConfigError's message, and what was registered."""
    write(user_dir, relative, content)
    run = Run(stack)
    with pytest.raises(ConfigError) as error:
        run_program(stack, stack_config(stack), stack_secrets(stack), run=run)
    return str(error.value), run.resources


# --- the basics: a file joins the folder it is filed under; what is no dashboard stops the program --


CUSTOM = {"id": 42, "uid": "custom-gpu", "title": "Custom GPU", "panels": []}


def test_a_user_dashboard_joins_the_folder_it_is_filed_under(user_dir):
    write(user_dir, "gpu-ml/custom.json", CUSTOM)
    found = {d.uid: d for d in dashboards.render(settings_of("prod"))}
    custom = found["custom-gpu"]
    assert custom.folder == "GPU & ML"
    assert custom.model == {"uid": "custom-gpu", "title": "Custom GPU", "panels": []}
    assert "system-overview" in found


def test_a_user_dashboard_is_deployed_into_its_grafana_folder(user_dir):
    write(user_dir, "gpu-ml/custom.json", CUSTOM)
    dashboard = run_program("dev", stack_config("dev")).one(DASHBOARD, "dashboard-custom-gpu").inputs
    assert dashboard["folder"] == "gpu-ml"
    assert json.loads(dashboard["configJson"]) == {"uid": "custom-gpu", "title": "Custom GPU", "panels": []}


BAD_USER_DASHBOARDS = {
    "unknown folder": ("team-x/a.json", CUSTOM, ["team-x/a.json", "folder 'team-x' is not one of grafana.folders"]),
    "no uid": ("gpu-ml/no-uid.json", {"title": "No uid"}, ["gpu-ml/no-uid.json", 'a dashboard needs a "uid"']),
    "invalid JSON": ("gpu-ml/broken.json", '{"uid": "broken",', ["gpu-ml/broken.json", "not valid JSON"]),
    "built-in uid": ("platform/mine.json", {"uid": "system-overview", "title": "Mine"},
                     ["dashboard uids used twice: system-overview"]),
}


@pytest.mark.parametrize("relative, content, expected", BAD_USER_DASHBOARDS.values(), ids=BAD_USER_DASHBOARDS.keys())
def test_a_bad_user_dashboard_is_refused_naming_the_file_or_uid(user_dir, relative, content, expected):
    write(user_dir, relative, content)
    with pytest.raises(ValueError) as error:
        dashboards.render(settings_of("dev"))
    for part in expected:
        assert part in str(error.value)


@pytest.mark.parametrize("relative, content, expected", BAD_USER_DASHBOARDS.values(), ids=BAD_USER_DASHBOARDS.keys())
def test_a_bad_user_dashboard_stops_the_program_before_any_resource(user_dir, relative, content, expected):
    write(user_dir, relative, content)
    run = Run("dev")
    with pytest.raises(ConfigError) as error:
        run_program("dev", stack_config("dev"), run=run)
    assert str(error.value).startswith("stack 'dev': cannot render the stack: ")
    assert expected[0] in str(error.value)
    assert run.resources == []


# --- the plain export ----------------------------------------------------------------------------


class TestPlainExport:
    """Rows (expanded and collapsed, whose panels live in the row), panels without targets,
    description or datasource, a text panel, a datasource named by name, and a datasource variable
    not called `datasource`: deployed as exported, less the id Grafana assigns."""

    @pytest.mark.parametrize("stack", ["dev", "prod"])
    def test_it_is_deployed_as_exported(self, user_dir, stack, caplog):
        write(user_dir, "applications/checkout.json", PLAIN)
        with caplog.at_level("WARNING"):
            run = run_program(stack, stack_config(stack), stack_secrets(stack))
        expected = {k: v for k, v in PLAIN.items() if k != "id"}
        assert deployed(run, "checkout-service") == expected
        assert run.one(DASHBOARD, "dashboard-checkout-service").inputs["folder"] == "applications"
        assert warnings(caplog, "checkout.json") == []

    def test_collapsed_rows_keep_their_panels_and_every_panel_is_checked(self, user_dir):
        model = copy.deepcopy(PLAIN)
        check = dashboards.DashboardCheck(model)
        assert check.problems == []
        # Every query the fixture holds, the collapsed row's included, was parsed as PromQL.
        checked = {where for where, _ in check.promql}
        assert checked == {
            "panel 'Requests by endpoint' (id 1), query A", "panel 'Targets up' (id 2), query A",
            "row 'Details' / panel 'Latency' (id 4), query A", "row 'Details' / panel 'Latency' (id 4), query B",
            "row 'Details' / panel 'CPU (datasource named, legacy string form)' (id 6), query A",
        }

    def test_a_broken_query_inside_a_collapsed_row_is_found(self, user_dir):
        model = copy.deepcopy(PLAIN)
        model["panels"][4]["panels"][0]["targets"][0]["expr"] = "sum(rate(http_requests_total[5m])"
        message, resources = broken("dev", user_dir, "applications/checkout.json", model)
        assert "applications/checkout.json: row 'Details' / panel 'Latency' (id 4), query A: PromQL does not parse" in message
        assert resources == []

    def test_the_old_schema_rows_are_read_too(self):
        """Before schema 16 panels lived in rows[].panels; Grafana still migrates such files."""
        model = {"uid": "old", "title": "Old", "rows": [{"panels": [
            {"id": 1, "title": "Load", "targets": [{"expr": "node_load1{", "refId": "A"}]}]}]}
        (problem,) = dashboards.DashboardCheck(model).problems
        assert problem.startswith("row #1 / panel 'Load' (id 1), query A: PromQL does not parse")


# --- the export for sharing externally -----------------------------------------------------------


class TestSharedExport:
    """`__inputs` placeholders bound to the stack's datasources, constants to their value; the
    export's own keys dropped; a library panel it carries becomes a panel of the dashboard."""

    @pytest.fixture
    def model(self, user_dir):
        write(user_dir, "applications/payments.json", SHARED)
        return deployed(run_program("dev", stack_config("dev")), "payments-overview")

    def test_no_placeholder_and_no_export_key_is_deployed(self, model):
        text = json.dumps(model)
        assert "${DS_" not in text and "${VAR_" not in text
        assert {k for k in model if k.startswith("__")} == set()
        assert "id" not in model

    def test_every_datasource_reference_is_one_the_stack_has(self, model):
        uids = {ref["uid"] if isinstance(ref, dict) else ref for ref in datasource_refs(model)}
        assert uids <= STACK_UIDS | GRAFANA_UIDS
        panels = panels_by_id(model)
        assert panels[1]["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        # The Loki panel of the collapsed row, and the annotation and the query variable.
        assert panels[3]["targets"][0]["datasource"] == {"type": "loki", "uid": "loki"}
        assert model["annotations"]["list"][1]["datasource"]["uid"] == "prometheus"
        assert model["templating"]["list"][1]["datasource"]["uid"] == "prometheus"

    def test_a_constant_input_takes_its_value(self, model):
        environment = model["templating"]["list"][0]
        assert environment["query"] == "production"
        assert environment["current"]["value"] == "production"

    def test_the_library_panel_is_inlined_where_it_was_placed(self, model):
        panel = panels_by_id(model)[2]
        assert "libraryPanel" not in panel
        assert panel["gridPos"] == {"h": 8, "w": 12, "x": 6, "y": 0}
        assert panel["title"] == "Queue depth"
        assert panel["targets"][0]["datasource"] == {"type": "prometheus", "uid": "prometheus"}

    @pytest.mark.parametrize("plugin, uid", [("prometheus", "prometheus"), ("loki", "loki"), ("jaeger", "jaeger"),
                                             ("alertmanager", "alertmanager")])
    def test_each_datasource_plugin_binds_to_the_stacks_uid(self, user_dir, plugin, uid):
        model = {"__inputs": [{"name": "DS_X", "type": "datasource", "pluginId": plugin}],
                 "uid": f"bound-{plugin}", "title": plugin,
                 "panels": [{"id": 1, "type": "text", "title": "t", "datasource": {"type": plugin, "uid": "${DS_X}"}}]}
        write(user_dir, "platform/x.json", model)
        panel = deployed(run_program("dev", stack_config("dev")), f"bound-{plugin}")["panels"][0]
        assert panel["datasource"] == {"type": plugin, "uid": uid}

    def test_a_placeholder_inside_a_longer_string_is_bound_too(self, user_dir):
        """Grafana's import replaces ${NAME} wherever it stands in a string value, not only whole values."""
        model = {"__inputs": [{"name": "VAR_SITE", "type": "constant", "value": "eu-1"}], "uid": "sites", "title": "Sites",
                 "links": [{"title": "Runbook for ${VAR_SITE}", "url": "https://runbooks.example/${VAR_SITE}/payments"}]}
        write(user_dir, "platform/sites.json", model)
        links = deployed(run_program("dev", stack_config("dev")), "sites")["links"]
        assert links == [{"title": "Runbook for eu-1", "url": "https://runbooks.example/eu-1/payments"}]


# --- what cannot work stops the program ----------------------------------------------------------


def with_panel(**panel):
    return {"uid": "broken", "title": "Broken", "panels": [{"id": 7, "title": "Bad panel", "type": "timeseries", **panel}]}


def target(expr, uid="prometheus", kind="prometheus"):
    return {"datasource": {"type": kind, "uid": uid}, "targets": [{"refId": "A", "expr": expr}]}


BAD_JSON = ['{"uid": "broken",', '{"uid": "broken", "title": "x",}', "{'uid': 'broken'}", ""]
NO_UID_OR_TITLE = [{"title": "No uid"}, {"uid": "no-title"}, {"uid": "", "title": "x"}, {"uid": "x", "title": "   "},
                   {"uid": 42, "title": "x"}]
BAD_UIDS = ["a" * 41, "has space", "has/slash", "dotted.name", "ümlaut", "colon:name"]
GOOD_UIDS = ["a" * 40, "A-b_9", "0", "x"]
BAD_PROMQL = ["sum(rate(http_requests_total[5m])", "rate(http_requests_total[5m]", "sum by (job) rate(up[5m])",
              "up == $undefined_variable", "sort_by_label(up, \"job\")", "limitk(2, up)", "up{job=\"a\"",
              "rate(http_requests_total[$__rate_window])"]
BAD_LOGQL = ["count_over_time(5m)", "{}", '{app=~".*"}', '{app=""} |= "x"', "{app=checkout}"]
BAD_DATASOURCES = [
    ({"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}, "'P1809F7CD0C75ACF3' is none of the stack's"),
    ("prometheus-production", "'prometheus-production' is none of the stack's"),
    ({"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, "no __inputs entry fills"),
    ({"type": "prometheus", "uid": "$datasource"}, "names a variable the dashboard does not define"),
    ({"type": "influxdb"}, "asks for a datasource of type 'influxdb'"),
    ({"type": "prometheus", "uid": "prom-$env"}, "'prom-$env' is none of the stack's"),
]
BAD_INPUTS = [
    ({"name": "DS_INFLUX", "type": "datasource", "pluginId": "influxdb"}, "'DS_INFLUX' asks for a 'influxdb' datasource"),
    ({"name": "DS_ES", "type": "datasource", "pluginId": "elasticsearch"}, "'DS_ES' asks for a 'elasticsearch' datasource"),
    ({"name": "DS_SQL", "type": "datasource", "pluginId": "mysql"}, "'DS_SQL' asks for a 'mysql' datasource"),
    ({"name": "VAR_SITE", "type": "constant", "value": ""}, "'VAR_SITE' is a constant with no value"),
    ({"name": "VAR_SITE", "type": "constant"}, "'VAR_SITE' is a constant with no value"),
    ({"name": "X", "type": "interval", "value": "5m"}, "'X' has type 'interval'"),
    ({"type": "datasource", "pluginId": "prometheus"}, "__inputs entry #1 has no name"),
]


class TestWhatCannotWorkStopsTheProgram:
    """Each class of broken file: one ConfigError before any resource, naming the file (and the
    panel and query where there is one)."""

    @pytest.mark.parametrize("content", BAD_JSON)
    def test_invalid_json(self, user_dir, content):
        message, resources = broken("dev", user_dir, "platform/broken.json", content)
        assert "platform/broken.json: not valid JSON (line 1" in message
        assert resources == []

    @pytest.mark.parametrize("content", NO_UID_OR_TITLE)
    def test_a_uid_and_a_title_are_required(self, user_dir, content):
        message, resources = broken("dev", user_dir, "platform/broken.json", content)
        assert 'platform/broken.json: a dashboard needs a "uid" and a "title"' in message
        assert resources == []

    @pytest.mark.parametrize("uid", BAD_UIDS)
    def test_a_uid_grafana_refuses(self, user_dir, uid):
        message, resources = broken("dev", user_dir, "platform/broken.json", {"uid": uid, "title": "x"})
        assert f"platform/broken.json: uid {uid!r} is not one Grafana takes" in message
        assert resources == []

    @pytest.mark.parametrize("uid", GOOD_UIDS)
    def test_a_uid_grafana_takes(self, user_dir, uid):
        write(user_dir, "platform/fine.json", {"uid": uid, "title": "x"})
        assert run_program("dev", stack_config("dev")).one(DASHBOARD, f"dashboard-{uid}")

    @pytest.mark.parametrize("expr", BAD_PROMQL)
    def test_promql_the_stacks_prometheus_refuses(self, user_dir, expr):
        message, resources = broken("dev", user_dir, "platform/broken.json", with_panel(**target(expr)))
        assert "platform/broken.json: panel 'Bad panel' (id 7), query A: " in message
        assert f"the query: {expr}" in message
        assert resources == []

    @pytest.mark.parametrize("expr", BAD_LOGQL)
    def test_logql_without_a_stream_selector_loki_takes(self, user_dir, expr):
        message, resources = broken("dev", user_dir, "platform/broken.json", with_panel(**target(expr, "loki", "loki")))
        assert "platform/broken.json: panel 'Bad panel' (id 7), query A: " in message
        assert f"the query: {expr}" in message
        assert resources == []

    @pytest.mark.parametrize("ref, expected", BAD_DATASOURCES)
    def test_a_datasource_the_stack_does_not_provide(self, user_dir, ref, expected):
        panel = {"datasource": ref, "targets": [{"refId": "A", "expr": "up"}]}
        message, resources = broken("dev", user_dir, "platform/broken.json", with_panel(**panel))
        assert "platform/broken.json: panel 'Bad panel' (id 7): " in message
        assert expected in message
        assert resources == []

    def test_a_query_that_names_a_datasource_the_stack_does_not_provide(self, user_dir):
        """docs/grafana.md: panels and queries are all checked, each problem naming the panel and the query.
        In a `-- Mixed --` panel each query names its own datasource, where Grafana runs it: a uid
        from another Grafana on one query stops the program at that query."""
        panel = {"datasource": {"type": "datasource", "uid": "-- Mixed --"}, "targets": [
            {"refId": "A", "expr": "up", "datasource": {"type": "prometheus", "uid": "prometheus"}},
            {"refId": "B", "expr": "up", "datasource": {"type": "prometheus", "uid": "old-uid"}},
        ]}
        message, resources = broken("dev", user_dir, "platform/broken.json", with_panel(**panel))
        assert message.startswith("stack 'dev': cannot render the stack: ")
        assert message.endswith(
            "/platform/broken.json: panel 'Bad panel' (id 7), query B: datasource 'old-uid' is none of the stack's "
            '(prometheus, loki, jaeger, alertmanager): name one of those uids, for example {"type": "prometheus", '
            '"uid": "prometheus"}, or a datasource variable of the dashboard')
        assert resources == []

    def test_each_query_of_a_mixed_panel_is_read_in_the_language_of_its_own_datasource(self):
        """docs/grafana.md: `-- Mixed --` panels are taken. A Loki query in one is LogQL, not PromQL: the
        panel has no problem, and only its Prometheus query is one Prometheus will run."""
        model = with_panel(datasource={"type": "datasource", "uid": "-- Mixed --"}, targets=[
            {"refId": "A", "expr": "sum(rate(http_requests_total[5m]))", "datasource": {"type": "prometheus", "uid": "prometheus"}},
            {"refId": "B", "expr": '{job="varlogs"} |= "error"', "datasource": {"type": "loki", "uid": "loki"}},
        ])
        check = dashboards.DashboardCheck(model)
        assert check.problems == []
        assert [where for where, _ in check.promql] == ["panel 'Bad panel' (id 7), query A"]

    @pytest.mark.parametrize("variable, expected", [
        ({"name": "ds", "type": "datasource", "query": "influxdb"}, "variable 'ds' lists datasources of type 'influxdb'"),
        ({"name": "ds", "type": "custom", "query": "a,b"}, "names variable 'ds', which is not a datasource variable"),
        ({"name": "host", "type": "query", "datasource": {"type": "prometheus", "uid": "old-uid"}},
         "variable 'host': datasource 'old-uid' is none of the stack's"),
    ])
    def test_a_variable_that_reaches_no_datasource(self, user_dir, variable, expected):
        model = with_panel(datasource={"type": "prometheus", "uid": "${ds}"}, targets=[{"refId": "A", "expr": "up"}])
        model["templating"] = {"list": [variable]}
        message, resources = broken("dev", user_dir, "platform/broken.json", model)
        assert "platform/broken.json: " in message and expected in message
        assert resources == []

    @pytest.mark.parametrize("entry, expected", BAD_INPUTS)
    def test_an_input_the_stack_cannot_fill(self, user_dir, entry, expected):
        model = {**SHARED, "__inputs": [entry]}
        message, resources = broken("dev", user_dir, "applications/payments.json", model)
        assert f"applications/payments.json: __inputs entry {expected}" in message or \
            f"applications/payments.json: {expected}" in message
        assert resources == []

    @pytest.mark.parametrize("content, problem", [
        # Grafana 12's "Export as resource": the dashboard inside a Kubernetes-style object.
        ({"apiVersion": "dashboard.grafana.app/v1beta1", "kind": "Dashboard", "metadata": {"name": "checkout"},
          "spec": {"title": "Checkout", "panels": []}},
         "this is a Grafana 'Dashboard' resource, not a dashboard's JSON model; export the dashboard as classic JSON"),
        # A ConfigMap for a provisioning sidecar holds the dashboard as text: no Grafana resource,
        # and no dashboard's uid and title either.
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "checkout-dashboard"},
          "data": {"checkout.json": '{"uid": "checkout", "title": "Checkout"}'}},
         'a dashboard needs a "uid" and a "title" (for example "uid": "checkout-latency", "title": "Checkout latency")'),
    ])
    def test_what_is_not_a_dashboards_json_model_is_named_for_what_it_is(self, user_dir, content, problem):
        """docs/grafana.md: a file that is not a dashboard's JSON model, or has no uid or no title, stops
        the program; only a Grafana resource (kind and spec, no uid of its own) is called one."""
        message, resources = broken("dev", user_dir, "platform/broken.json", content)
        assert message.startswith("stack 'dev': cannot render the stack: ")
        assert message.endswith(f"/platform/broken.json: {problem}")
        assert message.count("platform/broken.json") == 1
        assert resources == []

    @pytest.mark.parametrize("annotation, problem", [
        ({"name": "Deploys", "enable": True, "datasource": {"type": "prometheus", "uid": "old-uid"},
          "expr": "changes(app_build_info[5m]) > 0"},
         "annotation 'Deploys': datasource 'old-uid' is none of the stack's (prometheus, loki, jaeger, alertmanager): "
         'name one of those uids, for example {"type": "prometheus", "uid": "prometheus"}, or a datasource variable '
         "of the dashboard"),
        ({"enable": True, "datasource": {"type": "prometheus", "uid": "$datasource"}, "expr": "up == 0"},
         "annotation #2: datasource $datasource names a variable the dashboard does not define; define a datasource "
         "variable of that name, or use one of the stack's uids (prometheus, loki, jaeger, alertmanager)"),
    ])
    def test_an_annotation_that_reaches_no_datasource(self, user_dir, annotation, problem):
        """docs/grafana.md: panels, queries, query variables and annotations are all checked; an annotation
        is named by its name, or by its place in the list. Grafana's own (builtIn) is not."""
        builtin = {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                   "name": "Annotations & Alerts", "type": "dashboard"}
        model = {"uid": "broken", "title": "Broken", "annotations": {"list": [builtin, annotation]}}
        message, resources = broken("dev", user_dir, "platform/broken.json", model)
        assert message.startswith("stack 'dev': cannot render the stack: ")
        assert message.endswith(f"/platform/broken.json: {problem}")
        assert resources == []

    def test_every_problem_of_every_file_is_in_one_message(self, user_dir):
        write(user_dir, "platform/a.json", with_panel(**target("rate(x[5m]")))
        write(user_dir, "databases/b.json", {"uid": "b" * 41, "title": "b"})
        message, resources = broken("dev", user_dir, "llm-rag/c.json", "{")
        assert message.startswith("stack 'dev': cannot render the stack: ")
        for part in ("platform/a.json: panel 'Bad panel' (id 7), query A", "databases/b.json: uid", "llm-rag/c.json: not valid JSON"):
            assert part in message
        assert "(3 problems)" in message
        assert resources == []


# --- what would only stay empty warns ------------------------------------------------------------


class TestUnproducedMetricsWarn:
    """A metric nothing the stack deploys produces: the dashboard deploys, with one warning naming
    the file, the panel and the metric."""

    @pytest.mark.parametrize("stack, metric, producer", [
        ("dev", "DCGM_FI_DEV_GPU_UTIL", "gpu-exporter/dcgm"),  # dev runs no GPU exporter
        ("dev", "pg_stat_database_numbackends", "postgres-exporter"),  # nor PostgreSQL's
        ("prod", "nvidia_smi_utilization_gpu_ratio", "gpu-exporter/nvidia_smi"),  # prod runs DCGM
        ("staging", "DCGM_FI_PROF_SM_ACTIVE", "gpu-exporter/dcgm"),  # staging runs nvidia-smi
    ])
    def test_a_metric_of_an_exporter_the_stack_does_not_run(self, user_dir, caplog, stack, metric, producer):
        write(user_dir, "platform/empty.json", with_panel(**target(f"avg({metric})")))
        with caplog.at_level("WARNING"):
            run = run_program(stack, stack_config(stack), stack_secrets(stack))
        assert run.one(DASHBOARD, "dashboard-broken")
        (warning,) = warnings(caplog, "empty.json")
        assert "platform/empty.json: " in warning
        assert f"panel 'Bad panel' (id 7), query A: {metric} (from {producer}" in warning

    @pytest.mark.parametrize("metric", ["made_up_requests_total", "haproxy_backend_up", "mysql_up"])
    def test_a_metric_in_no_namespace_of_the_stack(self, user_dir, caplog, metric):
        write(user_dir, "platform/empty.json", with_panel(**target(f"sum(rate({metric}[$__rate_interval]))")))
        with caplog.at_level("WARNING"):
            run_program("dev", stack_config("dev"))
        (warning,) = warnings(caplog, "empty.json")
        assert f"panel 'Bad panel' (id 7), query A: {metric} (in no namespace" in warning

    def test_metrics_the_stack_produces_do_not_warn(self, user_dir, caplog):
        exprs = ["up", "rate(node_network_receive_bytes_total[5m])", "node_filefd_allocated",  # node-exporter's, not in the catalog
                 "container_memory_rss", "http_requests_total", "ALERTS{alertstate=\"firing\"}", "${metric}_total"]
        model = {"uid": "fine", "title": "Fine", "templating": {"list": [{"name": "metric", "type": "custom", "query": "a"}]},
                 "panels": [{"id": i, "title": f"p{i}", **target(e)} for i, e in enumerate(exprs)]}
        write(user_dir, "platform/fine.json", model)
        with caplog.at_level("WARNING"):
            run_program("dev", stack_config("dev"))
        assert warnings(caplog, "fine.json") == []

    def test_one_warning_a_dashboard_however_many_queries(self, user_dir, caplog):
        model = {"uid": "many", "title": "Many", "panels": [
            {"id": i, "title": f"p{i}", **target(f"made_up_{i}_total")} for i in range(5)]}
        write(user_dir, "platform/many.json", model)
        with caplog.at_level("WARNING"):
            run_program("dev", stack_config("dev"))
        (warning,) = warnings(caplog, "many.json")
        assert "5 queries" in warning
        assert all(f"made_up_{i}_total" in warning for i in range(5))

    def test_a_library_panel_the_file_does_not_carry_warns(self, user_dir, caplog):
        model = {"uid": "lib", "title": "Lib", "panels": [{"id": 3, "gridPos": {"h": 8, "w": 12, "x": 0, "y": 0},
                                                          "libraryPanel": {"uid": "abc", "name": "Shared CPU"}}]}
        write(user_dir, "platform/lib.json", model)
        with caplog.at_level("WARNING"):
            run = run_program("dev", stack_config("dev"))
        assert run.one(DASHBOARD, "dashboard-lib")
        (warning,) = warnings(caplog, "lib.json")
        assert "untitled panel (id 3) is a library panel" in warning


class TestTheUpstreamMetricListsAgree:
    """tests/upstream holds each exporter's metrics at the pinned tag. Where the stack runs the
    exporter, none of its metrics in the catalog's namespace for it is reported; where it does
    not, each is reported as that exporter's."""

    EXPORTERS = [("node_exporter", "node-exporter"), ("cadvisor", "cadvisor"), ("postgres_exporter", "postgres-exporter"),
                 ("redis_exporter", "redis-exporter"), ("nvidia_gpu_exporter", "gpu-exporter/nvidia_smi")]
    CORE = {"prometheus", "alertmanager", "loki", "otel-collector", "jaeger"}

    @staticmethod
    def upstream(name):
        return sorted(json.loads((ROOT / "tests" / "upstream" / f"{name}.json").read_text())["metrics"])

    @pytest.mark.parametrize("name, producer", EXPORTERS)
    def test_an_exporters_metrics_warn_only_where_it_does_not_run(self, name, producer):
        catalog = user_rules.yaml_text.load(user_rules.METRICS.read_text())
        namespaces = {user_rules.namespace(m) for m in catalog[producer]}
        metrics = [m for m in self.upstream(name) if user_rules.namespace(m) in namespaces]
        assert len(metrics) > 50
        running, absent = user_rules.produced_by(self.CORE | {producer}), user_rules.produced_by(self.CORE)
        assert [m for m in metrics if running.missing(m)] == []
        assert [m for m in metrics if f"(from {producer}," not in (absent.missing(m) or "")] == []

    @pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
    def test_the_producers_are_the_services_the_stack_deploys(self, stack_runs, stack):
        """The services, and the jobs Prometheus scrapes of the cluster itself (kubelet, cadvisor,
        apiserver, coredns on kubernetes): each job is named after its producer."""
        run = stack_runs[stack]
        services = set(run.outputs["services"])
        catalog_keys = set(user_rules.yaml_text.load(user_rules.METRICS.read_text()))
        expected = (services | set(scrape_jobs(run))) & catalog_keys
        if "gpu-exporter" in services:
            expected.add(f"gpu-exporter/{stack_config(stack)['exporters']['gpu']['exporter']}")
        assert user_rules.deployed_producers(settings_of(stack)) & catalog_keys == expected


# --- Grafana's variables in queries --------------------------------------------------------------


class TestVariablesInQueries:
    """Every form Grafana interpolates, in each place a query puts it, parses once filled in; a
    name the dashboard does not define stays as Grafana leaves it, and fails where it is syntax."""

    KNOWN = {"job", "instance", "quantile", "window", "metric", "label", "top"}

    @pytest.mark.parametrize("expr", [
        'up{job=~"$job"}', 'up{job=~"${job}"}', 'up{job=~"[[job]]"}', 'up{job=~"${job:regex}"}', 'up{job=~"[[job:pipe]]"}',
        "rate(up[$__rate_interval])", "rate(up[$window])", "rate(up[${__interval}])", "max_over_time(up[${__range_s}s])",
        "up offset $__interval", "up @ ${__to:date:seconds}", "sum by ($label) (up)", "topk($top, up)",
        "histogram_quantile($quantile, rate(http_request_duration_seconds_bucket[5m]))", "${metric}_total", "up * $__range_s",
        'label_replace(up, "a", "$1", "job", "(.*)")', 'up{job="$not_defined_but_quoted"}',
    ])
    def test_every_form_and_place_parses(self, expr):
        problem, ready = dashboards.promql_ready(expr, self.KNOWN)
        assert problem is None, problem
        assert "$" not in ready.replace('"$1"', "").replace('"$not_defined_but_quoted"', "")

    def test_a_bracket_inside_a_quoted_string_is_text_not_a_range(self):
        """An IPv6 target's instance is "[fd00::7]:9100"; matching it by prefix puts an unclosed
        `[` inside a string. The variable after it stands where PromQL takes a label name, so it
        is filled in as a name, not as a duration."""
        expr = r'sum(up{instance=~"\\[fd00:.*"}) by ($label)'
        assert dashboards.promql_ready(expr, self.KNOWN) == (
            None, r'sum(up{instance=~"\\[fd00:.*"}) by (__grafana_variable__)')

    @pytest.mark.parametrize("expr, name", [("up > $threshold", "threshold"), ("topk(${n}, up)", "n"),
                                            ("rate(up[$span])", "span")])
    def test_an_undefined_variable_in_syntax_is_named(self, expr, name):
        problem, ready = dashboards.promql_ready(expr, self.KNOWN)
        assert ready is None
        assert f"${name}: no such variable on this dashboard" in problem


# --- the house style stays for the built-in dashboards only --------------------------------------


def test_the_works_rules_hold_for_every_built_in_dashboard_too(stack_runs):
    for stack, run in stack_runs.items():
        for resource in run.of_type(DASHBOARD):
            model = json.loads(resource.inputs["configJson"])
            assert dashboards.DashboardCheck(model).problems == [], (stack, model["uid"])
