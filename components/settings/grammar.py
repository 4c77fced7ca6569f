"""The grammar of what the stack hands to Prometheus and Alertmanager, in one place.

Pure functions, no project imports: the safety net (components/settings/config_checks.py), the user's rule
files (components/alerting/user_rules.py) and the user's dashboards (components/grafana/dashboards.py) all read
templates, durations, label names, PromQL and rule files with these, so each rule is written once,
as the pinned releases have it (Prometheus v3.14.0 with prometheus/common v0.70.1, Alertmanager
v0.34.0; both built with a recent Go, whose text/template the template parser follows).

Go text/template is parsed by a port of Go's lexer and parser (not execution): delimiters and
trim markers, comments, strings, raw strings, character constants, numbers (with strconv's
rules for what a number may be), variables (declared before use), fields and chains, pipelines,
parentheses, the keywords (if, else, else if, else with, range, with, break and continue inside
range, define, block, template, end, nil), a template defined twice, and the functions each
program registers. What it does not cover:
- nesting deeper than a few hundred levels is refused here, though Go allows 10000;
- anything decided at execution: a field that does not exist, a wrong argument type or count,
  a template called by a name that only exists at run time;
- complex number constants are checked for shape, not by Go's fmt scanner;
- Unicode letter and digit classes come from Python's tables, which may differ from Go's for
  characters added in recent Unicode versions.

PromQL is parsed by promql-parser, not by Prometheus: duration arithmetic inside brackets
(enabled by default in Prometheus 3) may be refused here, and a function it does not know is
refused; the experimental functions are listed here from Prometheus v3.14.0.

Rule files are read as Prometheus's rulefmt reads them: YAML through yaml.v3 (a key given twice is
an error, a scalar read into a string keeps its text, only the first document counts), unknown
fields refused, then every check rulefmt's Validate makes.
"""

from __future__ import annotations

import ast
import math
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Optional

import promql_parser
import yaml

from components import yaml_text

# ---------------------------------------------------------------------------------------------
# Go text/template, parsing only.

# Functions every text/template has (text/template funcs.go builtins(), Go 1.26).
GO_BUILTINS = frozenset(
    "and call html index slice js len not or print printf println urlquery eq ge gt le lt ne".split()
)
# Prometheus v3.14.0, template/template.go NewTemplateExpander: the functions alert labels and
# annotations may call (rulefmt parses them with exactly this map at rule-load time).
PROMETHEUS_FUNCTIONS = frozenset(
    "query first label value strvalue args reReplaceAll safeHtml match title toUpper toLower "
    "graphLink tableLink sortByLabel stripPort stripDomain humanize humanize1024 humanizeDuration "
    "humanizePercentage humanizeTimestamp toTime toDuration now pathPrefix externalURL "
    "parseDuration urlQueryEscape".split()
)
# Alertmanager v0.34.0, template/template.go DefaultFuncs (routeLabels is among them as a
# placeholder, replaced when a notification is rendered).
ALERTMANAGER_FUNCTIONS = frozenset(
    "toUpper toLower title trimSpace join match safeHtml safeUrl urlUnescape reReplaceAll "
    "stringSlice routeLabels date tz now since humanizeDuration toDate mustToDate toJson "
    "base64encode base64decode list append dict".split()
)
# Prometheus (model/rulefmt/rulefmt.go) parses each alert label and annotation after these
# declarations, so the variables exist in every value.
PROMETHEUS_TEMPLATE_PREFIX = (
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}"
    "{{$externalURL := .ExternalURL}}{{$value := .Value}}"
)
# text/template refuses parentheses nested deeper than this (parse.go maxStackDepth).
_MAX_PAREN_DEPTH = 10000


class TemplateError(ValueError):
    """A template text/template would refuse to parse."""


@dataclass
class ParsedTemplate:
    """What a parse learned: the templates defined (with the templates each body calls) and the
    templates the top level calls."""

    defines: dict[str, set[str]] = field(default_factory=dict)
    calls: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    line: int


_KEYWORDS = {"block", "break", "continue", "define", "else", "end", "if", "nil", "range", "template", "with"}
# What may start an operand of a command.
_OPERAND_START = {"bool", "char_constant", "complex", "dot", "field", "identifier", "number", "nil",
                  "raw_string", "string", "variable", "("}
_SPACE = " \t\r\n"


def _alphanumeric(ch: str) -> bool:
    # Go: '_', unicode.IsLetter (categories L*) or unicode.IsDigit (Nd).
    return ch == "_" or ch.isalpha() or unicodedata.category(ch) == "Nd"


class _Lexer:
    """Splits a template into tokens the way text/template's scanner does. Comments are dropped;
    an error ends the stream with an `error` token."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.line = 1
        self.tokens: list[_Token] = []

    def emit(self, kind: str, start: int) -> None:
        chunk = self.text[start:self.pos]
        self.tokens.append(_Token(kind, chunk, self.line))
        self.line += chunk.count("\n")

    def skip(self, count: int) -> None:
        self.line += self.text[self.pos:self.pos + count].count("\n")
        self.pos += count

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < len(self.text) else ""

    def at_right_delim(self) -> tuple[bool, bool]:
        """(at a right delimiter, with a trim marker " -}}")."""
        rest = self.text[self.pos:]
        if len(rest) >= 2 and rest[0] in _SPACE and rest[1] == "-" and rest[2:].startswith("}}"):
            return True, True
        return rest.startswith("}}"), False

    def tokenize(self) -> list[_Token]:
        try:
            self._run()
        except TemplateError as error:
            self.tokens.append(_Token("error", str(error), self.line))
        return self.tokens

    def _run(self) -> None:
        text = self.text
        while True:
            found = text.find("{{", self.pos)
            if found < 0:
                if self.pos < len(text):
                    start, self.pos = self.pos, len(text)
                    self.emit("text", start)
                self.tokens.append(_Token("eof", "", self.line))
                return
            after = found + 2
            trim_left = len(text) > after + 1 and text[after] == "-" and text[after + 1] in _SPACE
            end = found
            if trim_left:
                end = len(text[self.pos:found].rstrip(_SPACE)) + self.pos
            if end > self.pos:
                start, self.pos = self.pos, end
                self.emit("text", start)
            self.skip(found - self.pos + 2)
            marker = 2 if trim_left else 0
            if text.startswith("/*", self.pos + marker):
                self.skip(marker)
                self._comment()
                continue
            self.tokens.append(_Token("{{", "{{", self.line))
            self.skip(marker)
            self._action()

    def _comment(self) -> None:
        close = self.text.find("*/", self.pos + 2)
        if close < 0:
            raise TemplateError("unclosed comment")
        self.skip(close + 2 - self.pos)
        delim, trim = self.at_right_delim()
        if not delim:
            raise TemplateError("comment ends before closing delimiter")
        self.skip((2 if trim else 0) + 2)
        if trim:
            self._trim_following()

    def _trim_following(self) -> None:
        rest = self.text[self.pos:]
        self.skip(len(rest) - len(rest.lstrip(_SPACE)))

    def _at_terminator(self) -> bool:
        ch = self.peek()
        return ch == "" or ch in _SPACE or ch in ".,|:()" or self.text.startswith("}}", self.pos)

    def _action(self) -> None:
        depth = 0
        while True:
            delim, trim = self.at_right_delim()
            if delim:
                if depth:
                    raise TemplateError("unclosed left paren")
                if trim:
                    self.skip(2)
                self.tokens.append(_Token("}}", "}}", self.line))
                self.skip(2)
                if trim:
                    self._trim_following()
                return
            start = self.pos
            ch = self.peek()
            if ch == "":
                raise TemplateError("unclosed action")
            if ch in _SPACE:
                self._space()
                continue
            self.pos += 1
            if ch == "=":
                self.emit("=", start)
            elif ch == ":":
                if self.peek() != "=":
                    raise TemplateError("expected :=")
                self.pos += 1
                self.emit(":=", start)
            elif ch == "|":
                self.emit("|", start)
            elif ch == '"':
                self._quoted(start, '"', "string", "unterminated quoted string")
            elif ch == "'":
                self._quoted(start, "'", "char_constant", "unterminated character constant")
            elif ch == "`":
                close = self.text.find("`", self.pos)
                if close < 0:
                    raise TemplateError("unterminated raw quoted string")
                self.pos = close + 1
                self.emit("raw_string", start)
            elif ch == "$":
                self._word(start, "variable")
            elif ch == "." and self.peek() != "" and not ("0" <= self.peek() <= "9"):
                self._word(start, "field")
            elif ch in "+-." or "0" <= ch <= "9":
                self.pos = start
                self._number(start)
            elif _alphanumeric(ch):
                self.pos = start
                self._identifier(start)
            elif ch == "(":
                depth += 1
                self.emit("(", start)
            elif ch == ")":
                depth -= 1
                if depth < 0:
                    raise TemplateError("unexpected right paren")
                self.emit(")", start)
            elif ch.isascii() and ch.isprintable():
                self.emit("char", start)
            else:
                raise TemplateError(f"unrecognized character in action: U+{ord(ch):04X}")

    def _space(self) -> None:
        start = self.pos
        while self.peek() != "" and self.peek() in _SPACE:
            self.pos += 1
        # The last space may belong to a trim-marked closing delimiter " -}}".
        if self.text[self.pos:self.pos + 1] == "-" and self.text.startswith("}}", self.pos + 1):
            self.pos -= 1
        if self.pos > start:
            self.emit("space", start)

    def _quoted(self, start: int, quote: str, kind: str, unterminated: str) -> None:
        while True:
            ch = self.peek()
            self.pos += 1
            if ch == "\\":
                if self.peek() in ("", "\n"):
                    raise TemplateError(unterminated)
                self.pos += 1
            elif ch in ("", "\n"):
                raise TemplateError(unterminated)
            elif ch == quote:
                break
        self.emit(kind, start)

    def _word(self, start: int, kind: str) -> None:
        """A variable ($, $name) or a field (.Name); the sigil has been read."""
        if self._at_terminator():
            self.emit("variable" if kind == "variable" else "dot", start)
            return
        while self.peek() != "" and _alphanumeric(self.peek()):
            self.pos += 1
        if not self._at_terminator():
            raise TemplateError(f"bad character {self.peek()!r}")
        self.emit(kind, start)

    def _identifier(self, start: int) -> None:
        while self.peek() != "" and _alphanumeric(self.peek()):
            self.pos += 1
        if not self._at_terminator():
            raise TemplateError(f"bad character {self.peek()!r}")
        word = self.text[start:self.pos]
        if word in _KEYWORDS:
            self.emit(word, start)
        elif word in ("true", "false"):
            self.emit("bool", start)
        else:
            self.emit("identifier", start)

    def _accept(self, chars: str) -> bool:
        if self.peek() != "" and self.peek() in chars:
            self.pos += 1
            return True
        return False

    def _accept_run(self, chars: str) -> None:
        while self._accept(chars):
            pass

    def _scan_number(self) -> bool:
        self._accept("+-")
        digits = "0123456789_"
        if self._accept("0"):
            if self._accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self._accept("oO"):
                digits = "01234567_"
            elif self._accept("bB"):
                digits = "01_"
        self._accept_run(digits)
        if self._accept("."):
            self._accept_run(digits)
        if digits == "0123456789_" and self._accept("eE"):
            self._accept("+-")
            self._accept_run("0123456789_")
        if len(digits) == 23 and self._accept("pP"):
            self._accept("+-")
            self._accept_run("0123456789_")
        self._accept("i")
        if self.peek() != "" and _alphanumeric(self.peek()):
            self.pos += 1
            return False
        return True

    def _number(self, start: int) -> None:
        if not self._scan_number():
            raise TemplateError(f"bad number syntax: {self.text[start:self.pos]!r}")
        if self.peek() in ("+", "-") and self.peek() != "":
            if not self._scan_number() or self.text[self.pos - 1] != "i":
                raise TemplateError(f"bad number syntax: {self.text[start:self.pos]!r}")
            self.emit("complex", start)
        else:
            self.emit("number", start)


def _underscores_ok(text: str) -> bool:
    """Go's rule: an underscore only between digits, or between a base prefix and a digit."""
    body = text[1:] if text[:1] in ("+", "-") else text
    seen, i, hexadecimal = "start", 0, False
    if len(body) >= 2 and body[0] == "0" and body[1] in "bBoOxX":
        seen, i, hexadecimal = "digit", 2, body[1] in "xX"
    for ch in body[i:]:
        if ch.isdigit() or (hexadecimal and ch in "abcdefABCDEF"):
            seen = "digit"
        elif ch == "_":
            if seen != "digit":
                return False
            seen = "_"
        elif seen == "_":
            return False
        else:
            seen = "other"
    return seen != "_"


def _go_uint(text: str) -> Optional[int]:
    """strconv.ParseUint(text, 0, 64), or None where Go refuses it."""
    if not text:
        return None
    base, digits = 10, text
    if text[0] == "0":
        prefixes = {"b": 2, "o": 8, "x": 16}
        if len(text) >= 3 and text[1].lower() in prefixes:
            base, digits = prefixes[text[1].lower()], text[2:]
        else:
            base, digits = 8, text[1:]
    value = 0
    for ch in digits:
        if ch == "_":
            continue
        digit = int(ch, 36) if ch.isascii() and ch.isalnum() else 99
        if digit >= base:
            return None
        value = value * base + digit
    if value >= 2**64 or ("_" in text and not _underscores_ok(text)):
        return None
    return value


def _go_int(text: str) -> Optional[int]:
    """strconv.ParseInt(text, 0, 64), or None."""
    negative = text.startswith("-")
    magnitude = _go_uint(text[1:] if text.startswith(("+", "-")) else text)
    if magnitude is None or magnitude > 2**63 - (0 if negative else 1):
        return None
    return -magnitude if negative else magnitude


_DECIMAL_FLOAT = re.compile(r"[+-]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][+-]?\d[\d_]*)?")
_HEX_FLOAT = re.compile(r"[+-]?0[xX](_?[\da-fA-F][\da-fA-F_]*\.?[\da-fA-F_]*|\.[\da-fA-F][\da-fA-F_]*)[pP][+-]?\d[\d_]*")


def _go_float(text: str) -> bool:
    """strconv.ParseFloat(text, 64) succeeds: Go's float syntax, in float64's range."""
    if "_" in text and not _underscores_ok(text):
        return False
    plain = text.replace("_", "")
    if _DECIMAL_FLOAT.fullmatch(text):
        return math.isfinite(float(plain))
    if _HEX_FLOAT.fullmatch(text):
        try:
            return math.isfinite(float.fromhex(plain))
        except (OverflowError, ValueError):
            return False
    return False


_ESCAPE = re.compile(r"\\(?:([abfnrtv\\'\"])|x[0-9a-fA-F]{2}|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-7]{3}))")


def _go_unquote(body: str, quote: str) -> Optional[str]:
    """The error of strconv.Unquote (strings) or UnquoteChar (character constants), if any."""
    count, i = 0, 0
    while i < len(body):
        if body[i] != "\\":
            if body[i] == quote:
                return "invalid syntax"
            i, count = i + 1, count + 1
            continue
        match = _ESCAPE.match(body, i)
        if match is None:
            return "invalid syntax"
        simple, u4, u8, octal = match.groups()
        if simple in ("'", '"') and simple != quote:
            return "invalid syntax"
        code = int(u4 or u8 or "0", 16)
        if (u4 or u8) and (code > 0x10FFFF or 0xD800 <= code <= 0xDFFF):
            return "invalid syntax"
        if octal and int(octal, 8) > 255:
            return "invalid syntax"
        i, count = match.end(), count + 1
    if quote == "'" and count != 1:
        return "invalid syntax" if count == 0 else "malformed character constant"
    return None


def _number_error(token: _Token) -> Optional[str]:
    """Why text/template refuses a number token, or None."""
    text = token.text
    if token.kind == "char_constant":
        error = _go_unquote(text[1:-1], "'")
        return f"{error}: {text}" if error else None
    if token.kind == "complex":
        # real part, sign, imaginary part, 'i': some split must give two Go floats.
        for k in range(1, len(text) - 1):
            if text[k] in "+-" and text[k - 1] not in "eEpP" and _go_float(text[:k]) and _go_float(text[k:-1]):
                return None
        return f"illegal number syntax: {text!r}"
    if text.endswith("i") and _go_float(text[:-1]):
        return None
    if _go_uint(text) is not None or _go_int(text) is not None:
        return None
    if _go_float(text):
        # A float that looks like an integer was too large for one.
        return None if any(c in text for c in ".eEpP") else f"integer overflow: {text!r}"
    return f"illegal number syntax: {text!r}"


_LITERALS = {"bool", "dot", "nil", "number", "char_constant", "complex", "string", "raw_string"}


class _Parser:
    """text/template's grammar over the lexer's tokens: an error raises TemplateError."""

    def __init__(self, name: str, text: str, functions: frozenset[str], result: ParsedTemplate):
        self.tokens = _Lexer(text).tokenize()
        self.i = 0
        self.name = name
        self.functions = functions | GO_BUILTINS
        self.result = result
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.paren_depth = 0
        self.calls: set[str] = set()
        # Templates defined by this text: name -> has a body (not only space and comments).
        self.trees: dict[str, bool] = {}

    # Token stream.
    # The stream ends with an `eof` or `error` token, which repeats past the end; `self.i -= 1`
    # after a next() puts that token back.
    def peek(self) -> _Token:
        return self.tokens[min(self.i, len(self.tokens) - 1)]

    def next(self) -> _Token:
        token = self.peek()
        self.i += 1
        return token

    def next_non_space(self) -> _Token:
        token = self.next()
        while token.kind == "space":
            token = self.next()
        return token

    def peek_non_space(self) -> _Token:
        """The next token that is not a space; the spaces before it are consumed."""
        while self.peek().kind == "space":
            self.i += 1
        return self.peek()

    def error(self, message: str, token: Optional[_Token] = None) -> None:
        line = (token or self.tokens[min(max(self.i - 1, 0), len(self.tokens) - 1)]).line
        raise TemplateError(f"line {line}: {message}")

    def unexpected(self, token: _Token, context: str) -> None:
        if token.kind == "error":
            self.error(token.text, token)
        shown = "EOF" if token.kind == "eof" else (f"<{token.text}>" if token.kind in _KEYWORDS else repr(token.text))
        self.error(f"unexpected {shown} in {context}", token)

    def expect(self, kind: str, context: str) -> _Token:
        token = self.next_non_space()
        if token.kind != kind:
            self.unexpected(token, context)
        return token

    # Templates.
    def parse(self) -> None:
        body_empty = True
        while self.peek().kind != "eof":
            if self.peek().kind == "{{":
                saved = self.i
                self.next()
                if self.next_non_space().kind == "define":
                    self._definition()
                    continue
                self.i = saved
            node, empty = self.text_or_action()
            if node in ("end", "else"):
                self.error(f"unexpected {{{{{node}}}}}")
            body_empty = body_empty and empty
        self._add(self.name, body_empty)
        self.result.calls |= self.calls

    def _add(self, name: str, empty: bool) -> None:
        if name in self.trees and self.trees[name] and not empty:
            self.error(f"template: multiple definition of template {name!r}")
        if name not in self.trees or not self.trees[name]:
            self.trees[name] = not empty

    def _nested(self, context: str) -> tuple[bool, set[str]]:
        """A define or block body: its own variables and range depth, up to its {{end}}."""
        saved = (self.vars, self.range_depth, self.calls)
        self.vars, self.range_depth, self.calls = ["$"], 0, set()
        empty, end = self.item_list()
        if end != "end":
            self.error(f"unexpected {{{{{end}}}}} in {context}")
        calls = self.calls
        self.vars, self.range_depth, self.calls = saved
        return empty, calls

    def _definition(self) -> None:
        name = self._template_name(self.next_non_space(), "define clause")
        self.expect("}}", "define clause")
        empty, calls = self._nested("define clause")
        self._add(name, empty)
        self.result.defines[name] = calls

    def item_list(self) -> tuple[bool, str]:
        """Text and actions up to {{end}} or {{else}}: (only space and comments, which ended it)."""
        empty = True
        while self.peek_non_space().kind != "eof":
            node, node_empty = self.text_or_action()
            if node in ("end", "else"):
                return empty, node
            empty = empty and node_empty
        self.error("unexpected EOF")
        raise AssertionError  # unreachable: error() raises

    def text_or_action(self) -> tuple[str, bool]:
        token = self.next_non_space()
        if token.kind == "text":
            return "text", not token.text.strip()
        if token.kind == "{{":
            return self.action(), False
        self.unexpected(token, "input")
        raise AssertionError

    def action(self) -> str:
        token = self.next_non_space()
        kind = token.kind
        if kind in ("break", "continue"):
            closing = self.next_non_space()
            if closing.kind != "}}":
                self.unexpected(closing, f"{{{{{kind}}}}}")
            if self.range_depth == 0:
                self.error(f"{{{{{kind}}}}} outside {{{{range}}}}", token)
            return kind
        if kind == "else":
            if self.peek_non_space().kind not in ("if", "with"):
                self.expect("}}", "else")
            return "else"
        if kind == "end":
            self.expect("}}", "end")
            return "end"
        if kind in ("if", "range", "with"):
            self._control(kind)
            return kind
        if kind == "template":
            name = self._template_name(self.next_non_space(), "template clause")
            self.calls.add(name)
            if self.next_non_space().kind != "}}":
                self.i -= 1
                self.pipeline("template clause", "}}")
            return "template"
        if kind == "block":
            name = self._template_name(self.next_non_space(), "block clause")
            self.pipeline("block clause", "}}")
            empty, calls = self._nested("block clause")
            self._add(name, empty)
            self.result.defines[name] = calls
            self.calls.add(name)
            return "template"
        self.i -= 1
        self.pipeline("command", "}}")
        return "action"

    def _template_name(self, token: _Token, context: str) -> str:
        if token.kind not in ("string", "raw_string"):
            self.unexpected(token, context)
        if token.kind == "string":
            error = _go_unquote(token.text[1:-1], '"')
            if error:
                self.error(error, token)
            # Validated above; Go's escapes mean the same in a Python literal.
            return ast.literal_eval(token.text) if "\\" in token.text else token.text[1:-1]
        return token.text[1:-1].replace("\r", "")

    def _control(self, context: str) -> None:
        depth = len(self.vars)
        self.pipeline(context, "}}")
        if context == "range":
            self.range_depth += 1
        _, end = self.item_list()
        if context == "range":
            self.range_depth -= 1
        if end == "else":
            # {{else if ...}} and {{else with ...}} chain into a nested if or with, whose {{end}}
            # closes the chain.
            if context in ("if", "with") and self.peek().kind == context:
                self.next()
                self._control(context)
            else:
                _, end = self.item_list()
                if end != "end":
                    self.error(f"expected end; found {{{{{end}}}}}")
        del self.vars[depth:]

    def pipeline(self, context: str, end: str) -> None:
        declarations = 0
        while self.peek_non_space().kind == "variable":
            start = self.i
            variable = self.next()
            following = self.peek_non_space()
            if following.kind in (":=", "="):
                self.next_non_space()
                self.vars.append(variable.text)
                declarations += 1
                break
            if following.kind == "char" and following.text == ",":
                self.next_non_space()
                self.vars.append(variable.text)
                declarations += 1
                if context == "range" and declarations < 2:
                    if self.peek_non_space().kind in ("variable", "}}", ")"):
                        continue
                    self.error("range can only initialize variables")
                self.error(f"too many declarations in {context}")
            # Not a declaration: the variable (and the space after it) start the first command.
            self.i = start
            break
        commands: list[str] = []
        while True:
            token = self.next_non_space()
            if token.kind == end:
                if not commands:
                    self.error(f"missing value for {context}", token)
                for stage, first in enumerate(commands[1:], start=2):
                    if first in _LITERALS:
                        self.error(f"non executable command in pipeline stage {stage}", token)
                return
            if token.kind in _OPERAND_START:
                self.i -= 1
                commands.append(self.command())
            else:
                self.unexpected(token, context)

    def command(self) -> str:
        """Operands up to '|' (consumed), '}}' or ')'; the kind of the first operand."""
        first = ""
        while True:
            self.peek_non_space()
            kind = self.operand()
            first = first or (kind or "")
            token = self.next()
            if token.kind == "space":
                continue
            if token.kind in ("}}", ")"):
                self.i -= 1
            elif token.kind != "|":
                self.unexpected(token, "operand")
            break
        if not first:
            self.error("empty command")
        return first

    def operand(self) -> Optional[str]:
        kind = self.term()
        if kind is None:
            return None
        if self.peek().kind == "field":
            term = self.tokens[self.i - 1]
            while self.peek().kind == "field":
                self.next()
            if kind in ("bool", "string", "raw_string", "number", "char_constant", "complex", "nil", "dot"):
                self.error(f"unexpected . after term {term.text!r}", term)
            kind = "chain" if kind not in ("field", "variable") else kind
        return kind

    def term(self) -> Optional[str]:
        token = self.next_non_space()
        kind = token.kind
        if kind == "identifier":
            if token.text not in self.functions:
                self.error(f"function {token.text!r} not defined", token)
            return kind
        if kind == "variable":
            if token.text not in self.vars:
                self.error(f"undefined variable {token.text!r}", token)
            return kind
        if kind in ("dot", "nil", "field", "bool"):
            return kind
        if kind in ("number", "complex", "char_constant"):
            problem = _number_error(token)
            if problem:
                self.error(problem, token)
            return kind
        if kind == "(":
            if self.paren_depth >= _MAX_PAREN_DEPTH:
                self.error("max expression depth exceeded", token)
            self.paren_depth += 1
            self.pipeline("parenthesized pipeline", ")")
            self.paren_depth -= 1
            return "pipeline"
        if kind in ("string", "raw_string"):
            if kind == "string":
                problem = _go_unquote(token.text[1:-1], '"')
                if problem:
                    self.error(problem, token)
            return kind
        self.i -= 1
        return None


def parse_template(text: str, functions: frozenset[str], name: str = "") -> ParsedTemplate:
    """Parse `text` as text/template does with `functions` registered (Go's builtins are always
    there). Raises TemplateError with the reason where Go's parser would refuse it."""
    result = ParsedTemplate()
    try:
        _Parser(name, text, functions, result).parse()
    except RecursionError:
        # Go allows 10000 nested parentheses; Python's stack gives out first. Such a template
        # is refused here rather than guessed at.
        raise TemplateError("nested too deeply for this check to follow (a few hundred levels)") from None
    return result



def alert_template_problem(text: str, alert: str = "") -> Optional[str]:
    """Why Prometheus would refuse `text` as a label or annotation of the alerting rule `alert`,
    or None. rulefmt parses it after its variable declarations, named __alert_<alert>."""
    if "{{" not in text:
        # No action: Go's lexer reads it all as text, after a prefix that always parses. Most
        # labels and annotations (severity, summary) are such, and parsing the prefix for each
        # was a good part of checking a rule file.
        return None
    try:
        parse_template(PROMETHEUS_TEMPLATE_PREFIX + text, PROMETHEUS_FUNCTIONS, f"__alert_{alert}")
    except TemplateError as error:
        return str(error)
    return None


# ---------------------------------------------------------------------------------------------
# Values as Go reads them: durations, label and metric names.

_DURATION_UNITS = {"ms": (7, 10**6), "s": (6, 10**9), "m": (5, 60 * 10**9), "h": (4, 3600 * 10**9),
                   "d": (3, 86400 * 10**9), "w": (2, 7 * 86400 * 10**9), "y": (1, 365 * 86400 * 10**9)}
MAX_DURATION_NS = 2**63 - 1


def scalar_text(value: Any) -> Optional[str]:
    """A YAML scalar, as PyYAML loaded it, as Go's decoder reads it into a string field; None
    for a map or a list."""
    if isinstance(value, (dict, list)):
        return None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class DurationOutOfRange(ValueError):
    """A well-formed duration longer than int64 nanoseconds (about 292 years) can hold."""


def parse_duration(text: Any) -> int:
    """A duration as Prometheus and Alertmanager read it (prometheus/common model.ParseDuration,
    v0.70.1, which both pinned releases use), in nanoseconds. Raises ValueError."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = str(text)  # YAML read 0 or 5 as a number; Go reads the same text
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration string")
    if text == "0":
        return 0

    def refuse(reason: str) -> ValueError:
        return ValueError(f"{text!r} is not a valid duration: {reason}")

    if text == "":
        raise refuse("it is empty")
    total, last = 0, 0
    for number, unit in re.findall(r"([0-9]*)([^0-9]*)", text)[:-1]:
        if not number or not unit:
            raise refuse("a number without a unit")
        if unit not in _DURATION_UNITS:
            raise refuse(f"unknown unit {unit!r}")
        position, size = _DURATION_UNITS[unit]
        if position <= last:
            raise refuse("units go from largest to smallest, once each")
        last = position
        value = int(number)
        if value >= 2**64 or value > 2**63 // size or total + value * size > MAX_DURATION_NS:
            raise DurationOutOfRange(f"{text!r} is not a valid duration: out of range, at most about 292 years")
        total += value * size
    return total


_LEGACY_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_LEGACY_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def valid_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: what invalid UTF-8 becomes in Python
        return False
    return True


def valid_label_name(name: Any, scheme: str = "utf8") -> bool:
    """prometheus/common ValidationScheme.IsValidLabelName (v0.70.1): legacy is
    [a-zA-Z_][a-zA-Z0-9_]*, UTF-8 is any non-empty valid UTF-8."""
    # YAML may read a key such as 1 or true as a number or a boolean; Go reads the text.
    text = scalar_text(name)
    if not text:
        return False
    if scheme == "legacy":
        return _LEGACY_LABEL_NAME.fullmatch(text) is not None
    return valid_utf8(text)


def valid_metric_name(name: str, scheme: str = "utf8") -> bool:
    """ValidationScheme.IsValidMetricName: legacy adds ':' to the label name characters."""
    if scheme == "legacy":
        return _LEGACY_METRIC_NAME.fullmatch(name) is not None
    return bool(name) and valid_utf8(name)


def scheme_rule(scheme: str) -> str:
    """What a label name is under `scheme`, for messages."""
    if scheme == "legacy":
        return "under the legacy name scheme a label name has letters, digits and '_' and does not start with a digit"
    return "a label name is any non-empty, valid UTF-8 text"


# ---------------------------------------------------------------------------------------------
# PromQL

METRIC_NAME_LABEL = "__name__"
# PromQL functions Prometheus v3.14.0 refuses without --enable-feature=promql-experimental-functions
# (promql/parser/functions.go, Experimental: true), and the two experimental aggregations
# (lex.go IsExperimentalAggregator).
EXPERIMENTAL_PROMQL_FUNCTIONS = frozenset(
    "end histogram_quantiles double_exponential_smoothing info max_of min_of mad_over_time "
    "ts_of_first_over_time ts_of_max_over_time ts_of_min_over_time ts_of_last_over_time range "
    "sort_by_label sort_by_label_desc start start_timestamp step".split()
)
EXPERIMENTAL_PROMQL_AGGREGATIONS = frozenset({"limitk", "limit_ratio"})


def promql_problem(expr: str, experimental: bool = False) -> Optional[str]:
    """Why Prometheus would refuse `expr`, or None; `experimental` where Prometheus runs with
    --enable-feature=promql-experimental-functions."""
    if not expr.strip():
        return "an expression must be set (for example up == 0)"
    try:
        ast = promql_parser.parse(expr)
    except ValueError as error:
        return f"PromQL does not parse: {error}"
    found: list[str] = []

    def visit(node: Any) -> None:
        # Prometheus reads each duration literal with model.ParseDuration: at most MaxInt64 ns.
        for attribute in ("range", "step", "offset"):
            value = getattr(node, attribute, None)
            if isinstance(value, timedelta):
                nanoseconds = (value.days * 86400 + value.seconds) * 10**9 + value.microseconds * 1000
                if abs(nanoseconds) > MAX_DURATION_NS:
                    found.append(f"PromQL does not parse: the duration {value} is out of range (at most about 292 years)")
        if experimental:
            return
        if isinstance(node, promql_parser.Call) and node.func.name in EXPERIMENTAL_PROMQL_FUNCTIONS:
            found.append(node.func.name)
        if isinstance(node, promql_parser.AggregateExpr) and str(node.op).lower() in EXPERIMENTAL_PROMQL_AGGREGATIONS:
            found.append(str(node.op).lower())

    promql_parser.walk(ast, visit)
    if not found:
        return None
    if found[0].startswith("PromQL"):
        return found[0]
    return (f"{found[0]} is experimental in Prometheus, which refuses it unless started with "
            "--enable-feature=promql-experimental-functions")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression (one that parses) selects by name; a regex on __name__ names none."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            names.update(m.value for m in node.matchers.matchers
                         if m.name == METRIC_NAME_LABEL and m.op == promql_parser.MatchOp.Equal)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


# ---------------------------------------------------------------------------------------------
# Rule files, as Prometheus v3.14.0 loads them (model/rulefmt Parse and Validate).

# rulefmt's yaml tags: RuleGroups, RuleGroup and Rule; any other key is an error.
RULE_FILE_FIELDS = ("groups",)
GROUP_FIELDS = ("name", "interval", "query_offset", "limit", "rules", "labels")
RULE_FIELDS = ("record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations")
# What yaml.v3 (resolve.go, decode.go) reads into an int field: a plain scalar that, underscores
# dropped, is an integer strconv.ParseInt takes with base 0, or a float in YAML's style within
# int64 (truncated).
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


@dataclass(frozen=True)
class Rule:
    """One rule of a rule file, as far as it could be read."""

    position: int  # among all the file's rules, from 0
    group: str
    index: int  # within its group, from 1
    alert: str
    record: str
    expr: str
    expr_ok: bool  # set, and Prometheus parses it

    @property
    def name(self) -> str:
        return self.alert or self.record

    @property
    def context(self) -> str:
        """How a message names the rule: group 'g', rule 2 ('Name')."""
        return f"group {self.group!r}, rule {self.index}" + (f" ({self.name!r})" if self.name else "")


@dataclass(frozen=True)
class RuleProblem:
    """Something Prometheus refuses in a rule file: where (line, group, rule, the rule's field)
    and what, the message without the where, so each reader of the file says where its own way."""

    message: str
    line: Optional[int] = None  # from 1, where known
    group: str = ""  # the group's name, for a problem in a named group
    rule: Optional[Rule] = None  # for a problem in a rule
    part: str = ""  # the rule's field: expr, for, labels.severity, ...

    @property
    def context(self) -> str:
        if self.rule is not None:
            return self.rule.context
        return f"group {self.group!r}" if self.group else ""


@dataclass
class RuleFile:
    rules: list[Rule] = field(default_factory=list)
    problems: list[RuleProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_rule_file(text: str, scheme: str = "utf8", experimental: bool = False) -> RuleFile:
    """Every rule and every problem of one rule file, read with `scheme` label names and, where
    `experimental`, the experimental PromQL functions enabled."""
    return _RuleReader(scheme, experimental).read(text)


# (the node a problem is at, the message, the rule's field)
_Report = Callable[..., None]


def _null(node: Any) -> bool:
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"))


def _yaml_int(node: Any) -> Optional[int]:
    """The int yaml.v3 decodes a node into, or None where it refuses (a quoted scalar is a string)."""
    if not isinstance(node, yaml.ScalarNode) or node.style is not None:
        return None
    plain = node.value.replace("_", "")
    value = _go_int(plain)
    if value is None and _YAML_FLOAT.fullmatch(plain):
        number = float(plain)
        value = int(number) if math.isfinite(number) and abs(number) < 2**63 else None
    return value


def _compose_fast(text: str) -> Optional[list]:
    """Every document's node tree, composed by libyaml (PyYAML's C bindings, components/yaml_text.py),
    many times faster than the pure Python parser; None where it refuses the text. The trees are the
    same (tags, values, positions) but for one thing, set back here: libyaml marks a plain scalar's
    style "" where the Python parser leaves it None."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml_text.LOADER))
    except yaml.YAMLError:
        return None
    pending = [node for node in nodes if node is not None]
    seen: set[int] = set()  # an alias shares its anchor's node, which may hold the alias itself
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            if node.style == "":
                node.style = None
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)
        else:
            pending.extend(item for pair in node.value for item in pair)
    return nodes


def _line(node: Any) -> Optional[int]:
    return node.start_mark.line + 1 if node is not None else None


class _RuleReader:
    def __init__(self, scheme: str, experimental: bool):
        self.scheme, self.experimental = scheme, experimental
        self.result = RuleFile()

    def read(self, text: str) -> RuleFile:
        nodes = _compose_fast(text)
        if nodes is not None:
            if len(nodes) > 1:
                self.result.warnings.append(f"holds {len(nodes)} YAML documents; Prometheus reads only the first")
            self.file(nodes[0] if nodes else None)
            return self.result
        # Not YAML, as libyaml reads it: the pure Python parser says why, in its own words.
        documents = yaml.compose_all(text, Loader=yaml.SafeLoader)
        try:
            first = next(documents, None)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            problem = getattr(error, "problem", None) or str(error)
            self.result.problems.append(RuleProblem(f"not valid YAML: {problem}", mark.line + 1 if mark else None))
            return self.result
        # Prometheus decodes the first document and only warns when there is another.
        try:
            others = sum(1 for _ in documents)
        except yaml.YAMLError:
            others = 1
        if others:
            self.result.warnings.append(f"holds {1 + others} YAML documents; Prometheus reads only the first")
        self.file(first)
        return self.result

    def add(self, node: Any, message: str, group: str = "", rule: Optional[Rule] = None, part: str = "") -> None:
        self.result.problems.append(RuleProblem(message, _line(node), group, rule, part))

    # YAML as yaml.v3 decodes it into rulefmt's types.
    def mapping(self, node: Any, report: _Report, what: str, fields: Optional[tuple[str, ...]] = None,
                nested: bool = False) -> dict[str, Any]:
        """The node's keys and values; a key twice, an unknown key or a non-mapping is a problem.
        `nested` names `what` in each message (a map inside a rule or the file itself)."""
        if _null(node):
            return {}
        if not isinstance(node, yaml.MappingNode):
            report(node, f"{what} must be a mapping")
            return {}
        lead = f"{what}: " if nested else ""
        found: dict[str, Any] = {}
        # yaml.v3 merges `<<: *anchor` maps under the mapping's own keys, which win over them.
        merge = [pair for pair in node.value if pair[0].tag.endswith(":merge")]
        own = [pair for pair in node.value if not pair[0].tag.endswith(":merge")]
        merged = [pair for _, value in merge
                  for source in (value.value if isinstance(value, yaml.SequenceNode) else [value])
                  if isinstance(source, yaml.MappingNode) for pair in source.value]
        names = {self.text(key) for key, _ in own}
        for key, value in own + [pair for pair in merged if self.text(pair[0]) not in names]:
            name = self.text(key) or ""
            if name in found:
                if (key, value) in merged:
                    continue  # an earlier merged map wins
                report(key, f"{lead}key {name!r} appears twice")
                continue
            if fields is not None and name not in fields:
                report(key, f"{lead}unknown field {name!r} (Prometheus takes {', '.join(fields)})")
                continue
            found[name] = value
        return found

    @staticmethod
    def text(node: Any) -> Optional[str]:
        """A scalar as yaml.v3 gives it to a string field: its text (empty for null)."""
        if not isinstance(node, yaml.ScalarNode):
            return None
        return "" if node.tag.endswith(":null") else node.value

    def string(self, node: Any, report: _Report, what: str) -> str:
        text = self.text(node)
        if text is None:
            kind = "list" if isinstance(node, yaml.SequenceNode) else "mapping"
            report(node, f"{what} must be a string, not a {kind}", what)
            return ""
        return text

    def duration(self, node: Any, report: _Report, key: str) -> int:
        if _null(node):  # yaml.v3 leaves a null duration at zero
            return 0
        try:
            return parse_duration(self.string(node, report, key))
        except ValueError as error:
            report(node, f"{key}: {error} (for example 5m)", key)
            return 0

    def integer(self, node: Any, report: _Report, key: str) -> None:
        if not _null(node) and _yaml_int(node) is None:
            report(node, f"{key} must be a number, not text (for example 10)", key)

    # rulefmt's types.
    def file(self, root: Any) -> None:
        def report(node: Any, message: str, part: str = "") -> None:
            self.add(node, message)

        groups = self.mapping(root, report, "the file", RULE_FILE_FIELDS, nested=True).get("groups")
        if _null(groups):
            return
        if not isinstance(groups, yaml.SequenceNode):
            report(groups, "groups must be a list of rule groups")
            return
        seen: set[str] = set()
        for node in groups.value:
            self.group(node, seen)

    def group(self, node: Any, seen: set[str]) -> None:
        found: list[tuple[Any, str]] = []

        def report(at: Any, message: str, part: str = "") -> None:
            found.append((at, message))

        group = self.mapping(node, report, "a rule group", GROUP_FIELDS)
        name = self.string(group["name"], report, "name") if "name" in group else ""
        if not name:
            report(node, "a rule group needs a name (for example name: checkout)")
        elif name in seen:
            report(node, "the name is used twice in this file")
        seen.add(name)
        for key in ("interval", "query_offset"):
            if key in group:
                self.duration(group[key], report, key)
        if "limit" in group:
            self.integer(group["limit"], report, "limit")
        self.labels(group.get("labels"), report, "labels", alert="")
        for at, message in found:
            self.add(at, message, group=name)
        rules = group.get("rules")
        if _null(rules):
            return
        if not isinstance(rules, yaml.SequenceNode):
            self.add(rules, "rules must be a list", group=name)
            return
        for index, rule_node in enumerate(rules.value, start=1):
            self.rule(rule_node, name, index)

    def rule(self, node: Any, group: str, index: int) -> None:
        found: list[tuple[Any, str, str]] = []

        def report(at: Any, message: str, part: str = "") -> None:
            found.append((at, message, part))

        fields = self.mapping(node, report, "a rule", RULE_FIELDS)
        alert = self.string(fields["alert"], report, "alert") if "alert" in fields else ""
        record = self.string(fields["record"], report, "record") if "record" in fields else ""
        if bool(alert) == bool(record):
            report(node, "a rule has either alert (an alerting rule) or record (a recording rule): exactly one of "
                         "the two must be set")
        expr = self.string(fields["expr"], report, "expr") if "expr" in fields else ""
        problem = promql_problem(expr, self.experimental) if expr else None
        if not expr:
            report(node, "expr is missing (for example expr: up == 0)", "expr")
        elif problem:
            report(fields["expr"], f"expr: {problem}", "expr")
        for key in ("for", "keep_firing_for"):
            if key in fields and self.duration(fields[key], report, key) and record:
                report(fields[key], f"a recording rule takes no {key}", key)
        self.labels(fields.get("labels"), report, "labels", alert)
        annotations = self.labels(fields.get("annotations"), report, "annotations", alert)
        if record:
            if annotations:
                report(fields["annotations"], "a recording rule takes no annotations", "annotations")
            if "{" in record or "}" in record:
                report(fields["record"], f"{record!r} is not a metric name; the selector belongs in expr "
                                         "(for example record: job:http_requests:rate5m)", "record")
            elif not valid_metric_name(record, self.scheme):
                report(fields["record"], f"{record!r} is not a valid metric name ({scheme_rule(self.scheme)}, "
                                         "and ':' is allowed; for example job:http_requests:rate5m)", "record")
        rule = Rule(len(self.result.rules), group, index, alert, record, expr, bool(expr) and problem is None)
        self.result.rules.append(rule)
        for at, message, part in found:
            self.add(at, message, group=group, rule=rule, part=part)

    def labels(self, node: Any, report: _Report, kind: str, alert: str) -> dict[str, str]:
        """A rule's or a group's labels, or a rule's annotations; an alerting rule's values are
        templates."""
        singular = kind[:-1]
        values: dict[str, str] = {}
        for name, value in self.mapping(node, report, kind, nested=True).items():
            part = f"{kind}.{name}"
            text = self.string(value, report, part)
            if not valid_label_name(name, self.scheme) or (kind == "labels" and name == METRIC_NAME_LABEL):
                reason = "the metric name, which no rule may set" if name == METRIC_NAME_LABEL else scheme_rule(self.scheme)
                report(node, f"{name!r} is not a valid {singular} name ({reason}; for example severity)", part)
            elif not valid_utf8(text):
                report(value, f"the value of {singular} {name!r} is not valid UTF-8", part)
            elif alert:
                problem = alert_template_problem(text, alert)
                if problem:
                    report(value, f"{part} is not a template Prometheus can parse: {problem} (text without '{{{{' "
                                  "is plain text; a template reads like '{{ $labels.instance }} is down')", part)
            values[name] = text
        return values
