"""The safety net under the settings: rendered files the services would refuse never ship.

The settings model checks each key; this module checks what the program made of them, the files
themselves, with the grammar the consuming programs have at the pinned releases (Prometheus
v3.14.0, Alertmanager v0.34.0, both built with Go 1.26). A value that got past the settings, or
a mistake in a file under configs/, is reported here before any resource is registered, so no
single input can make Prometheus refuse its rule files or Alertmanager its configuration.

What is checked:
- prometheus.yml: durations (Prometheus syntax and range), scrape_timeout against
  scrape_interval, job names (set, unique), label names of external labels and static target
  labels, relabel rules (action, target_label, regex), the name validation scheme.
- every rule file the config loads, read as Prometheus's rulefmt reads it (YAML, unknown fields,
  group names, durations, every `expr` with experimental functions only where Prometheus's flag
  enables them, label and annotation names, and every label and annotation value of an alerting
  rule as a Go template with Prometheus's functions).
- alertmanager.yml: durations, receivers (named, unique, every route's receiver defined), the
  root route, group_by and inhibition label names, matchers, the Slack and PagerDuty fields that
  Alertmanager expands as templates, and the notification templates (*.tmpl) the config loads,
  including every template a receiver field names.

Label names follow the scheme in force: UTF-8 (any non-empty valid UTF-8) unless prometheus.yml
sets `metric_name_validation_scheme: legacy`, or Alertmanager runs with
`--enable-feature=classic-mode`, where names are [a-zA-Z_][a-zA-Z0-9_]*.

Templates, durations, label names, PromQL and the rule file format are read with
components/settings/grammar.py (what it covers and what it does not is said there). Beyond it:
- regular expressions are compiled with RE2 (google-re2), the engine Go's regexp follows;
- prometheus.yml keys outside those above (service discovery, remote write, TLS) are not
  checked against Prometheus's schema.

Each problem names the stack key that caused it where one did (prometheus.external_labels.<name>,
prometheus.scrape_targets[i], alerts.overrides.<Name>, alerts.runbook_url,
alertmanager.receivers.slack.<key>, ...), and otherwise the file under configs/ or the component
that rendered it.
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import re2
import yaml

from components import ROOT, yaml_text
from components.alerting import alert_rules, recording_rules, slos
from components.services import prometheus
from components.settings.grammar import (
    ALERTMANAGER_FUNCTIONS,
    Rule,
    RuleFile,
    TemplateError,
    parse_duration,
    parse_template,
    promql_problem,
    read_rule_file,
    scalar_text,
    scheme_rule,
    valid_label_name,
    valid_utf8,
)
from components.settings import Settings
from components.workload import Workload

# Templates Alertmanager v0.34.0 always loads (template/default.tmpl and email.tmpl): a receiver
# field may call these without a file of its own.
ALERTMANAGER_DEFAULT_TEMPLATES = frozenset(
    """__alertmanager __alertmanagerURL __subject __description __text_alert_list
    __text_alert_list_markdown slack.default.title slack.default.username slack.default.fallback
    slack.default.callbackid slack.default.pretext slack.default.titlelink slack.default.iconemoji
    slack.default.iconurl slack.default.text slack.default.footer slack.default.color
    pagerduty.default.description pagerduty.default.client pagerduty.default.clientURL
    pagerduty.default.instances opsgenie.default.message opsgenie.default.description
    opsgenie.default.source wechat.default.message wechat.default.to_user wechat.default.to_party
    wechat.default.to_tag wechat.default.agent_id victorops.default.state_message
    victorops.default.entity_display_name victorops.default.monitoring_tool pushover.default.title
    pushover.default.message pushover.default.url sns.default.subject sns.default.message
    telegram.default.message discord.default.content discord.default.title discord.default.message
    webex.default.message msteams.default.summary msteams.default.title msteams.default.text
    msteamsv2.default.title msteamsv2.default.text jira.default.summary jira.default.description
    rocketchat.default.title rocketchat.default.alias rocketchat.default.titlelink
    rocketchat.default.emoji rocketchat.default.iconurl rocketchat.default.text
    mattermost.default.color mattermost.default.username mattermost.default.title
    mattermost.default.titlelink mattermost.default.fallback mattermost.default.text
    email.default.subject email.default.html""".split()
)


# ---------------------------------------------------------------------------------------------
# Where a problem came from.

PROMETHEUS_BASE = "configs/prometheus/prometheus.yml"
PROMETHEUS_RENDERED = "components/services/prometheus.py (prometheus.yml)"
ALERTMANAGER_RENDERED = "components/services/alertmanager.py (alertmanager.yml)"
CATALOG = "configs/alerts/catalog.yml"


@dataclass
class _Report:
    """Problems in the order found. The same problem in several rules (one bad setting shows in
    every rule it reaches) is reported once, naming the rules."""

    found: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)

    def add(self, where: str, message: str, prefix: str = "", subject: str = "") -> None:
        subjects = self.found.setdefault((where, prefix, message), [])
        if subject and subject not in subjects:
            subjects.append(subject)

    @property
    def problems(self) -> list[tuple[str, str]]:
        result = []
        for (where, prefix, message), subjects in self.found.items():
            names = [subject.removeprefix("rule ") for subject in subjects]
            if len(names) > 4:
                named = f"rules {', '.join(names[:3])} and {len(names) - 3} more"
            else:
                named = "" if not names else subjects[0] if len(names) == 1 else f"rules {', '.join(names)}"
            lead = " ".join(part for part in (prefix, named) if part)
            result.append((where, f"{lead}: {message}" if lead else message))
        return result


def _flags(workload: Workload) -> set[str]:
    """The features a workload's command line enables (--enable-feature=a,b)."""
    enabled: set[str] = set()
    for arg in workload.args:
        if arg.startswith("--enable-feature="):
            enabled |= {f.strip() for f in arg.split("=", 1)[1].split(",") if f.strip()}
    return enabled


def _load_yaml(text: str) -> tuple[Any, Optional[str]]:
    """The first YAML document of a file (the one the Go programs read), or why it is not YAML."""
    try:
        # libyaml builds the same data several times faster (components/yaml_text.py); where it
        # refuses the text, the pure Python loader below says why, in the words it always has.
        return yaml_text.load_first(text), None
    except yaml.YAMLError:
        pass
    try:
        return next(iter(yaml.safe_load_all(text)), None), None
    except yaml.YAMLError as error:
        return None, f"is not valid YAML: {' '.join(str(error).split())}"


def _describe_name(name: Any) -> str:
    return repr(name) if name != "" else "'' (empty)"


# ---------------------------------------------------------------------------------------------
# prometheus.yml

_RELABEL_ACTIONS = {"replace", "keep", "drop", "keepequal", "dropequal", "hashmod", "labelmap",
                    "labeldrop", "labelkeep", "lowercase", "uppercase"}
_REGEX_VARIABLE = re.compile(r"\$(\{\w+\}|\w+)")
_LEGACY_RELABEL_TARGET = re.compile(r"(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+")


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error is reported here, not on stderr


def _go_regex_problem(pattern: Any) -> Optional[str]:
    """Why Go's regexp would refuse `pattern` as Prometheus and Alertmanager anchor it."""
    text = scalar_text(pattern)
    if text is None:
        return "regex must be a string"
    try:
        re2.compile(f"^(?s:{text})$", options=_RE2_OPTIONS)
    except re2.error as error:
        reason = error.args[0] if error.args else error
        reason = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        return f"regex {text!r} does not compile: {reason}"
    return None


class _PrometheusSources:
    """Which stack key, or which file, each part of prometheus.yml came from."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.user_jobs = {t.job: i for i, t in enumerate(settings.prometheus.scrape_targets)}
        base, _ = _load_yaml(_read(PROMETHEUS_BASE))
        jobs = base.get("scrape_configs") or [] if isinstance(base, dict) else []
        self.base_jobs = {j.get("job_name") for j in jobs if isinstance(j, dict)}

    def job(self, name: Any, part: str = "") -> str:
        """A scrape job's key: the user's scrape target, the base file, or the program."""
        if name in self.user_jobs:
            return f"prometheus.scrape_targets[{self.user_jobs[name]}]{part}"
        if name in self.base_jobs:
            return PROMETHEUS_BASE
        if name == "docker-containers" and part == ".regex":
            # Discovery keeps the containers on the stack's network, by a regex of its name.
            return "docker.network"
        return PROMETHEUS_RENDERED

    def external_label(self, name: Any) -> str:
        if name in ("environment", "cluster"):
            return str(name)
        if name in self.settings.prometheus.external_labels:
            return _key("prometheus.external_labels", name)
        return PROMETHEUS_RENDERED


def _read(repo_path: str) -> str:
    path = ROOT / repo_path
    return path.read_text() if path.exists() else ""


_GLOBAL_KEYS = {"scrape_interval": "prometheus.scrape_interval", "scrape_timeout": "prometheus.scrape_timeout",
                "evaluation_interval": "prometheus.evaluation_interval"}


def _check_prometheus_config(config: Any, sources: _PrometheusSources, report: _Report) -> str:
    """Checks prometheus.yml; returns the name validation scheme the rule files are read with."""
    glob = config.get("global") or {}
    if not isinstance(glob, dict):
        report.add(PROMETHEUS_BASE, "Prometheus refuses prometheus.yml: global must be a mapping")
        glob = {}
    scheme = glob.get("metric_name_validation_scheme") or "utf8"
    if scheme not in ("utf8", "legacy"):
        report.add(PROMETHEUS_BASE, f"Prometheus refuses global.metric_name_validation_scheme {scheme!r} "
                                    "(it is 'utf8' or 'legacy')")
        scheme = "utf8"

    durations: dict[str, int] = {}
    for key, stack_key in _GLOBAL_KEYS.items():
        if key in glob:
            try:
                durations[key] = parse_duration(glob[key])
            except ValueError as problem:
                report.add(stack_key, f"Prometheus refuses {key} in prometheus.yml: {problem} (for example '15s')")
    # Prometheus's defaults: an interval of 1m; an unset timeout takes min(10s, interval).
    interval = durations.get("scrape_interval") or 60 * 10**9
    timeout = durations.get("scrape_timeout") or 0
    if timeout > interval:
        report.add("prometheus.scrape_timeout", "Prometheus refuses a global scrape_timeout longer than "
                                                "scrape_interval (for example '10s' with an interval of '15s')")

    labels = glob.get("external_labels") or {}
    for name, value in labels.items() if isinstance(labels, dict) else ():
        if not valid_label_name(name, scheme):
            report.add(sources.external_label(name), f"Prometheus refuses {_describe_name(name)} as an external "
                                                     f"label name ({scheme_rule(scheme)}; for example 'team')")
        if not valid_utf8(scalar_text(value) or ""):
            report.add(sources.external_label(name), "Prometheus refuses an external label value that is not valid UTF-8")

    storage = config.get("storage") or {}
    tsdb = storage.get("tsdb") or {} if isinstance(storage, dict) else {}
    retention = tsdb.get("retention") or {} if isinstance(tsdb, dict) else {}
    if isinstance(retention, dict) and "time" in retention:
        try:
            parse_duration(retention["time"])
        except ValueError as problem:
            report.add("prometheus.retention.time",
                       f"Prometheus refuses storage.tsdb.retention.time: {problem} (for example '15d')")

    seen: set[str] = set()
    for job in config.get("scrape_configs") or []:
        if not isinstance(job, dict):
            report.add(PROMETHEUS_BASE, "Prometheus refuses a scrape_configs entry that is not a mapping")
            continue
        _check_scrape_job(job, scheme, interval, seen, sources, report)

    alerting = config.get("alerting") or {}
    for rule in (alerting.get("alert_relabel_configs") or []) if isinstance(alerting, dict) else []:
        problem = _relabel_problem(rule, scheme)
        if problem:
            report.add(PROMETHEUS_RENDERED, f"Prometheus refuses alert_relabel_configs: {problem[1]}")
    return scheme


def _check_scrape_job(job: dict, scheme: str, global_interval: int, seen: set[str], sources: _PrometheusSources,
                      report: _Report) -> None:
    name = job.get("job_name")
    where = sources.job(name)
    if not name:
        report.add(where, "Prometheus refuses a scrape job without a job_name (for example 'api')")
        return
    if name in seen:
        report.add(where, f"Prometheus refuses a second scrape job named {name!r}: job names are unique")
    seen.add(name)
    job_scheme = job.get("metric_name_validation_scheme") or scheme
    interval, timeout = global_interval, 0
    for key in ("scrape_interval", "scrape_timeout"):
        if key not in job:
            continue
        try:
            value = parse_duration(job[key])
        except ValueError as problem:
            key_where = sources.job(name, ".interval") if key == "scrape_interval" else where
            report.add(key_where, f"Prometheus refuses {key} of job {name!r}: {problem} (for example '30s')")
            continue
        if key == "scrape_interval" and value:
            interval = value
        elif key == "scrape_timeout":
            timeout = value
    # An unset job timeout takes min(global timeout, job interval): only a set one can be too long.
    if timeout > interval:
        report.add(where, f"Prometheus refuses job {name!r}: its scrape_timeout is longer than its scrape_interval")
    for group in job.get("static_configs") or []:
        if not isinstance(group, dict):
            continue
        for j, target in enumerate(group.get("targets") or []):
            if not job.get("relabel_configs") and "/" in (scalar_text(target) or ""):
                report.add(sources.job(name, f".targets[{j}]"),
                           f"Prometheus refuses the target {target!r} of job {name!r}: a target is host:port, "
                           "without a scheme or a path (for example 'api.internal:8080')")
        for label in group.get("labels") or {}:
            # Target labels are read with the UTF-8 scheme whatever the file says: Prometheus 3
            # requires its process-wide scheme to be UTF-8.
            if not valid_label_name(label, "utf8"):
                report.add(_key(f"{where}.labels", label) if not is_file(where) else where,
                           f"Prometheus refuses {_describe_name(label)} as a target label name of job {name!r} "
                           f"({scheme_rule('utf8')}; for example 'team')")
    for key in ("relabel_configs", "metric_relabel_configs"):
        for rule in job.get(key) or []:
            problem = _relabel_problem(rule, job_scheme)
            if problem:
                report.add(sources.job(name, f".{problem[0]}" if problem[0] else ""),
                           f"Prometheus refuses {key} of job {name!r}: {problem[1]}")


def _relabel_problem(rule: Any, scheme: str) -> Optional[tuple[str, str]]:
    """Prometheus v3.14.0 model/relabel Config.Validate for one rule: (field, message) or None."""
    if not isinstance(rule, dict):
        return "", "empty or null relabeling rule"
    action = str(rule.get("action", "replace")).lower()
    if action not in _RELABEL_ACTIONS:
        return "action", f"unknown relabel action {rule.get('action')!r}"
    if "regex" in rule:
        problem = _go_regex_problem(rule["regex"])
        if problem:
            return "regex", problem
    target = scalar_text(rule.get("target_label", "")) or ""
    if action == "hashmod" and not rule.get("modulus"):
        return "modulus", "relabel configuration for hashmod requires non-zero modulus"
    if action in ("replace", "hashmod", "lowercase", "uppercase", "keepequal", "dropequal") and not target:
        return "target_label", f"relabel configuration for {action} action requires 'target_label' value"
    if action == "replace" and _REGEX_VARIABLE.search(target):
        # $1 and ${name} are filled in per target; the scheme decides what else may stand there.
        ok = valid_label_name(target, "utf8") if scheme == "utf8" else bool(_LEGACY_RELABEL_TARGET.fullmatch(target))
    elif action in ("replace", "lowercase", "uppercase", "keepequal", "dropequal", "hashmod"):
        ok = valid_label_name(target, scheme)
    else:
        ok = True
    if not ok:
        return "target_label", f"{target!r} is invalid 'target_label' for {action} action ({scheme_rule(scheme)})"
    if action == "labelmap":
        replacement = scalar_text(rule.get("replacement", "$1")) or ""
        legacy_ok = bool(_LEGACY_RELABEL_TARGET.fullmatch(replacement))
        if not (valid_label_name(replacement, "utf8") if scheme == "utf8" else legacy_ok):
            return "replacement", f"{replacement!r} is invalid 'replacement' for labelmap action"
    if action in ("labeldrop", "labelkeep") and set(rule) - {"action", "regex"}:
        return "", f"{action} action requires only 'regex', and no other fields"
    return None


# ---------------------------------------------------------------------------------------------
# Rule files

class _RuleSources:
    """Maps each rule of the rendered catalog back to its catalog entry and stack key."""

    def __init__(self, settings: Settings, services: list[str], experimental: bool):
        self.settings = settings
        self.services = services
        self.experimental = experimental

    @functools.cached_property
    def _entries(self) -> tuple[list[alert_rules.Alert], dict[str, list[alert_rules.Alert]]]:
        """What alert_rules.render keeps, in its order, and every entry by alertname. Read when a
        rule has a problem to place, not on every run: reading the catalog again takes time."""
        try:
            entries = alert_rules.catalog()
        except (ValueError, KeyError, TypeError):
            entries = []
        deployed = alert_rules.producers(self.settings, self.services)
        overrides = self.settings.alerts.overrides
        kept = [a for a in entries
                if (a.name not in overrides or overrides[a.name].enabled) and set(a.requires) <= deployed]
        by_alertname: dict[str, list[alert_rules.Alert]] = {}
        for a in entries:
            by_alertname.setdefault(a.alert, []).append(a)
        return kept, by_alertname

    def entries_for(self, rules: list[Rule]) -> list[Optional[alert_rules.Alert]]:
        """The catalog entry behind each rendered rule, where it is certain."""
        kept, by_alertname = self._entries
        names = [(rule.group, rule.alert) for rule in rules]
        if [(a.group, a.alert) for a in kept] == names:
            return list(kept)
        return [c[0] if len(c) == 1 else None for c in (by_alertname.get(n, []) for _, n in names)]

    def key(self, entry: Optional[alert_rules.Alert], alertname: Any, part: str) -> str:
        """The stack key (or the catalog entry) behind one part of a rendered catalog rule."""
        if part == "annotations.runbook_url":
            return "alerts.runbook_url"
        if entry is None:
            return f"{CATALOG}: {alertname}"
        override = self.settings.alerts.overrides.get(entry.name)
        overridden = f"alerts.overrides.{entry.name}"
        if override is not None and part == "for" and override.for_ is not None:
            return f"{overridden}.for"
        if override is not None and part == "labels.severity" and override.severity is not None:
            return f"{overridden}.severity"
        if part == "expr":
            return self._expr_key(entry, override, overridden)
        return f"{CATALOG}: {entry.name}"

    def _expr_key(self, entry: alert_rules.Alert, override: Any, overridden: str) -> str:
        """Which input broke a rendered expression: try the catalog's own values first."""
        def parses(threshold: Optional[float]) -> bool:
            expr = entry.expr.replace(alert_rules.WINDOW, "5m")
            if threshold is not None:
                expr = expr.replace(alert_rules.THRESHOLD, alert_rules.number_text(threshold))
            return promql_problem(expr, self.experimental) is None

        if not parses(entry.threshold):
            return f"{CATALOG}: {entry.name}"
        if override is not None and override.threshold is not None and not parses(override.threshold):
            return f"{overridden}.threshold"
        if alert_rules.WINDOW in entry.expr:
            return self._window_key()
        return overridden if override is not None else f"{CATALOG}: {entry.name}"

    def _window_key(self) -> str:
        """The scrape interval that set the rate window: the slowest one."""
        prom = self.settings.prometheus
        slowest = ("prometheus.scrape_interval", _ns(prom.scrape_interval))
        for i, target in enumerate(prom.scrape_targets):
            if target.interval is not None and _ns(target.interval) > slowest[1]:
                slowest = (f"prometheus.scrape_targets[{i}].interval", _ns(target.interval))
        return slowest[0]


def _ns(duration: str) -> int:
    try:
        return parse_duration(duration)
    except ValueError:
        return 0


def _report_rule_file(read: RuleFile, file_key: str, label: str, where: Callable[[Rule, str], str],
                      report: _Report) -> None:
    """A rule file's problems: those of a rule where `where` says (the stack key or file behind
    that part of it), the others at the file."""
    for problem in read.problems:
        if problem.rule is None:
            context = f"{problem.context}: " if problem.context else ""
            report.add(file_key, f"Prometheus refuses {label}: {context}{problem.message}")
        else:
            report.add(where(problem.rule, problem.part), problem.message, f"Prometheus refuses {label},",
                       f"rule {problem.rule.name or '(unnamed)'!r}")


# ---------------------------------------------------------------------------------------------
# alertmanager.yml

# Fields Alertmanager v0.34.0 expands as templates when it notifies (notify/slack, notify/pagerduty).
_TEMPLATED_FIELDS = {
    "slack_configs": ("channel", "username", "color", "title", "title_link", "pretext", "text",
                      "message_text", "footer", "fallback", "callback_id", "icon_emoji", "icon_url",
                      "image_url", "thumb_url"),
    "pagerduty_configs": ("description", "client", "client_url", "severity", "class", "component",
                          "group", "source"),
}
# Go's \s is ASCII white space only.
_CLASSIC_MATCHER = re.compile(r"[\t\n\f\r ]*([a-zA-Z_:][a-zA-Z0-9_:]*)[\t\n\f\r ]*(=~|=|!=|!~)[\t\n\f\r ]*([\s\S]*?)[\t\n\f\r ]*")


def _matcher_problem(line: Any) -> Optional[str]:
    """Alertmanager's classic matcher grammar (pkg/labels ParseMatchers), which its default
    parser accepts; regular expressions must compile."""
    if not isinstance(line, str):
        return "a matcher must be a string such as 'severity=\"critical\"'"
    text = line.removeprefix("{").removesuffix("}")
    parts, current, quoted, escaped = [], "", False, False
    for ch in text:
        if ch == "," and not quoted:
            parts.append(current)
            current = ""
            continue
        if ch == '"' and not escaped:
            quoted = not quoted
        escaped = ch == "\\" and not escaped
        current += ch
    if current.strip():
        parts.append(current)
    for part in parts:
        match = _CLASSIC_MATCHER.fullmatch(part)
        if match is None:
            return f"bad matcher format: {part!r}"
        value = match.group(3)
        quoted_value = value.startswith('"')
        body = value[1:] if quoted_value else value
        closed = not quoted_value
        i = 0
        while i < len(body):
            if body[i] == "\\" and i < len(body) - 1:
                i += 2
                continue
            if body[i] == '"':
                if not quoted_value or i < len(body) - 1:
                    return f"matcher value contains unescaped double quote: {value!r}"
                closed = True
            i += 1
        if not closed:
            return f"matcher value contains unescaped double quote: {value!r}"
        if match.group(2) in ("=~", "!~"):
            pattern = body[:-1] if quoted_value else body
            problem = _go_regex_problem(pattern.replace('\\"', '"').replace("\\\\", "\\"))
            if problem:
                return problem
    return None


class _AlertmanagerSources:
    def __init__(self, settings: Settings):
        self.settings = settings

    def receiver(self, name: Any, field_name: str = "") -> str:
        slack = {"slack-critical": "critical_channel", "slack-warning": "warning_channel"}
        if name in slack:
            if field_name == "channel":
                return f"alertmanager.receivers.slack.{slack[name]}"
            return "alertmanager.receivers.slack" if not field_name else ALERTMANAGER_RENDERED
        if name in ("pagerduty", "watchdog"):
            return f"alertmanager.receivers.{name}" if not field_name else ALERTMANAGER_RENDERED
        return ALERTMANAGER_RENDERED

    def route(self, route: dict, root: bool, key: str) -> str:
        if root and key in ("group_by", "group_wait", "group_interval", "repeat_interval"):
            return f"alertmanager.{key}"
        if route.get("receiver") == "watchdog" and key in ("group_interval", "repeat_interval"):
            return "alertmanager.receivers.watchdog.repeat_interval"
        return ALERTMANAGER_RENDERED


def _check_alertmanager(workload: Workload, sources: _AlertmanagerSources, report: _Report) -> None:
    files = {f.path: f.content for f in workload.config_files}
    config_path = next((p for p in files if p.endswith("/alertmanager.yml")), None)
    if config_path is None:
        return
    config, error = _load_yaml(files[config_path])
    if error or not isinstance(config, dict):
        report.add(ALERTMANAGER_RENDERED, f"Alertmanager refuses alertmanager.yml: it {error or 'is not a mapping'}")
        return
    scheme = "legacy" if "classic-mode" in _flags(workload) else "utf8"

    # Notification templates: every file the `templates` globs match, parsed on its own as
    # Alertmanager's ParseGlob does, after its default templates.
    defined: dict[str, set[str]] = {name: set() for name in ALERTMANAGER_DEFAULT_TEMPLATES}
    config_dir = posixpath.dirname(config_path)
    for pattern in config.get("templates") or []:
        matcher = _glob(posixpath.join(config_dir, str(pattern)))
        for path in sorted(p for p in files if matcher.fullmatch(p)):
            name = posixpath.basename(path)
            try:
                parsed = parse_template(files[path], ALERTMANAGER_FUNCTIONS, name)
            except TemplateError as problem:
                report.add(f"configs/alertmanager/{name}",
                           f"Alertmanager refuses to load the notification template {name}: {problem}")
                continue
            defined.update(parsed.defines)

    glob = config.get("global") or {}
    if isinstance(glob, dict) and "resolve_timeout" in glob:
        try:
            parse_duration(glob["resolve_timeout"])
        except ValueError as problem:
            report.add(ALERTMANAGER_RENDERED, f"Alertmanager refuses global.resolve_timeout: {problem}")

    receivers = config.get("receivers") or []
    names: list[str] = []
    for receiver in receivers:
        if not isinstance(receiver, dict) or not receiver.get("name"):
            report.add(ALERTMANAGER_RENDERED, "Alertmanager refuses a receiver without a name")
            continue
        name = receiver["name"]
        if name in names:
            report.add(sources.receiver(name), f"Alertmanager refuses a second receiver named {name!r}")
        names.append(name)
        for kind, fields in _TEMPLATED_FIELDS.items():
            for entry in receiver.get(kind) or []:
                for key in fields:
                    if not isinstance(entry, dict) or entry.get(key) in (None, ""):
                        continue
                    _check_receiver_template(str(entry[key]), name, kind, key, defined, sources, report)

    route = config.get("route")
    if not isinstance(route, dict):
        report.add(ALERTMANAGER_RENDERED, "Alertmanager refuses a configuration without a route")
    else:
        if not route.get("receiver"):
            report.add(ALERTMANAGER_RENDERED, "Alertmanager refuses a root route without a default receiver")
        if route.get("matchers") or route.get("match") or route.get("match_re"):
            report.add(ALERTMANAGER_RENDERED, "Alertmanager refuses matchers on the root route")
        _check_route(route, True, set(names), scheme, sources, report)

    for rule in config.get("inhibit_rules") or []:
        if not isinstance(rule, dict):
            continue
        for key in ("source_matchers", "target_matchers"):
            for line in rule.get(key) or []:
                problem = _matcher_problem(line)
                if problem:
                    report.add(ALERTMANAGER_RENDERED, f"Alertmanager refuses inhibit_rules {key}: {problem}")
        for label in rule.get("equal") or []:
            if not valid_label_name(label, scheme):
                report.add(ALERTMANAGER_RENDERED,
                           f"Alertmanager refuses {_describe_name(label)} in an inhibit rule's equal list ({scheme_rule(scheme)})")


def _check_receiver_template(text: str, receiver: str, kind: str, key: str, defined: dict[str, set[str]],
                             sources: _AlertmanagerSources, report: _Report) -> None:
    where = sources.receiver(receiver, key)
    try:
        parsed = parse_template(text, ALERTMANAGER_FUNCTIONS)
    except TemplateError as problem:
        example = "'#alerts'" if key == "channel" else "'{{ template \"obs.title\" . }}'"
        report.add(where, f"Alertmanager cannot render {key} of receiver {receiver!r} ({kind}), so every "
                          f"notification to it would fail: {problem} (for example {example}; "
                          "text without '{{' is plain text)")
        return
    # Every template it calls, and every one those call, must be defined.
    pending, seen = list(parsed.calls), set()
    while pending:
        name = pending.pop()
        if name in seen or name in parsed.defines:
            continue
        seen.add(name)
        if name not in defined:
            report.add(where if where != ALERTMANAGER_RENDERED else "configs/alertmanager/",
                       f"{key} of receiver {receiver!r} calls the template {name!r}, which no file under "
                       "configs/alertmanager/ (nor Alertmanager's defaults) defines: every notification to it would fail")
            continue
        pending.extend(defined[name])


def _check_route(route: dict, root: bool, receivers: set[str], scheme: str, sources: _AlertmanagerSources,
                 report: _Report) -> None:
    receiver = route.get("receiver")
    if receiver and receiver not in receivers:
        report.add(sources.receiver(receiver),
                   f"Alertmanager refuses a route to the receiver {receiver!r}, which is not defined "
                   f"(defined: {', '.join(sorted(receivers)) or 'none'})")
    group_by = route.get("group_by")
    if group_by is not None:
        where = sources.route(route, root, "group_by")
        labels = [str(g) if not isinstance(g, str) else g for g in group_by]
        for label in labels:
            if label != "..." and not valid_label_name(label, scheme):
                report.add(where, f"Alertmanager refuses {_describe_name(label)} in group_by ({scheme_rule(scheme)}; for example 'alertname')")
        if "..." in labels and len(labels) > 1:
            report.add(where, "Alertmanager refuses group_by with '...' and other labels at the same time")
        for label in sorted({l for l in labels if labels.count(l) > 1}):
            report.add(where, f"Alertmanager refuses the label {label!r} listed twice in group_by")
    for key in ("group_wait", "group_interval", "repeat_interval"):
        if key not in route:
            continue
        where = sources.route(route, root, key)
        try:
            value = parse_duration(route[key])
        except ValueError as problem:
            report.add(where, f"Alertmanager refuses {key}: {problem} (for example '5m')")
            continue
        if value == 0 and key != "group_wait":
            report.add(where, f"Alertmanager refuses a {key} of zero")
    for line in route.get("matchers") or []:
        problem = _matcher_problem(line)
        if problem:
            report.add(ALERTMANAGER_RENDERED, f"Alertmanager refuses a route matcher: {problem}")
    for name in (route.get("match") or {}):
        if not valid_label_name(name, "legacy"):
            report.add(ALERTMANAGER_RENDERED, f"Alertmanager refuses the label name {name!r} in a route's match")
    for child in route.get("routes") or []:
        if isinstance(child, dict):
            _check_route(child, False, receivers, scheme, sources, report)


# ---------------------------------------------------------------------------------------------
# The whole stack.


def _glob(pattern: str) -> re.Pattern:
    """A path glob as Go's filepath.Match reads it: '*' and '?' stop at '/'."""
    parts = []
    for ch in pattern:
        parts.append({"*": "[^/]*", "?": "[^/]"}.get(ch, re.escape(ch)))
    return re.compile("".join(parts))


def check(settings: Settings, workloads: list[Workload]) -> list[tuple[str, str]]:
    """Every problem in the rendered Prometheus and Alertmanager files, as (stack key or file,
    message); empty when both services would accept everything the stack ships."""
    report = _Report()
    by_name = {w.name: w for w in workloads}
    if "prometheus" in by_name:
        services = [w.name for w in workloads]
        if settings.grafana.mode == "deploy":  # scraped, though rendered after this check
            services.append("grafana")
        _check_prometheus(settings, by_name["prometheus"], services, report)
    if "alertmanager" in by_name:
        _check_alertmanager(by_name["alertmanager"], _AlertmanagerSources(settings), report)
    return report.problems


def _check_prometheus(settings: Settings, workload: Workload, services: list[str], report: _Report) -> None:
    files = {f.path: f.content for f in workload.config_files}
    config_path = f"{prometheus.CONFIG_DIR}/prometheus.yml"
    if config_path not in files:
        return
    config, error = _load_yaml(files[config_path])
    if error or not isinstance(config, dict):
        report.add(PROMETHEUS_BASE, f"Prometheus refuses prometheus.yml: it {error or 'is not a mapping'}")
        return
    scheme = _check_prometheus_config(config, _PrometheusSources(settings), report)
    experimental = "promql-experimental-functions" in _flags(workload)
    # Rule files are those the config's rule_files globs match, as Prometheus loads them.
    globs = [_glob(posixpath.join(prometheus.CONFIG_DIR, str(g))) for g in config.get("rule_files") or []]
    catalog_path = f"{prometheus.RULES_DIR}/{prometheus.CATALOG_RULES}"
    for path in sorted(p for p in files if any(g.fullmatch(p) for g in globs)):
        if path == catalog_path:
            # The catalog was rendered for the services and the cluster's own scrape jobs.
            jobs = [str(j.get("job_name")) for j in config.get("scrape_configs") or [] if isinstance(j, dict)]
            sources = _RuleSources(settings, [*services, *jobs], experimental)
            _check_catalog(files[path], sources, scheme, experimental, report)
            continue
        read = read_rule_file(files[path], scheme, experimental)
        if path == f"{prometheus.RULES_DIR}/{slos.RULES}":
            # Rendered from the stack's objectives, one group each, with the catalog's runbook links.
            objective_keys = {slos.group_name(o): o.key for o in slos.objectives(settings)}

            def objective_key(rule: Rule, part: str) -> str:
                return "alerts.runbook_url" if part == "annotations.runbook_url" else objective_keys.get(rule.group, "slos")

            _report_rule_file(read, "slos", "slos.yml (rendered from the stack's slos)", objective_key, report)
            continue
        if path == f"{prometheus.RULES_DIR}/{recording_rules.RULES}":
            source = str(recording_rules.SOURCE.relative_to(ROOT))
        else:
            source = f"configs/prometheus/rules/{posixpath.basename(path)}"
        _report_rule_file(read, source, source, lambda rule, part: source, report)


def _check_catalog(text: str, sources: _RuleSources, scheme: str, experimental: bool, report: _Report) -> None:
    read = read_rule_file(text, scheme, experimental)
    entries: list[list[Optional[alert_rules.Alert]]] = []  # found at the first problem in a rule

    def where(rule: Rule, part: str) -> str:
        if not entries:
            entries.append(sources.entries_for(read.rules))
        return sources.key(entries[0][rule.position], rule.alert, part)

    _report_rule_file(read, CATALOG, "catalog.yml (rendered from configs/alerts/catalog.yml)", where, report)


def rule_file_problems(text: str, scheme: str = "utf8", experimental: bool = False) -> list[str]:
    """What Prometheus would refuse in one rule file, read with `scheme` label names."""
    report = _Report()
    _report_rule_file(read_rule_file(text, scheme, experimental), "", "the rule file", lambda rule, part: "", report)
    return [text for _, text in report.problems]


def prometheus_config_problems(config: dict, settings: Settings) -> list[tuple[str, str]]:
    """What Prometheus would refuse in a prometheus.yml (loaded), keyed as check() keys them."""
    report = _Report()
    _check_prometheus_config(config, _PrometheusSources(settings), report)
    return report.problems


def is_file(where: str) -> bool:
    """A problem's origin is a file (configs/..., components/...) rather than a stack key."""
    return where.startswith(("configs/", "components/"))


def message(stack: str, problems: list[tuple[str, str]]) -> str:
    """One message for every problem, naming the stack file and each key or file."""
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    lines = [f"stack {stack!r}: the configuration rendered from stacks/Pulumi.{stack}.yaml would be refused "
             f"by the services, so nothing was deployed: {count}"]
    for where, text in problems:
        lines.append(f"  - {where if is_file(where) else f'key {where!r}'}: {text}")
    return "\n".join(lines)


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(path: str, name: Any) -> str:
    """path.name as `pulumi config set --path` writes it; an odd name as path["name"]."""
    text = scalar_text(name) or ""
    return f"{path}.{text}" if _PLAIN_KEY.fullmatch(text) else f"{path}[{json.dumps(text)}]"
