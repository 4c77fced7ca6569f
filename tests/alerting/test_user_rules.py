"""The user's own rule files (configs/prometheus/rules/*.yml): a file Prometheus v3.14.0 would
refuse, and so stop all alerting, stops the program naming the file, the group and the rule; a
rule on a metric nothing produces warns. The shipped files are checked by promtool in
tests/services/test_prometheus.py."""

import json
import subprocess
from pathlib import Path

import pytest

from components.alerting import user_rules
from components.services import prometheus
from components.settings import grammar
from components.settings import ConfigError, parse
from conftest import Run, container_files, require_tool, run_program, stack_config

FIXTURE = Path(__file__).parent.parent / "fixtures" / "rules" / "team-rules.yml"


@pytest.fixture
def rules_dir(tmp_path, monkeypatch):
    """An empty configs/prometheus/rules of its own."""
    (tmp_path / "rules").mkdir()
    monkeypatch.setattr(user_rules, "SOURCE", tmp_path / "rules")
    return tmp_path / "rules"


def rule(**fields):
    body = "".join(f"    {k}: {v}\n" for k, v in fields.items())
    return f"groups:\n- name: team\n  rules:\n  - {body.lstrip()}"


def alert(expr="up == 0", **fields):
    return rule(alert="TeamDown", expr=expr, **fields)


def broken(rules_dir, text, name="team.yml"):
    (rules_dir / name).write_text(text)
    run = Run("dev")
    with pytest.raises(ConfigError) as error:
        run_program("dev", stack_config("dev"), run=run)
    return str(error.value), run.resources


class TestAValidFile:
    def test_it_is_shipped_as_written(self, rules_dir):
        (rules_dir / "team-rules.yml").write_text(FIXTURE.read_text())
        files = container_files(run_program("dev", stack_config("dev")), "prometheus")
        assert files["/etc/prometheus/rules/team-rules.yml"] == FIXTURE.read_text()

    def test_promtool_agrees_it_is_valid(self, tmp_path):
        promtool = require_tool("promtool")
        result = subprocess.run([promtool, "check", "rules", str(FIXTURE)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_its_recordings_count_as_produced(self, rules_dir):
        (rules_dir / "team-rules.yml").write_text(FIXTURE.read_text())
        assert {"job:http_requests:rate5m", "job:http_errors:ratio5m"} <= user_rules.recorded_metrics()

    @pytest.mark.parametrize("text", [
        "", "groups:\n", "groups: []\n",
        "groups:\n- name: team\n  labels: {team: payments}\n  rules:\n  - alert: X\n    expr: up == 0\n",  # group labels, v3
        alert(labels="{my-team: payments}"),  # a UTF-8 label name: valid under v3.14's default scheme
        rule(record="job:up:sum", expr="sum by (job) (up)", **{"for": "0s"}),  # a zero for is no for
        alert(labels="{severity: 5}"),  # yaml.v3 reads a number into a string field as its text
    ])
    def test_what_prometheus_v3_takes_is_taken(self, rules_dir, text):
        (rules_dir / "team.yml").write_text(text)
        assert user_rules.load()[1] == []


BAD = {
    # invalid YAML
    "yaml: indentation": ("groups:\n- name: team\n  rules:\n  - alert: X\n    expr: up\n   for: 5m\n", ["team.yml:6: not valid YAML"]),
    "yaml: unclosed quote": ('groups:\n- name: "team\n', ["team.yml", "not valid YAML"]),
    "yaml: key twice in a rule": (alert() + "    expr: up == 1\n", ["team.yml:6: group 'team', rule 1 ('TeamDown'): key 'expr' appears twice"]),
    "yaml: key twice in labels": (alert(labels="{a: x, a: y}"), ["key 'a' appears twice"]),
    # the shape rulefmt decodes into
    "unknown field in a rule": (alert(severity="warning"), ["group 'team', rule 1 ('TeamDown'): unknown field 'severity'"]),
    "unknown field in a group": ("groups:\n- name: team\n  rule: []\n", ["group 'team': unknown field 'rule'"]),
    "unknown field at the top": ("rules: []\n", ["the file: unknown field 'rules'"]),
    "groups not a list": ("groups: {name: team}\n", ["groups must be a list"]),
    "a label value that is a mapping": (alert(labels="{severity: {level: 1}}"), ["labels.severity must be a string"]),
    # groups
    "group without a name": ("groups:\n- rules: []\n", ["a rule group needs a name"]),
    "group name twice": ("groups:\n- name: team\n  rules: []\n- name: team\n  rules: []\n", ["group 'team': the name is used twice"]),
    "group limit given as text": ("groups:\n- name: team\n  limit: '10'\n  rules: []\n", ["team.yml:3: group 'team': limit must be a number"]),
    "group interval": ("groups:\n- name: team\n  interval: 1 minute\n  rules: []\n", ["group 'team': interval: '1 minute' is not a valid duration"]),
    # rules
    "neither alert nor record": (rule(expr="up"), ["group 'team', rule 1: a rule has either alert"]),
    "both alert and record": (rule(alert="X", record="y", expr="up"), ["group 'team', rule 1 ('X'): a rule has either alert"]),
    "no expr": (rule(alert="X"), ["group 'team', rule 1 ('X'): expr is missing"]),
    "recording rule with annotations": (rule(record="a:b", expr="up", annotations="{summary: x}"), ["('a:b'): a recording rule takes no annotations"]),
    "recording rule with for": (rule(record="a:b", expr="up", **{"for": "5m"}), ["('a:b'): a recording rule takes no for"]),
    "record with a selector": (rule(record="'up{job=\"a\"}'", expr="up"), ["is not a metric name; the selector belongs in expr"]),
    # durations, as prometheus/common parses them
    "for in words": (alert(**{"for": "5 minutes"}), ["('TeamDown'): for: '5 minutes' is not a valid duration"]),
    "for with units out of order": (alert(**{"for": "1m1h"}), ["for: '1m1h' is not a valid duration"]),
    "for beyond Go's duration": (alert(**{"for": "300y"}), ["for: '300y' is not a valid duration: out of range"]),
    "keep_firing_for unit": (alert(keep_firing_for="5M"), ["keep_firing_for: '5M' is not a valid duration"]),
    # PromQL
    "expr unclosed": (alert(expr="'sum(rate(x[5m])'"), ["('TeamDown'): expr: PromQL does not parse"]),
    "expr bad selector": (alert(expr="'up{job=}'"), ["expr: PromQL does not parse"]),
    "expr experimental": (alert(expr="'sort_by_label(up, \"job\")'"), ["sort_by_label is experimental"]),
    "expr Grafana variable": (alert(expr="'rate(up[$__rate_interval])'"), ["expr: PromQL does not parse"]),
    # label names
    "label __name__": (alert(labels="{__name__: x}"), ["'__name__' is not a valid label name"]),
    "label empty name": (alert(labels="{'': x}"), ["'' is not a valid label name"]),
    "annotation empty name": (alert(annotations="{'': x}"), ["'' is not a valid annotation name"]),
    # templates, as Prometheus parses an alert's labels and annotations
    "template never closed": (alert(annotations="{description: 'down: {{ $labels.job'}"), ["annotations.description is not a template", "unclosed action"]),
    "template unknown function": (alert(annotations="{description: '{{ humanise $value }}'}"), ["function 'humanise' not defined"]),
    "template undefined variable": (alert(annotations="{description: '{{ $label.job }}'}"), ["undefined variable '$label'"]),
    "template if without end": (alert(annotations="{summary: '{{ if $value }}high'}"), ["unexpected EOF"]),
    "template end without if": (alert(annotations="{summary: 'high{{ end }}'}"), ["unexpected {{end}}"]),
    "template empty action": (alert(labels="{severity: '{{ }}'}"), ["labels.severity is not a template"]),
    "template unclosed string": (alert(annotations="{summary: '{{ printf \"%s }}'}"), ["unterminated quoted string"]),
}


class TestWhatPrometheusRefusesStopsTheProgram:
    @pytest.mark.parametrize("text, expected", BAD.values(), ids=BAD.keys())
    def test_a_broken_file_is_named_with_its_group_and_rule(self, rules_dir, text, expected):
        message, resources = broken(rules_dir, text)
        assert message.startswith("stack 'dev': cannot render the stack: configs/prometheus/rules/team.yml")
        for part in expected:
            assert part in message
        assert resources == []

    def test_every_problem_is_in_one_message(self, rules_dir):
        (rules_dir / "a.yml").write_text(alert(expr="'up{'"))
        message, resources = broken(rules_dir, alert(annotations="{d: '{{ end }}'}"), name="b.yml")
        assert "(2 problems)" in message
        assert "configs/prometheus/rules/a.yml" in message and "configs/prometheus/rules/b.yml" in message
        assert resources == []

    @pytest.mark.parametrize("name, expected", [
        ("catalog.yml", "the name is taken by the alert catalog"),
        ("team.yaml", "Prometheus loads only *.yml rule files; rename it to team.yml"),
    ])
    def test_a_file_that_would_never_load(self, rules_dir, name, expected):
        message, resources = broken(rules_dir, alert(), name=name)
        assert f"configs/prometheus/rules/{name}: {expected}" in message
        assert resources == []


class TestGoTemplatesAsPromtoolParsesThem:
    """The template check against Debian's promtool (2.42), on templates that use nothing newer."""

    CASES = [
        "{{ $labels.instance }} is down", "{{ $labels.instance ", "{{ humanise $value }}", "{{ $value | humanize }}",
        "{{ if gt $value 1.0 }}high{{ end }}", "{{ if true }}a", "{{ end }}", "{{ $foo }}",
        '{{ range $i, $v := query "up" }}{{ $v.Labels.job }}{{ end }}', '{{ printf "%.2f" $value }}',
        "{{- $labels.job -}}", "{{/* c */}}x", "{{/* c ", "plain }} text", "{{ }}", "{{ $labels.job | 1 }}",
        '{{ "abc }}', '{{ index $labels "job" }}', "{{ with $labels.job }}{{ . }}{{ else }}none{{ end }}",
        "{{ if true }}a{{ else if false }}b{{ else }}c{{ end }}", '{{ define "x" }}{{ $labels }}{{ end }}',
        "{{ break }}", "{{ range $labels }}{{ break }}{{ end }}", "{{ ($value) }}", "{{ 1.5e3 }}", "{{ 12abc }}",
        "{{ 08 }}", "{{ 1+2i }}", "{{ $x := 1 }}{{ $x }}", '{{ "a".x }}', "{{ ( }}", "{{ ) }}", '{{ "\\q" }}',
        "{{ 'ab' }}", "{{ else }}", "{{ if 1 }}{{ else }}{{ else }}{{ end }}",
        "{{ with $x := 1 }}{{ $x }}{{ end }}{{ $x }}", "{{ template a }}", "{{ $labels | }}", "{{ | humanize }}",
        "{{ # }}", "{{ 1 2 }}", "{{ range $a, $b, $c := 1 }}{{ end }}", "{{ title \"x\" | toUpper }}",
        # numbers as strconv reads them: underscores, bases, range, imaginary parts
        "{{ 1_0 }}", "{{ 1__0 }}", "{{ 0_1 }}", "{{ 0x_1 }}", "{{ 00 }}", "{{ 0x }}", "{{ 0x1p-2 }}", "{{ 0x1F1.5 }}",
        "{{ 1e400 }}", "{{ 18446744073709551616 }}", "{{ 0x1i }}", "{{ 08i }}",
        # letters and digits as Go's unicode tables class them
        "{{ $labels.équipe }}", "{{ $labels.a² }}",
        # a template defined twice with a body
        '{{ define "b" }}{{ block "b" 1 }}x{{ end }}{{ end }}', '{{ block "b" 1 }}x{{ end }}{{ block "b" 2 }}y{{ end }}',
        '{{ define "b" }}{{ end }}{{ define "b" }}x{{ end }}',
    ]

    @pytest.mark.parametrize("text", CASES)
    def test_the_check_and_promtool_agree(self, tmp_path, text):
        promtool = require_tool("promtool")
        path = tmp_path / "t.yml"
        # JSON's quoting is YAML's double-quoted scalar: the template reaches promtool unchanged.
        path.write_text(alert(annotations="{d: " + json.dumps(text) + "}"))
        accepted = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True).returncode == 0
        assert (grammar.alert_template_problem(text, "TeamDown") is None) == accepted


class TestRuleFilesAsPromtoolReadsThem:
    """The rule file reader against Debian's promtool (2.42, yaml.v3 as Prometheus v3.14.0 uses it)
    on what both know: how YAML scalars decode into rulefmt's fields, and what a second document is."""

    CASES = [
        # a null duration is zero; an empty string is no duration
        alert(**{"for": ""}), alert(**{"for": "~"}), alert(**{"for": "''"}), alert(**{"for": "0"}), alert(**{"for": "5"}),
        # a group's limit: whatever yaml.v3 reads into an int
        *(f"groups:\n- name: team\n  limit: {value}\n  rules:\n  - alert: X\n    expr: up == 0\n" for value in (
            "10", "-3", "1.5", "1e3", "0x10", "0o7", "010", "08", "1_0", "0b11", "''", '"10"', "ten", "true",
            "9223372036854775807", "9223372036854775808", "1.5e400")),
        # label values: any scalar is read as its text; a list is not a string
        alert(labels="{severity: 0x10}"), alert(labels="{severity: [a]}"), alert(labels="{severity: ~}"),
        # only the first document is read
        alert() + "---\ngroups: [\n", "---\n" + alert(),
        # a key twice is an error; a map merged in with << gives way to the keys written out
        alert() + "    expr: up == 1\n", alert(labels="{a: x, a: y}"),
        "groups:\n- name: team\n  rules:\n  - &base\n    alert: X\n    expr: up == 0\n  - <<: *base\n    alert: Y\n",
        "groups:\n- name: team\n  rules:\n  - &base\n    alert: X\n    expr: up == 0\n  - <<: *base\n    severity: x\n",
        "l: &l {severity: a}\ngroups: []\n",
    ]

    @pytest.mark.parametrize("text", CASES)
    def test_the_reader_and_promtool_agree(self, tmp_path, text):
        promtool = require_tool("promtool")
        path = tmp_path / "t.yml"
        path.write_text(text)
        accepted = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True).returncode == 0
        assert (grammar.read_rule_file(text, scheme="legacy").problems == []) == accepted, text


@pytest.fixture
def warned(monkeypatch) -> list[str]:
    """The warnings the program logs, in order."""
    found = []
    monkeypatch.setattr(user_rules.pulumi.log, "warn", lambda message, *a, **k: found.append(message))
    return found


def dev_warnings(rules_dir, warned: list[str], team_rules: str) -> list[str]:
    """What rendering dev's rule files warns about, with `team_rules` as team.yml."""
    (rules_dir / "team.yml").write_text(team_rules)
    prometheus.rule_files("groups: []\n", parse("dev", stack_config("dev")))
    return warned


class TestUnproducedMetricsWarn:
    """A rule on a metric nothing in the stack produces is loaded, and warned about."""

    @pytest.mark.parametrize("expr, metric", [
        ("DCGM_FI_DEV_GPU_UTIL > 90", "DCGM_FI_DEV_GPU_UTIL (from gpu-exporter/dcgm"),
        ("rate(made_up_total[5m]) > 0", "made_up_total (in no namespace"),
        ("pg_up == 0", "pg_up (from postgres-exporter"),
    ])
    def test_the_warning_names_file_group_rule_and_metric(self, rules_dir, warned, expr, metric):
        (rules_dir / "team.yml").write_text(alert(expr=f"'{expr}'"))
        settings = parse("dev", stack_config("dev"))
        files = prometheus.rule_files("groups: []\n", settings)
        assert [f.path for f in files] == ["/etc/prometheus/rules/catalog.yml", "/etc/prometheus/rules/records.yml",
                                          "/etc/prometheus/rules/slos.yml", "/etc/prometheus/rules/team.yml"]
        (warning,) = warned
        assert warning.startswith("configs/prometheus/rules/team.yml: group 'team', rule 'TeamDown': ")
        assert metric in warning and "the rule never fires" in warning

    def test_rules_on_produced_metrics_and_recordings_do_not_warn(self, rules_dir, warned):
        (rules_dir / "team-rules.yml").write_text(FIXTURE.read_text())
        prometheus.rule_files("groups: []\n", parse("dev", stack_config("dev")))
        assert warned == []

    def test_a_second_yaml_document_warns(self, rules_dir, warned):
        (rules_dir / "team.yml").write_text(alert() + "---\n" + alert())
        prometheus.rule_files("groups: []\n")
        assert warned == ["configs/prometheus/rules/team.yml: holds 2 YAML documents; Prometheus reads only the first"]


class TestTheMessageListsEveryProblem:
    """One message for every problem (docs/alerting.md, "Rule files of your own"): a header that counts them,
    then each problem on a line of its own, as config_checks lists what it finds."""

    def test_two_problems_are_listed_one_a_line_under_a_count(self, rules_dir):
        (rules_dir / "catalog.yml").write_text(alert())
        message, resources = broken(rules_dir, alert(), name="team.yaml")
        assert message == (
            "stack 'dev': cannot render the stack: rule files under configs/prometheus/rules/ that Prometheus "
            "would refuse (2 problems):\n"
            "  - configs/prometheus/rules/catalog.yml: the name is taken by the alert catalog; rename the file "
            "(for example team-rules.yml)\n"
            "  - configs/prometheus/rules/team.yaml: Prometheus loads only *.yml rule files; rename it to team.yml"
        )
        assert resources == []

    def test_a_problem_without_a_line_names_the_file_alone(self, rules_dir):
        """A control character stops yaml.v3 before it has a line to give (reader.go: "control
        characters are not allowed"): the message names the file, with no line after it."""
        message, resources = broken(rules_dir, "groups:\n- name: te\x07am\n  rules: []\n")
        assert message.startswith("stack 'dev': cannot render the stack: configs/prometheus/rules/team.yml: "
                                  "not valid YAML: ")
        assert resources == []


def test_a_recording_rule_prometheus_cannot_parse_records_nothing(rules_dir):
    """A recording rule whose expr does not parse is never evaluated: its series is not produced."""
    (rules_dir / "team.yml").write_text(rule(record="job:errors:sum", expr="'sum(errors_total'"))
    assert user_rules.recorded_metrics() == set()


def test_a_namespace_of_several_undeployed_producers_names_each(rules_dir, monkeypatch, warned):
    """Where the metric catalog knows more than one producer for a metric's namespace, and the stack
    deploys none of them, the warning names them all (docs/grafana.md, "The metric catalog")."""
    catalog = rules_dir.parent / "catalog.yml"
    # With the application contract dev's objectives read.
    catalog.write_text("prometheus:\n  - up\nacme-exporter:\n  - acme_queue_depth\nacme-sidecar:\n  - acme_jobs_total\n"
                       "application:\n  - http_requests_total\n  - http_request_duration_seconds_bucket\n"
                       "  - http_request_duration_seconds_count\n")
    monkeypatch.setattr(user_rules, "METRICS", catalog)
    assert dev_warnings(rules_dir, warned, alert(expr="'acme_queue_depth > 100'")) == [
        "configs/prometheus/rules/team.yml: group 'team', rule 'TeamDown': nothing this stack deploys produces "
        "acme_queue_depth (from acme-exporter or acme-sidecar, which this stack does not deploy), by "
        "configs/metrics/catalog.yml; unless something else does, the rule never fires"
    ]


class TestWhatCountsAsProduced:
    """docs/grafana.md, "The metric catalog": a metric is produced when the catalog lists it for something
    the stack deploys, when it starts with the first word of such a metric, when it is part of the
    application contract, when a recording rule writes it, and for ALERTS and ALERTS_FOR_STATE.
    Anything else is warned about, every such metric of a rule in one warning."""

    @pytest.mark.parametrize("expr", [
        "rate(node_disk_io_time_seconds_total[5m]) > 0.9",  # not in the catalog; node-exporter runs in dev
        "container_memory_rss > 1e9",  # not in the catalog; cAdvisor runs in dev
        "rate(http_requests_total[5m]) > 100",  # the application contract
        'ALERTS{alertstate="firing"} > 0',  # written by Prometheus for every alerting rule
        "ALERTS_FOR_STATE > 0",
    ])
    def test_a_rule_on_what_the_stack_produces_does_not_warn(self, rules_dir, warned, expr):
        assert dev_warnings(rules_dir, warned, alert(expr=f"'{expr}'")) == []

    def test_every_unproduced_metric_of_a_rule_is_named_in_one_warning(self, rules_dir, warned):
        assert dev_warnings(rules_dir, warned, alert(expr="'made_up_total > 0 and pg_up == 0'")) == [
            "configs/prometheus/rules/team.yml: group 'team', rule 'TeamDown': nothing this stack deploys produces "
            "made_up_total (in no namespace of anything this stack deploys), pg_up (from postgres-exporter, which "
            "this stack does not deploy), by configs/metrics/catalog.yml; unless something else does, the rule "
            "never fires"
        ]

    def test_a_recording_rule_on_an_unproduced_metric_records_nothing(self, rules_dir, warned):
        assert dev_warnings(rules_dir, warned, rule(record="job:pg_up:min", expr="'min by (job) (pg_up)'")) == [
            "configs/prometheus/rules/team.yml: group 'team', rule 'job:pg_up:min': nothing this stack deploys "
            "produces pg_up (from postgres-exporter, which this stack does not deploy), by "
            "configs/metrics/catalog.yml; unless something else does, the rule records nothing"
        ]
