"""A stack file (stacks/Pulumi.<stack>.yaml) read as strictly as `pulumi up` reads it.

Pulumi parses stack files with go-yaml v3 (gopkg.in/yaml.v3, through
sdk/go/common/encoding/marshal.go), which refuses a mapping that names the same key twice at any
depth: two keys are the same when they are the same kind of node with the same text (`port` and
"port" are; `1` and "1" are too). PyYAML would silently keep the last value, so the render would
show a configuration `pulumi up` never runs. Every mistake here is a ConfigError that names the
file and the line.

Pulumi also gives a config key written without a namespace the project's own (`platform:` is
`observability:platform`, sdk/go/common/workspace/loaders.go), and a value left empty at the top
level is the empty string.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import yaml

from components import ROOT, settings

NAMESPACE = settings.NAMESPACE

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader, keeping timestamps as the text they are: Pulumi hands scalar config values
    to the program as text, and a date object could not be handed over at all."""


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_str)


def display_name(stack: str) -> str:
    """The stack file as messages name it."""
    return f"stacks/Pulumi.{stack}.yaml"


@dataclass(frozen=True)
class Problem:
    line: Optional[int]  # 1-based; None when the key's line is not known
    column: Optional[int]
    message: str

    def __str__(self) -> str:
        where = "" if self.line is None else f"line {self.line}" + ("" if self.column is None else f", column {self.column}")
        return f"{where}: {self.message}" if where else self.message


def _error(stack: str, problems: list[Problem]) -> settings.ConfigError:
    lines = [f"stack {stack!r}: invalid stack file {display_name(stack)}:"]
    lines += [f"  - {problem}" for problem in problems]
    return settings.ConfigError("\n".join(lines))


@dataclass(frozen=True)
class StackFile:
    stack: str
    # Every config key with its namespace, as Pulumi reads it, and the line each one is on.
    config: dict[str, Any]
    lines: dict[str, int]

    def values(self) -> dict[str, Any]:
        """The project's keys, without the namespace."""
        prefix = NAMESPACE + ":"
        return {k[len(prefix):]: v for k, v in self.config.items() if k.startswith(prefix)}


def _syntax_problem(error: yaml.YAMLError) -> Problem:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        message = f"not valid YAML: {error.problem}"
        if error.context:
            context_line = f", line {error.context_mark.line + 1}" if error.context_mark is not None else ""
            message += f" ({error.context}{context_line})"
        return Problem(mark.line + 1, mark.column + 1, message)
    # Errors without a position (a character YAML does not allow): the text names no file.
    return Problem(None, None, f"not valid YAML: {getattr(error, 'reason', None) or type(error).__name__}")


def _key_text(node: yaml.Node) -> str:
    return node.value if isinstance(node, yaml.ScalarNode) else f"<{node.id}>"


def _path_text(path: tuple[str, ...]) -> str:
    """A key path as the file spells it, from the config key down (observability:loki.port)."""
    if len(path) > 1 and path[0] == "config":
        path = path[1:]
    text = ""
    for part in path:
        text += part if part.startswith("[") else (f".{part}" if text else part)
    return text


def _duplicates(node: yaml.Node, path: tuple[str, ...], seen: set[int]) -> Iterator[Problem]:
    """Every mapping key that repeats an earlier key of the same mapping, as go-yaml v3 compares
    them: the same kind of node with the same text."""
    if id(node) in seen:  # an alias to a node already walked
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            identity = (key.id, key.value if isinstance(key, yaml.ScalarNode) else "")
            line = key.start_mark.line + 1
            if identity in first:
                where = _path_text((*path, _key_text(key)))
                yield Problem(line, key.start_mark.column + 1,
                              f"key '{where}' is given again (first at line {first[identity]}); "
                              "Pulumi refuses a stack file with a duplicate key: keep one of them")
            else:
                first[identity] = line
            yield from _duplicates(value, (*path, _key_text(key)), seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicates(item, (*path, f"[{index}]"), seen)


def _config_keys(document: yaml.Node) -> list[tuple[yaml.Node, yaml.Node]]:
    """The key and value nodes under the top-level `config:`."""
    if not isinstance(document, yaml.MappingNode):
        return []
    for key, value in document.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "config" and isinstance(value, yaml.MappingNode):
            return list(value.value)
    return []


def full_key(key: Any) -> str:
    """A config key with its namespace: Pulumi gives a bare key the project's."""
    key = str(key)
    return key if ":" in key else f"{NAMESPACE}:{key}"


def parse(stack: str, text: str) -> StackFile:
    """A stack file's text, read as Pulumi reads it, or a ConfigError naming every problem."""
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
            # Before constructing: a merge key (<<) is merged into the node's own keys then.
            problems = list(_duplicates(node, (), set())) if node is not None else []
            data = loader.construct_document(node) if node is not None else None
        except yaml.YAMLError as error:
            raise _error(stack, [_syntax_problem(error)]) from None
    finally:
        loader.dispose()

    document = data if data is not None else {}
    if not isinstance(document, dict):
        raise _error(stack, [Problem(1, 1, "the file must be a mapping with a `config:` key (for example `config: {}`)")])
    config = document.get("config")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise _error(stack, [Problem(None, None, "`config` must be a mapping of keys to values (for example `observability:platform: docker`)")])

    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    written_as: dict[str, str] = {}
    key_nodes = {str(k.value): k for k, _ in _config_keys(node)} if node is not None else {}
    for key, value in config.items():
        name = full_key(key)
        key_node = key_nodes.get(str(key))
        line = key_node.start_mark.line + 1 if key_node is not None else None
        if name in values and written_as[name] != str(key):
            # `platform` and `observability:platform` are one key to Pulumi; which one it keeps is
            # not defined, so neither is kept.
            problems.append(Problem(line, key_node.start_mark.column + 1 if key_node is not None else None,
                                    f"key '{key}' is the same key as '{written_as[name]}' (line {lines[name]}); "
                                    "keep one of them"))
            continue
        # An empty top-level value is the empty string to Pulumi (it warns that this will change).
        values[name] = "" if value is None else value
        written_as[name] = str(key)
        if line is not None:
            lines[name] = line

    lookalike = getattr(settings, "misplaced_keys", None)
    if lookalike is not None:
        for key, message in lookalike(stack, list(values)):
            line = lines.get(key)
            problems.append(Problem(line, None, f"key '{key}': {message}"))

    if problems:
        raise _error(stack, sorted(problems, key=lambda p: (p.line or 0, p.column or 0)))
    return StackFile(stack, values, lines)


def read(stack: str, root: Path = ROOT) -> StackFile:
    """stacks/Pulumi.<stack>.yaml under `root`, read strictly."""
    path = root / "stacks" / f"Pulumi.{stack}.yaml"
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise _error(stack, [Problem(None, None, f"not UTF-8 text (byte {error.start})")]) from None
    # Pulumi strips a UTF-8 byte order mark before parsing.
    return parse(stack, text.removeprefix("\ufeff"))


# --- secure values ------------------------------------------------------------------------------


def is_ciphertext(value: Any) -> bool:
    """A value set with `pulumi config set --secret`: `{secure: <ciphertext>}` and nothing else
    (isSecureValue in Pulumi's sdk/go/common/resource/config/object.go)."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("secure"), str)


def holds_secret(value: Any) -> bool:
    """Whether Pulumi treats a config value as secret: it is, or holds at any depth, a ciphertext."""
    if is_ciphertext(value):
        return True
    if isinstance(value, dict):
        return any(holds_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(holds_secret(v) for v in value)
    return False


def with_placeholders(value: Any, name: str, placeholder: Callable[[str], str]) -> Any:
    """The value with each ciphertext replaced by `placeholder(<its key>)`: without the stack's key
    nothing can be decrypted, and the program only needs to know that a value is there."""
    if is_ciphertext(value):
        return placeholder(name)
    if isinstance(value, dict):
        return {k: with_placeholders(v, str(k), placeholder) for k, v in value.items()}
    if isinstance(value, list):
        return [with_placeholders(v, name, placeholder) for v in value]
    return value
