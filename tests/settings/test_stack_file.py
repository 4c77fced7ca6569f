"""Stack files are read as strictly as `pulumi up` reads them (components/settings/stack_file.py): a YAML
mistake, a duplicate key or a look-alike namespace is a ConfigError naming the file and the line."""

from __future__ import annotations

import re
import textwrap

import pytest

from components import settings
from components.settings import stack_file
from components.settings import ConfigError


def parse(text: str, stack: str = "dev") -> stack_file.StackFile:
    return stack_file.parse(stack, textwrap.dedent(text))


def error_of(text: str, stack: str = "dev") -> str:
    with pytest.raises(ConfigError) as raised:
        parse(text, stack)
    return str(raised.value)


def marked_lines(text: str, mark: str = "# <-") -> list[int]:
    """The 1-based lines of `text` that carry `mark`: where the test expects a problem."""
    return [n for n, line in enumerate(textwrap.dedent(text).splitlines(), start=1) if mark in line]


def problem_lines(message: str) -> list[int]:
    return [int(n) for n in re.findall(r"^  - line (\d+)", message, flags=re.M)]


class TestDuplicateKeys:
    """go-yaml v3 (what Pulumi parses stack files with) refuses a mapping that holds the same key
    twice, at any depth: the same kind of node with the same text."""

    @pytest.mark.parametrize("text", [
        # Top level of config.
        """\
        config:
          observability:platform: docker
          observability:cluster: a
          observability:platform: kubernetes  # <-
        """,
        # Nested mapping.
        """\
        config:
          observability:prometheus:
            retention:
              time: 7d
              size: 5GB
              time: 30d  # <-
        """,
        # Inside a list item.
        """\
        config:
          observability:prometheus:
            scrape_targets:
              - job: api
                targets: ["a:1"]
                job: web  # <-
        """,
        # A flow mapping, and a quoted key with the same text as a plain one.
        """\
        config:
          observability:exporters:
            node: {enabled: true, "enabled": false}  # <-
        """,
        # `1` and "1" are different YAML values but the same text: go-yaml counts them as one key.
        """\
        config:
          observability:prometheus:
            external_labels:
              1: a
              "1": b  # <-
        """,
        # Above config.
        """\
        config: {}
        config: {}  # <-
        """,
    ])
    def test_a_duplicate_key_names_the_file_and_its_line(self, text: str):
        message = error_of(text, "staging")
        assert "stacks/Pulumi.staging.yaml" in message
        assert problem_lines(message) == marked_lines(text)
        assert "given again" in message

    def test_every_duplicate_is_listed_in_one_message(self):
        text = """\
        config:
          observability:platform: docker
          observability:platform: docker  # <-
          observability:loki:
            port: 3100
            port: 3101  # <-
            port: 3102  # <-
        """
        assert problem_lines(error_of(text)) == marked_lines(text)

    def test_the_message_names_the_key_path(self):
        message = error_of("""\
        config:
          observability:prometheus:
            scrape_targets:
              - job: api
                targets: ["a:1"]
              - job: web
                targets: ["b:1"]
                targets: ["c:1"]
        """)
        assert "'observability:prometheus.scrape_targets[1].targets'" in message
        assert "first at line 7" in message

    @pytest.mark.parametrize("text", [
        # The same key in sibling mappings.
        """\
        config:
          observability:prometheus: {port: 9090}
          observability:alertmanager: {port: 9093}
        """,
        # Keys that differ in case or text are different keys.
        """\
        config:
          observability:prometheus:
            external_labels: {team: a, Team: b, "team ": c}
        """,
        # A merge key brings in keys that the mapping then overrides: that is no duplicate.
        """\
        defaults: &limits {cpu: "1", memory: 1Gi}
        config:
          observability:loki:
            resources:
              requests: {cpu: 100m, memory: 256Mi}
              limits:
                <<: *limits
                memory: 2Gi
        """,
    ])
    def test_distinct_keys_are_accepted(self, text: str):
        parse(text)


class TestSyntaxErrors:
    """A YAML syntax error names the stack file and the line, never `<unicode string>`."""

    @pytest.mark.parametrize("text", [
        # A value where a key was expected.
        """\
        config:
          observability:platform: docker
          observability:cluster: a: b  # <-
        """,
        # Indentation that closes the mapping in the middle of it.
        """\
        config:
          observability:prometheus:
              port: 9090
            scrape_interval: 15s  # <-
        """,
        # An unclosed flow sequence: found at the next key.
        """\
        config:
          observability:alertmanager:
            group_by: [alertname, job
          observability:loki: {}  # <-
        """,
        # A tab used as indentation.
        "config:\n\tobservability:platform: docker  # <-\n",
        # An unknown tag that the safe loader cannot build.
        """\
        config:
          observability:platform: !!python/name:os.system docker  # <-
        """,
    ])
    def test_a_syntax_error_names_the_file_and_the_line(self, text: str):
        message = error_of(text, "prod")
        assert "stacks/Pulumi.prod.yaml" in message and "not valid YAML" in message
        assert "<unicode string>" not in message
        assert problem_lines(message) == marked_lines(text)

    @pytest.mark.parametrize("text, what", [
        ("- a\n- b\n", "mapping"),
        ("just text\n", "mapping"),
        ("config: [a, b]\n", "`config` must be a mapping"),
        ("config: text\n", "`config` must be a mapping"),
    ])
    def test_a_file_of_the_wrong_shape_is_refused(self, text: str, what: str):
        message = error_of(text)
        assert "stacks/Pulumi.dev.yaml" in message and what in message

    @pytest.mark.parametrize("text", ["", "# only a comment\n", "config:\n", "config: {}\n", "encryptionsalt: abc\n"])
    def test_a_file_without_config_has_no_keys(self, text: str):
        assert parse(text).config == {}

    def test_a_file_that_is_not_utf8_is_refused(self, tmp_path):
        (tmp_path / "stacks").mkdir()
        (tmp_path / "stacks" / "Pulumi.dev.yaml").write_bytes(b"config:\n  observability:cluster: \xff\xfe\n")
        with pytest.raises(ConfigError, match=r"(?s)stacks/Pulumi\.dev\.yaml.*not UTF-8"):
            stack_file.read("dev", tmp_path)

    def test_a_byte_order_mark_is_ignored_as_pulumi_ignores_it(self, tmp_path):
        (tmp_path / "stacks").mkdir()
        (tmp_path / "stacks" / "Pulumi.dev.yaml").write_bytes("\ufeffconfig:\n  observability:cluster: a\n".encode())
        assert stack_file.read("dev", tmp_path).values() == {"cluster": "a"}


class TestKeysAsPulumiReadsThem:
    @pytest.mark.parametrize("key", ["platform", "cluster", "prometheus"])
    def test_a_key_without_namespace_is_the_projects(self, key: str):
        loaded = parse(f"config:\n  {key}: x\n")
        assert loaded.config == {f"observability:{key}": "x"}
        assert loaded.values() == {key: "x"}

    @pytest.mark.parametrize("first, second", [
        ("platform", "observability:platform"),
        ("observability:cluster", "cluster"),
    ])
    def test_a_key_written_both_with_and_without_namespace_is_refused(self, first: str, second: str):
        text = f"config:\n  {first}: a\n  {second}: b  # <-\n"
        message = error_of(text)
        assert problem_lines(message) == marked_lines(text)
        assert f"'{second}' is the same key as '{first}'" in message

    def test_other_namespaces_are_kept_but_are_not_the_projects(self):
        loaded = parse("config:\n  aws:region: eu-west-1\n  kubernetes:context: prod\n  observability:cluster: a\n")
        assert loaded.config == {"aws:region": "eu-west-1", "kubernetes:context": "prod", "observability:cluster": "a"}
        assert loaded.values() == {"cluster": "a"}
        assert loaded.lines == {"aws:region": 2, "kubernetes:context": 3, "observability:cluster": 4}

    @pytest.mark.parametrize("value", ["", "~", "null"])
    def test_an_empty_top_level_value_is_the_empty_string(self, value: str):
        assert parse(f"config:\n  observability:cluster: {value}\n").values() == {"cluster": ""}

    @pytest.mark.parametrize("text, expected", [
        ("2024-01-02", "2024-01-02"),
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),
    ])
    def test_dates_stay_the_text_they_are(self, text: str, expected: str):
        # Pulumi hands scalars over as text; a date object could not be handed over at all.
        loaded = parse(f"config:\n  observability:prometheus:\n    external_labels: {{since: {text}}}\n")
        assert loaded.values()["prometheus"]["external_labels"]["since"] == expected


class TestLookalikeNamespace:
    """Keys under a namespace that looks like the project's are handed to the settings' own check
    (settings.misplaced_keys), and each problem is reported with its line."""

    TEXT = """\
    config:
      observability:platform: docker
      aws:region: eu-west-1
      cluster: laptop
      observabilty:loki:  # <-
        retention: 30d
    """

    def test_every_full_key_is_handed_over_and_each_problem_gets_its_line(self, monkeypatch):
        seen: list[tuple[str, list[str]]] = []

        def stand_in(stack: str, keys):
            keys = list(keys)
            seen.append((stack, keys))
            return [(key, "a look-alike") for key in keys if key.startswith("observabilty:")]

        monkeypatch.setattr(settings, "misplaced_keys", stand_in, raising=False)
        message = error_of(self.TEXT, "staging")
        assert seen == [("staging", ["observability:platform", "aws:region", "observability:cluster", "observabilty:loki"])]
        assert "stacks/Pulumi.staging.yaml" in message
        assert problem_lines(message) == marked_lines(self.TEXT)
        assert "key 'observabilty:loki': a look-alike" in message

    def test_without_the_settings_check_nothing_is_reported(self, monkeypatch):
        monkeypatch.delattr(settings, "misplaced_keys", raising=False)
        assert "observabilty:loki" in parse(self.TEXT).config

    @pytest.mark.parametrize("namespace", ["observabilty", "Observability", "observablity", "obsevability"])
    def test_the_settings_check_suggests_the_projects_key(self, namespace: str):
        if not hasattr(settings, "misplaced_keys"):
            pytest.fail("components/settings/__init__.py has no misplaced_keys yet")
        text = f"config:\n  observability:platform: docker\n  {namespace}:loki:  # <-\n    retention: 30d\n"
        message = error_of(text)
        assert problem_lines(message) == marked_lines(text)
        assert f"'{namespace}:loki'" in message and "'observability:loki'" in message

    @pytest.mark.parametrize("key", ["aws:region", "kubernetes:context", "docker:host", "grafana:url"])
    def test_other_projects_namespaces_are_not_look_alikes(self, key: str):
        parse(f"config:\n  observability:platform: docker\n  {key}: x\n")


class TestSecureValues:
    """What Pulumi counts as a secret (isSecureValue): a mapping of exactly `secure` to a string."""

    @pytest.mark.parametrize("value", [{"secure": "v1:abc"}, {"secure": ""}])
    def test_a_ciphertext(self, value):
        assert stack_file.is_ciphertext(value) and stack_file.holds_secret(value)

    @pytest.mark.parametrize("value", [
        {"secure": 1}, {"secure": "v1:abc", "other": 1}, {"Secure": "v1:abc"}, "secure", ["v1:abc"], {"secure": None},
    ])
    def test_not_a_ciphertext(self, value):
        assert not stack_file.is_ciphertext(value) and not stack_file.holds_secret(value)

    @pytest.mark.parametrize("value", [
        {"slack_webhook_url": {"secure": "v1:a"}},
        {"a": {"b": [1, {"secure": "v1:a"}]}},
        [{"secure": "v1:a"}],
    ])
    def test_a_value_holding_a_ciphertext_at_any_depth_is_secret(self, value):
        assert stack_file.holds_secret(value)

    def test_each_ciphertext_becomes_a_placeholder_named_after_its_key(self):
        value = {"slack_webhook_url": {"secure": "v1:a"}, "plain": "kept", "list": [{"secure": "v1:b"}, 2]}
        filled = stack_file.with_placeholders(value, "secrets", lambda name: f"<{name}>")
        assert filled == {"slack_webhook_url": "<slack_webhook_url>", "plain": "kept", "list": ["<list>", 2]}
