"""The safety net under the settings (components/settings/config_checks.py), and the grammar it reads the
rendered files with (components/settings/grammar.py).

Inputs reach the net here past the settings model on purpose: Settings built with model_copy
(which does not validate), load() patched to hand over such Settings, or hand-made workloads.
Each class of problem must be refused with the key (or file) that caused it, before any
resource is registered; the shipped stacks must pass untouched; and where Debian's promtool and
amtool know the feature, they must agree with the net.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.alerting import alert_rules
from components.settings import config_checks
from components import settings as settings_module
from components.settings.grammar import (
    ALERTMANAGER_FUNCTIONS,
    PROMETHEUS_FUNCTIONS,
    PROMETHEUS_TEMPLATE_PREFIX,
    TemplateError,
    parse_duration,
    parse_template,
    promql_problem,
    valid_label_name,
)
from components.settings import AlertOverride, ConfigError, Settings, parse
from components.workload import ConfigFile, Workload
from conftest import STACKS, Run, require_tool, run_program, stack_config, stack_secrets


def replace(model: Any, path: str, value: Any) -> Any:
    """A copy of a settings model with one value changed and nothing validated, as if the
    settings model had wrongly accepted it."""
    head, _, rest = path.partition(".")
    if not rest:
        return model.model_copy(update={head: value})
    return model.model_copy(update={head: replace(getattr(model, head), rest, value)})


def stack_settings(stack: str) -> Settings:
    values, secrets = stack_config(stack), stack_secrets(stack)
    return parse(stack, {**values, "secrets": secrets}, {"secrets"}) if secrets else parse(stack, values)


def rendered_workloads(monkeypatch, stack: str, tweak=lambda s: s) -> tuple[Settings, list[Workload]]:
    """Run the program for `stack` with its settings tweaked, and catch what the net is given."""
    seen: dict[str, Any] = {}
    original_load, original_check = settings_module.load, config_checks.check

    def load() -> Settings:
        return tweak(original_load())

    def spy(settings: Settings, workloads: list[Workload]) -> list[tuple[str, str]]:
        seen.update(settings=settings, workloads=workloads)
        return original_check(settings, workloads)

    monkeypatch.setattr(settings_module, "load", load)
    monkeypatch.setattr(config_checks, "check", spy)
    try:
        run_program(stack, stack_config(stack), stack_secrets(stack))
    except ConfigError:
        pass
    return seen["settings"], seen["workloads"]


def refused(run_stack: str, monkeypatch, tweak) -> tuple[str, Run]:
    """The ConfigError message of a run whose settings `tweak` spoils, and what it registered."""
    original_load = settings_module.load
    monkeypatch.setattr(settings_module, "load", lambda: tweak(original_load()))
    run = Run(run_stack)
    with pytest.raises(ConfigError) as error:
        run_program(run_stack, stack_config(run_stack), stack_secrets(run_stack), run=run)
    return str(error.value), run


def prometheus_template(text: str) -> None:
    parse_template(PROMETHEUS_TEMPLATE_PREFIX + text, PROMETHEUS_FUNCTIONS)


# ---------------------------------------------------------------------------------------------
# Go text/template, as Prometheus parses alert labels and annotations (Go 1.26 grammar).

# Each: accepted by text/template's parser with Prometheus's functions and rulefmt's variables.
TEMPLATES_ACCEPTED = {
    "plain text": "The alerting pipeline is working.",
    "braces that are not delimiters": "a { b } c }} d",
    "label": "{{ $labels.job }} target {{ $labels.instance }}",
    "printf pipeline": '{{ printf "%.1f" $value }}% of requests',
    "function chain": '{{ query "up" | first | value | humanize }}',
    "trim markers": "{{- $value -}}",
    "negative number, not a trim marker": "{{-3}}",
    "comment": "{{/* why */}}",
    "trimmed comment": "{{- /* why */ -}}",
    "if else": "{{ if gt $value 1.0 }}high{{ else }}low{{ end }}",
    "else if chain": "{{ if eq 1 2 }}a{{ else if eq 2 2 }}b{{ else }}c{{ end }}",
    "else with chain": "{{ with $labels.a }}{{ . }}{{ else with $labels.b }}{{ . }}{{ end }}",
    "range with break and continue": "{{ range $k, $v := $labels }}{{ if $v }}{{ continue }}{{ end }}{{ break }}{{ end }}",
    "declared variable": "{{ $x := humanize $value }}{{ $x }}",
    "assignment to a declared variable": "{{ $x := 1 }}{{ $x = 2 }}{{ $x }}",
    "define and template": '{{ define "x" }}y{{ end }}{{ template "x" . }}',
    "block": '{{ block "b" . }}{{ . }}{{ end }}',
    "parenthesized field": "{{ ($labels).job }}",
    "raw string over lines": "{{ `multi\nline` }}",
    "character constant": "{{ printf \"%c\" 'x' }}",
    "escaped character constant": "{{ printf \"%c\" '\\n' }}",
    "hexadecimal float": "{{ 0x1p-2 }}",
    "underscored integer": "{{ 1_000_000 }}",
    "complex number": "{{ 1+2i }}",
    "action over several lines": "{{ $labels.job\n}}",
    "dot and nil": "{{ . }}{{ if nil }}{{ end }}",
    "trailing pipe": '{{ "a" | }}',
    "every variable rulefmt declares": "{{ $externalLabels.env }} {{ $externalURL }} {{ $ }}",
}

# Each: refused by text/template, with a word of Go's reason.
TEMPLATES_REFUSED = {
    "unclosed action": ("https://runbooks/{{ $labels.job", "unclosed action"),
    "bare left delimiter": ("costs {{", "unclosed action"),
    "end without start": ("{{ end }}", "unexpected {{end}}"),
    "else without if": ("{{ else }}", "unexpected {{else}}"),
    "if without end": ("{{ if $value }}x", "unexpected EOF"),
    "unknown function": ("{{ humanise $value }}", "function 'humanise' not defined"),
    "Alertmanager-only function": ("{{ toJson $labels }}", "function 'toJson' not defined"),
    "undefined variable": ("{{ $job }}", "undefined variable '$job'"),
    "variable of a define's caller": ('{{ define "d" }}{{ $labels }}{{ end }}', "undefined variable '$labels'"),
    "unterminated string": ('{{ printf "%s }}', "unterminated quoted string"),
    "unterminated raw string": ("{{ `x }}", "unterminated raw quoted string"),
    "bad escape": ('{{ printf "\\q" }}', "invalid syntax"),
    "two characters in a character constant": ("{{ 'ab' }}", "malformed character constant"),
    "comment not closed": ("{{/* why }}", "unclosed comment"),
    "comment not at the delimiter": ("{{/* why */ }}", "comment ends before closing delimiter"),
    "literal after a pipe": ("{{ $value | 3 }}", "non executable command in pipeline stage 2"),
    "empty if": ("{{ if }}x{{ end }}", "missing value for if"),
    "empty parentheses": ("{{ ( ) }}", "missing value for parenthesized pipeline"),
    "unclosed parenthesis": ("{{ (humanize $value }}", "unclosed left paren"),
    "extra parenthesis": ("{{ humanize $value) }}", "unexpected right paren"),
    "break outside range": ("{{ if $value }}{{ break }}{{ end }}", "{{break}} outside {{range}}"),
    "else with after if": ("{{ if $value }}a{{ else with $value }}b{{ end }}", "unexpected <with>"),
    "field of a literal": ('{{ "a".b }}', "unexpected . after term"),
    "octal digit 9": ("{{ 089 }}", "integer overflow"),
    "float out of range": ("{{ 1e400 }}", "illegal number syntax"),
    "letter after a number": ("{{ 12ab }}", "bad number syntax"),
    "control character in an action": ("{{ \x01 }}", "unrecognized character"),
    "non-ASCII symbol in an action": ("{{ $value → }}", "unrecognized character"),
    "too many range variables": ("{{ range $a, $b, $c := $labels }}{{ end }}", "too many declarations"),
    "define in a define": ('{{ define "a" }}{{ define "b" }}{{ end }}{{ end }}', "unexpected <define>"),
    "template name not quoted": ("{{ template x }}", "unexpected"),
    "two non-empty definitions": ('{{ define "a" }}1{{ end }}{{ define "a" }}2{{ end }}', "multiple definition"),
}


class TestGoTemplateGrammar:
    @pytest.mark.parametrize("text", TEMPLATES_ACCEPTED.values(), ids=TEMPLATES_ACCEPTED.keys())
    def test_what_text_template_accepts_parses(self, text):
        prometheus_template(text)

    @pytest.mark.parametrize("text, reason", TEMPLATES_REFUSED.values(), ids=TEMPLATES_REFUSED.keys())
    def test_what_text_template_refuses_is_refused_with_its_reason(self, text, reason):
        with pytest.raises(TemplateError, match=None) as error:
            prometheus_template(text)
        assert reason in str(error.value)

    # Each function: whether Prometheus v3.14.0 and Alertmanager v0.34.0 register it.
    FUNCTIONS = [
        ("humanize", True, False), ("humanizePercentage", True, False), ("query", True, False),
        ("urlQueryEscape", True, False), ("toJson", False, True), ("safeUrl", False, True),
        ("trimSpace", False, True), ("dict", False, True), ("routeLabels", False, True),
        ("toUpper", True, True), ("humanizeDuration", True, True), ("reReplaceAll", True, True),
        ("printf", True, True), ("urlquery", True, True), ("humanise", False, False), ("break", False, False),
    ]

    @pytest.mark.parametrize("name, in_prometheus, in_alertmanager", FUNCTIONS)
    def test_each_program_knows_its_own_functions(self, name, in_prometheus, in_alertmanager):
        for functions, known in ((PROMETHEUS_FUNCTIONS, in_prometheus), (ALERTMANAGER_FUNCTIONS, in_alertmanager)):
            text = f"{{{{ {name} }}}}"
            if known:
                parse_template(text, functions)
            else:
                with pytest.raises(TemplateError):
                    parse_template(text, functions)

    def test_defines_and_calls_are_collected(self):
        parsed = parse_template('{{ define "a" }}{{ template "b" . }}{{ end }}{{ template "a" . }}', frozenset())
        assert parsed.defines == {"a": {"b"}}
        assert parsed.calls == {"a"}


# ---------------------------------------------------------------------------------------------
# Durations, label names, PromQL.

SECOND = 10**9


class TestDurations:
    @pytest.mark.parametrize("text, nanoseconds", [
        ("0", 0), ("0s", 0), ("15s", 15 * SECOND), ("1h30m", 5400 * SECOND), ("1y2w3d", (365 + 14 + 3) * 86400 * SECOND),
        ("250ms", SECOND // 4), ("106751d", 106751 * 86400 * SECOND), ("292y", 292 * 365 * 86400 * SECOND),
    ])
    def test_prometheus_durations_parse_exactly(self, text, nanoseconds):
        assert parse_duration(text) == nanoseconds

    @pytest.mark.parametrize("text", [
        "", "15", "15x", "1.5h", "-5m", "+5m", "5 m", "15s\n", "1m1h", "1s1s", "1d1w", "106752d", "293y",
        "99999999999999999999s", "5M", "1µs", "٣s",
    ])
    def test_what_prometheus_refuses_is_refused(self, text):
        with pytest.raises(ValueError):
            parse_duration(text)


class TestLabelNames:
    @pytest.mark.parametrize("name, utf8, legacy", [
        ("team", True, True), ("_private", True, True), ("team_2", True, True),
        ("team-name", True, False), ("2team", True, False), ("k8s.io/app", True, False), ("équipe", True, False),
        ("", False, False), ("\ud800", False, False),
    ])
    def test_names_follow_the_scheme_in_force(self, name, utf8, legacy):
        assert valid_label_name(name, "utf8") is utf8
        assert valid_label_name(name, "legacy") is legacy


class TestPromQL:
    @pytest.mark.parametrize("expr", ["up == 0", "sum by (job) (rate(x_total[5m])) > 1", 'up{"k8s.io/app"="x"}',
                                      "rate(x[1h:1m] offset -5m)"])
    def test_valid_expressions_pass(self, expr):
        assert promql_problem(expr) is None

    @pytest.mark.parametrize("expr, reason", [
        ("rate(x[5m]", "PromQL does not parse"), ("up ==", "PromQL does not parse"), ("sum by (a-b) (up)", "PromQL does not parse"),
        ("rate(x[210240000m])", "out of range"), ("", "must be set"),
        ("sort_by_label(up, \"job\")", "experimental"), ("limitk(1, up)", "experimental"),
        ("info(up)", "experimental"), ("mad_over_time(x[5m])", "experimental"),
    ])
    def test_what_prometheus_refuses_is_refused(self, expr, reason):
        assert reason in (promql_problem(expr) or "")

    def test_experimental_functions_pass_where_the_flag_enables_them(self):
        assert promql_problem("sort_by_label(up, \"job\")", experimental=True) is None


# ---------------------------------------------------------------------------------------------
# The net over a rendered stack, with values the settings model should have refused.

def _override(alert: str = "HostHighCpu", **values: Any) -> dict[str, AlertOverride]:
    return {alert: AlertOverride.model_construct(**{"enabled": True, "threshold": None, "for_": None,
                                                    "severity": None, **values})}


# Each: stack, the setting spoiled (past the settings model), its value, the key the net must
# name, and a word of the reason.
SPOILED = {
    "template in the runbook URL": ("dev", "alerts.runbook_url", "https://runbooks/{{ $labels.job", "alerts.runbook_url", "bad character"),
    "unknown template function in the runbook URL": ("dev", "alerts.runbook_url", "{{ lookup . }}/x", "alerts.runbook_url", "not defined"),
    "template in a Slack channel": ("staging", "alertmanager.receivers.slack.critical_channel", "#alerts-{{", "alertmanager.receivers.slack.critical_channel", "unclosed action"),
    "undefined variable in a Slack channel": ("staging", "alertmanager.receivers.slack.warning_channel", "{{ $channel }}", "alertmanager.receivers.slack.warning_channel", "undefined variable"),
    "empty external label name": ("dev", "prometheus.external_labels", {"": "x"}, 'prometheus.external_labels[""]', "external label name"),
    "invalid UTF-8 external label name": ("prod", "prometheus.external_labels", {"te\ud800am": "x"}, 'prometheus.external_labels["te\\ud800am"]', "external label name"),
    "empty group_by label": ("dev", "alertmanager.group_by", ["alertname", ""], "alertmanager.group_by", "group_by"),
    "group_by label twice": ("dev", "alertmanager.group_by", ["job", "job"], "alertmanager.group_by", "twice"),
    "group_by wildcard with labels": ("dev", "alertmanager.group_by", ["...", "job"], "alertmanager.group_by", "'...'"),
    "malformed group_wait": ("dev", "alertmanager.group_wait", "30x", "alertmanager.group_wait", "unknown unit"),
    "repeat_interval out of range": ("staging", "alertmanager.repeat_interval", "300y", "alertmanager.repeat_interval", "out of range"),
    "zero group_interval": ("dev", "alertmanager.group_interval", "0s", "alertmanager.group_interval", "of zero"),
    "watchdog repeat of zero": ("prod", "alertmanager.receivers.watchdog.repeat_interval", "0m", "alertmanager.receivers.watchdog.repeat_interval", "of zero"),
    "scrape interval with a newline": ("dev", "prometheus.scrape_interval", "15s\n", "prometheus.scrape_interval", "unknown unit"),
    "scrape timeout above the interval": ("staging", "prometheus.scrape_timeout", "1m", "prometheus.scrape_timeout", "longer than scrape_interval"),
    "evaluation interval with units out of order": ("dev", "prometheus.evaluation_interval", "1m1h", "prometheus.evaluation_interval", "not a valid duration"),
    "retention beyond Go's range": ("prod", "prometheus.retention.time", "300y", "prometheus.retention.time", "out of range"),
    "scrape interval that makes the rate window overflow": ("dev", "prometheus.scrape_interval", "100y", "prometheus.scrape_interval", "out of range"),
    "alert for with a bad unit": ("dev", "alerts.overrides", _override(for_="5 minutes"), "alerts.overrides.HostHighCpu.for", "unknown unit"),
    "alert for beyond Go's range": ("staging", "alerts.overrides", _override(for_="999999999h"), "alerts.overrides.HostHighCpu.for", "out of range"),
    # An alert on a scrape job of the cluster itself, not on a service the stack runs.
    "kubernetes alert for with a bad unit": ("prod", "alerts.overrides", _override("KubePersistentVolumeFillingUpCritical", for_="5 minutes"), "alerts.overrides.KubePersistentVolumeFillingUpCritical.for", "unknown unit"),
}


class TestNetNamesTheKeyThatCausedIt:
    @pytest.mark.parametrize("stack, path, value, key, reason", SPOILED.values(), ids=SPOILED.keys())
    def test_each_spoiled_setting_is_refused_before_any_resource(self, monkeypatch, stack, path, value, key, reason):
        message, run = refused(stack, monkeypatch, lambda s: replace(s, path, value))
        assert run.resources == [], "resources were registered before the configuration was refused"
        assert message.startswith(f"stack {stack!r}: the configuration rendered from stacks/Pulumi.{stack}.yaml")
        lines = [line for line in message.splitlines() if line.startswith(f"  - key {key!r}: ")]
        assert lines, f"no problem names {key!r}:\n{message}"
        assert any(reason in line for line in lines), message

    def test_every_problem_is_listed_in_one_message(self, monkeypatch):
        def spoil(s: Settings) -> Settings:
            s = replace(s, "alerts.runbook_url", "{{")
            s = replace(s, "alertmanager.group_wait", "1x")
            return replace(s, "prometheus.external_labels", {"": "x"})

        message, run = refused("dev", monkeypatch, spoil)
        assert run.resources == []
        for key in ("alerts.runbook_url", "alertmanager.group_wait", 'prometheus.external_labels[""]'):
            assert f"  - key {key!r}: " in message
        # One line per problem and rule file, however many rules it reaches: the runbook links
        # are in the catalog and in the rules of dev's objectives.
        assert message.count("\n  - ") == 4, message
        assert message.count("\n  - key 'alerts.runbook_url': ") == 2, message

    def test_a_problem_in_many_rules_is_one_line_naming_them(self, monkeypatch):
        message, _ = refused("dev", monkeypatch, lambda s: replace(s, "alerts.runbook_url", "{{ x"))
        (line,) = [line for line in message.splitlines() if "alerts.runbook_url" in line and "catalog.yml" in line]
        assert "rules 'Watchdog', 'ServiceDown'" in line and "more" in line


# ---------------------------------------------------------------------------------------------
# Hand-made files: what no setting can spoil today, but a file under configs/ or a future
# change can.

def workload_with(workloads: list[Workload], name: str, files: dict[str, str], args: tuple[str, ...] = ()) -> list[Workload]:
    """The stack's workloads with some files of one workload replaced or added."""
    result = []
    for w in workloads:
        if w.name == name:
            kept = {f.path: f.content for f in w.config_files}
            kept.update(files)
            w = dataclasses.replace(w, config_files=tuple(ConfigFile(p, c) for p, c in kept.items()),
                                    args=w.args + args)
        result.append(w)
    return result


def edited(workloads: list[Workload], name: str, path: str, edit) -> dict[str, str]:
    """One of a workload's files, loaded, changed by `edit` and dumped again."""
    content = next(f.content for w in workloads if w.name == name for f in w.config_files if f.path == path)
    document = yaml.safe_load(content)
    edit(document)
    return {path: yaml.safe_dump(document, sort_keys=False)}


PROM_YML = "/etc/prometheus/prometheus.yml"
AM_YML = "/etc/alertmanager/alertmanager.yml"
TEAM_RULES = "/etc/prometheus/rules/team.yml"


def team_rules(rule: dict) -> str:
    return yaml.safe_dump({"groups": [{"name": "team", "rules": [rule]}]}, sort_keys=False)


GOOD_RULE = {"alert": "TeamDown", "expr": "up == 0", "for": "5m", "labels": {"severity": "critical"},
             "annotations": {"summary": "Down.", "description": "{{ $labels.instance }} is down."}}


def first_job(document: dict) -> dict:
    return document["scrape_configs"][0]


# Each: workload, files to put in place (given the stack's workloads), where the problem is
# named, and a word of the reason.
HAND_MADE = {
    "user rule: annotation that does not parse": ("prometheus", lambda w: {TEAM_RULES: team_rules({**GOOD_RULE, "annotations": {"description": "{{ $labels.instance"}})}, "configs/prometheus/rules/team.yml", "unclosed action"),
    "user rule: expr that does not parse": ("prometheus", lambda w: {TEAM_RULES: team_rules({**GOOD_RULE, "expr": "up =="})}, "configs/prometheus/rules/team.yml", "PromQL does not parse"),
    "user rule: invalid label name": ("prometheus", lambda w: {TEAM_RULES: team_rules({**GOOD_RULE, "labels": {"__name__": "x"}})}, "configs/prometheus/rules/team.yml", "is not a valid label name"),
    "user rule: unknown field": ("prometheus", lambda w: {TEAM_RULES: team_rules({**GOOD_RULE, "annotation": {}})}, "configs/prometheus/rules/team.yml", "unknown field 'annotation'"),
    "user rule: for with a bad unit": ("prometheus", lambda w: {TEAM_RULES: team_rules({**GOOD_RULE, "for": "5min"})}, "configs/prometheus/rules/team.yml", "unknown unit"),
    "user rule: both alert and record": ("prometheus", lambda w: {TEAM_RULES: team_rules({**GOOD_RULE, "record": "x"})}, "configs/prometheus/rules/team.yml", "exactly one of"),
    "user rule: not YAML": ("prometheus", lambda w: {TEAM_RULES: "groups: [\n"}, "configs/prometheus/rules/team.yml", "not valid YAML"),
    "user rule: group name twice": ("prometheus", lambda w: {TEAM_RULES: yaml.safe_dump({"groups": [{"name": "a", "rules": []}, {"name": "a", "rules": []}]})}, "configs/prometheus/rules/team.yml", "used twice"),
    "scrape job named twice": ("prometheus", lambda w: edited(w, "prometheus", PROM_YML, lambda d: d["scrape_configs"].append(dict(first_job(d)))), "components/services/prometheus.py (prometheus.yml)", "second scrape job"),
    "job timeout above its interval": ("prometheus", lambda w: edited(w, "prometheus", PROM_YML, lambda d: first_job(d).update(scrape_interval="10s", scrape_timeout="20s")), "components/services/prometheus.py (prometheus.yml)", "longer than its scrape_interval"),
    "relabel target label invalid under legacy names": ("prometheus", lambda w: edited(w, "prometheus", PROM_YML, lambda d: (d["global"].update(metric_name_validation_scheme="legacy"), first_job(d).update(relabel_configs=[{"target_label": "team-name", "replacement": "x"}]))), "components/services/prometheus.py (prometheus.yml)", "invalid 'target_label'"),
    "relabel regex that does not compile": ("prometheus", lambda w: edited(w, "prometheus", PROM_YML, lambda d: first_job(d).update(relabel_configs=[{"action": "keep", "regex": "(", "source_labels": ["job"]}])), "components/services/prometheus.py (prometheus.yml)", "does not compile"),
    "target given as a URL": ("prometheus", lambda w: edited(w, "prometheus", PROM_YML, lambda d: first_job(d)["static_configs"][0].update(targets=["http://api:8080/metrics"])), "components/services/prometheus.py (prometheus.yml)", "host:port"),
    "unknown name validation scheme": ("prometheus", lambda w: edited(w, "prometheus", PROM_YML, lambda d: d["global"].update(metric_name_validation_scheme="ascii")), "configs/prometheus/prometheus.yml", "metric_name_validation_scheme"),
    "experimental function without the flag": ("prometheus", lambda w: {TEAM_RULES: team_rules({**GOOD_RULE, "expr": "sort_by_label(up, \"job\") == 0"})}, "configs/prometheus/rules/team.yml", "experimental"),
    "route to a missing receiver": ("alertmanager", lambda w: edited(w, "alertmanager", AM_YML, lambda d: d["route"]["routes"].append({"matchers": ['severity="critical"'], "receiver": "pagerduty"})), "alertmanager.receivers.pagerduty", "not defined"),
    "root route without a receiver": ("alertmanager", lambda w: edited(w, "alertmanager", AM_YML, lambda d: d["route"].pop("receiver")), "components/services/alertmanager.py (alertmanager.yml)", "default receiver"),
    "receiver named twice": ("alertmanager", lambda w: edited(w, "alertmanager", AM_YML, lambda d: d["receivers"].append({"name": "null"})), "components/services/alertmanager.py (alertmanager.yml)", "second receiver"),
    "matcher that does not parse": ("alertmanager", lambda w: edited(w, "alertmanager", AM_YML, lambda d: d["route"]["routes"][0].update(matchers=['alert name="x"'])), "components/services/alertmanager.py (alertmanager.yml)", "bad matcher format"),
    "matcher regex that does not compile": ("alertmanager", lambda w: edited(w, "alertmanager", AM_YML, lambda d: d["route"]["routes"][0].update(matchers=['job=~"("'])), "components/services/alertmanager.py (alertmanager.yml)", "does not compile"),
    "inhibit label invalid in classic mode": ("alertmanager-classic", lambda w: edited(w, "alertmanager", AM_YML, lambda d: d["inhibit_rules"][0].update(equal=["alert-name"])), "components/services/alertmanager.py (alertmanager.yml)", "equal list"),
    "notification template that does not parse": ("alertmanager", lambda w: {"/etc/alertmanager/notifications.tmpl": '{{ define "obs.title" }}{{ .Status | toUpper }{{ end }}'}, "configs/alertmanager/notifications.tmpl", "notification template"),
    "notification template calling an unknown function": ("alertmanager", lambda w: {"/etc/alertmanager/extra.tmpl": '{{ define "x" }}{{ humanize 1 }}{{ end }}'}, "configs/alertmanager/extra.tmpl", "function 'humanize' not defined"),
}


@pytest.fixture(scope="module")
def staging() -> tuple[Settings, list[Workload]]:
    """staging's settings and workloads as the program renders them (Slack enabled)."""
    patch = pytest.MonkeyPatch()
    try:
        return rendered_workloads(patch, "staging")
    finally:
        patch.undo()


class TestHandMadeFiles:
    @pytest.mark.parametrize("name, files, where, reason", HAND_MADE.values(), ids=HAND_MADE.keys())
    def test_each_file_problem_is_refused_naming_its_origin(self, staging, name, files, where, reason):
        settings, workloads = staging
        assert config_checks.check(settings, workloads) == []
        args = ("--enable-feature=classic-mode",) if name.endswith("-classic") else ()
        name = name.removesuffix("-classic")
        problems = config_checks.check(settings, workload_with(workloads, name, files(workloads), args))
        assert [p for p in problems if p[0] == where and reason in p[1]], problems

    def test_renaming_a_template_that_slack_calls_is_refused(self, staging):
        settings, workloads = staging
        tmpl = next(f for w in workloads for f in w.config_files if f.path.endswith("notifications.tmpl"))
        renamed = tmpl.content.replace('define "obs.title"', 'define "obs.heading"')
        problems = config_checks.check(settings, workload_with(workloads, "alertmanager", {tmpl.path: renamed}))
        assert any("calls the template 'obs.title'" in text for _, text in problems), problems

    def test_experimental_functions_pass_where_prometheus_enables_them(self, staging):
        settings, workloads = staging
        rules = {TEAM_RULES: team_rules({**GOOD_RULE, "expr": 'sort_by_label(up, "job") == 0'})}
        flag = ("--enable-feature=promql-experimental-functions",)
        assert config_checks.check(settings, workload_with(workloads, "prometheus", rules, flag)) == []

    def test_utf8_label_names_pass_where_no_legacy_scheme_is_set(self, staging):
        settings, workloads = staging
        rules = {TEAM_RULES: team_rules({**GOOD_RULE, "labels": {"k8s.io/team": "core"}})}
        assert config_checks.check(settings, workload_with(workloads, "prometheus", rules)) == []

    def test_a_broken_catalog_entry_is_named_in_the_catalog(self, staging, monkeypatch, tmp_path):
        settings, _ = staging
        catalog = yaml.safe_load(alert_rules.CATALOG.read_text())
        entry = catalog["groups"][0]["alerts"][1]
        entry["description"] = "{{ $labels.job"
        path = tmp_path / "catalog.yml"
        path.write_text(yaml.safe_dump(catalog, sort_keys=False))
        monkeypatch.setattr(alert_rules, "CATALOG", path)
        _, workloads = rendered_workloads(monkeypatch, "staging")
        problems = config_checks.check(settings, workloads)
        assert [p for p in problems if p[0] == f"configs/alerts/catalog.yml: {entry['name']}" and "unclosed action" in p[1]], problems


# ---------------------------------------------------------------------------------------------
# The shipped stacks.

class TestShippedStacks:
    @pytest.mark.parametrize("stack", STACKS)
    def test_the_net_finds_nothing_and_the_program_deploys(self, monkeypatch, stack):
        results = []
        original = config_checks.check
        monkeypatch.setattr(config_checks, "check", lambda s, w: results.append(original(s, w)) or results[-1])
        run = run_program(stack, stack_config(stack), stack_secrets(stack))
        assert results == [[]], "the net ran once and found nothing"
        assert run.resources, "the stack deployed"


# ---------------------------------------------------------------------------------------------
# Debian's promtool (2.42) and amtool (0.25) agree with the net where they know the feature.
# Both are older than the pinned releases: they read label names with the legacy scheme only,
# so the net is run with that scheme where names are compared.

RULE_TEMPLATES_BOTH_ACCEPT = ["{{ $labels.job }} is down", '{{ printf "%.1f" $value }}%', "{{ humanize $value }}",
                              "{{ if gt $value 1.0 }}high{{ end }}", "{{/* note */}}plain", "{{- $labels.instance -}}",
                              "{{ range $k, $v := $labels }}{{ $k }}{{ end }}", "{ not a template }"]
RULE_TEMPLATES_BOTH_REFUSE = ["{{ $labels.job", "{{ end }}", "{{ humanise $value }}", "{{ $job }}", '{{ printf "%s }}',
                              "{{/* note */ }}", "{{ $value | 3 }}", "{{ break }}", "{{ if $value }}x"]


def promtool_rules(promtool: str, tmp_path: Path, rule: dict) -> bool:
    path = tmp_path / "rules.yml"
    path.write_text(team_rules(rule))
    return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True).returncode == 0


def net_rules(rule: dict, scheme: str = "utf8") -> bool:
    return not config_checks.rule_file_problems(team_rules(rule), scheme)


class TestAgreesWithPromtool:
    @pytest.mark.parametrize("template", RULE_TEMPLATES_BOTH_ACCEPT + RULE_TEMPLATES_BOTH_REFUSE)
    def test_rule_templates(self, tmp_path, template):
        promtool = require_tool("promtool")
        rule = {**GOOD_RULE, "annotations": {"description": template}}
        expected = template in RULE_TEMPLATES_BOTH_ACCEPT
        assert promtool_rules(promtool, tmp_path, rule) is expected
        assert net_rules(rule) is expected

    @pytest.mark.parametrize("change, accepted", [
        ({"expr": "sum by (job) (rate(x_total[5m])) > 1"}, True), ({"expr": "rate(x[5m]"}, False),
        ({"expr": "up =="}, False), ({"for": "1h30m"}, True), ({"for": "90 minutes"}, False),
        ({"labels": {"team_name": "x"}}, True), ({"labels": {"team-name": "x"}}, False),
        ({"labels": {"__name__": "x"}}, False), ({"labels": {"severity": "{{ $labels.job"}}, False),
        ({"keep": True}, False),
    ])
    def test_rule_fields(self, tmp_path, change, accepted):
        promtool = require_tool("promtool")
        rule = {**GOOD_RULE, **change}
        assert promtool_rules(promtool, tmp_path, rule) is accepted
        assert net_rules(rule, scheme="legacy") is accepted

    @pytest.mark.parametrize("change, accepted", [
        ({}, True),
        ({"global": {"scrape_interval": "15s", "scrape_timeout": "10s", "external_labels": {"team": "x"}}}, True),
        ({"global": {"scrape_interval": "15x"}}, False),
        ({"global": {"scrape_interval": "15s", "scrape_timeout": "1m"}}, False),
        ({"global": {"external_labels": {"team-name": "x"}}}, False),
        ({"global": {"external_labels": {"": "x"}}}, False),
        ({"scrape_configs": [{"job_name": "a", "static_configs": [{"targets": ["a:1"]}]}] * 2}, False),
        ({"scrape_configs": [{"job_name": "a", "scrape_interval": "10s", "scrape_timeout": "20s",
                              "static_configs": [{"targets": ["a:1"]}]}]}, False),
        ({"scrape_configs": [{"job_name": "a", "static_configs": [{"targets": ["http://a:1/x"]}]}]}, False),
        ({"scrape_configs": [{"job_name": "a", "static_configs": [{"targets": ["a:1"]}],
                              "relabel_configs": [{"source_labels": ["job"], "regex": "(", "action": "keep"}]}]}, False),
    ])
    def test_prometheus_config(self, tmp_path, change, accepted):
        promtool = require_tool("promtool")
        document = {"global": {"scrape_interval": "15s"}, "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": ["localhost:9090"]}]}], **change}
        text = yaml.safe_dump(document)
        path = tmp_path / "prometheus.yml"
        path.write_text(text)
        result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True)
        assert (result.returncode == 0) is accepted, result.stdout + result.stderr
        legacy = {**document, "global": {**document["global"], "metric_name_validation_scheme": "legacy"}}
        problems = config_checks.prometheus_config_problems(legacy, parse("dev", {"platform": "docker"}))
        assert (not problems) is accepted, problems


AM_BASE = {"route": {"receiver": "null", "group_by": ["alertname"], "routes": [
    {"matchers": ['severity="critical"'], "receiver": "null"}]}, "receivers": [{"name": "null"}], "templates": ["*.tmpl"]}


class TestAgreesWithAmtool:
    @pytest.mark.parametrize("change, template, accepted", [
        ({}, '{{ define "t" }}{{ .Status | toUpper }}{{ end }}', True),
        ({}, '{{ define "t" }}{{ range .Alerts }}{{ .Labels.job }}{{ end }}{{ end }}', True),
        ({}, '{{ define "t" }}{{ .Status | toUpper }{{ end }}', False),
        ({}, '{{ define "t" }}{{ humanize 1 }}{{ end }}', False),
        ({}, '{{ define "t" }}x', False),
        ({"route": {**AM_BASE["route"], "receiver": "pager"}}, "", False),
        ({"route": {**AM_BASE["route"], "group_by": ["alert-name"]}}, "", False),
        ({"route": {**AM_BASE["route"], "group_wait": "30x"}}, "", False),
        ({"route": {**AM_BASE["route"], "repeat_interval": "0s"}}, "", False),
        ({"route": {**AM_BASE["route"], "routes": [{"matchers": ['severity=~"("'], "receiver": "null"}]}}, "", False),
        ({"receivers": [{"name": "null"}, {"name": "null"}]}, "", False),
    ])
    def test_alertmanager_config(self, tmp_path, change, template, accepted):
        amtool = require_tool("amtool")
        document = {**AM_BASE, **change}
        (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(document))
        if template:
            (tmp_path / "notifications.tmpl").write_text(template)
        result = subprocess.run([amtool, "check-config", "alertmanager.yml"], cwd=tmp_path, capture_output=True, text=True)
        assert (result.returncode == 0) is accepted, result.stdout + result.stderr
        files = {"/etc/alertmanager/alertmanager.yml": yaml.safe_dump(document)}
        if template:
            files["/etc/alertmanager/notifications.tmpl"] = template
        workload = Workload(name="alertmanager", image="x", ports=(), resources=parse("dev", {"platform": "docker"}).alertmanager.resources,
                            config_files=tuple(ConfigFile(p, c) for p, c in files.items()), run_as_user=1,
                            args=("--enable-feature=classic-mode",))
        problems = config_checks.check(parse("dev", {"platform": "docker"}), [workload])
        assert (not problems) is accepted, problems
