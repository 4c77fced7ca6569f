"""The stack's settings: one typed model read from the Pulumi stack config.

Every key lives in the project's namespace (`observability:<key>` in stacks/Pulumi.<env>.yaml).
`load()` validates all of it before the program registers any resource, and reports every problem
in one `ConfigError` that names the stack file, each key path, what is wrong and an example of a
good value. Secret values never appear in a message.

Every value that another program reads is held here to that program's grammar and range: the
duration and size parsers of Prometheus, Loki and Go, Prometheus label names, Go templates,
URLs and host names, Kubernetes names, and the strings the exporters compose into connection URLs.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import posixpath
import re
import types
import unicodedata
from decimal import ROUND_CEILING, Decimal
from typing import Annotated, Any, Callable, Iterable, Literal, Optional, TypeVar, Union, get_args, get_origin
from urllib.parse import urlsplit

import promql_parser
import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from components.settings import grammar

NAMESPACE = "observability"

# Go's int64 (and time.Duration, in nanoseconds): the range of every integer, size and duration
# the services read.
INT64_MAX = 2**63 - 1

# Secrets that are URLs: Alertmanager reads them from a file and sends to them.
URL_SECRETS = frozenset({"slack_webhook_url", "watchdog_url"})


class ConfigError(pulumi.RunError):
    """Bad stack configuration; Pulumi prints the message without a traceback."""


def stack_file_path(stack: str) -> str:
    """Where a stack's configuration lives (Pulumi.yaml sets stackConfigDir: stacks)."""
    return f"stacks/Pulumi.{stack}.yaml"


def _bad(what: str, example: str) -> ValueError:
    return ValueError(f"{what} (for example {example})")


def _has_control(value: str) -> bool:
    """A newline, tab, NUL or other control character: never part of a name, a path or a URL."""
    return any(unicodedata.category(ch) == "Cc" for ch in value)


# --- durations, sizes and quantities --------------------------------------------------------------

_UNIT_MS = {"y": 31_536_000_000, "w": 604_800_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}


def milliseconds(duration: str) -> int:
    """A Prometheus-style duration ("1h30m", "7d") in whole milliseconds, exactly."""
    return sum(int(n) * _UNIT_MS[unit] for n, unit in re.findall(r"(\d+)(ms|y|w|d|h|m|s)", duration))


def _duration(value: str) -> str:
    # Prometheus's own grammar and range (components/settings/grammar.py). Go's time.Duration, which the
    # collector and Jaeger read, holds the same int64 nanoseconds.
    try:
        nanoseconds = grammar.parse_duration(value)
    except grammar.DurationOutOfRange:
        raise _bad(f"{value!r} is longer than Prometheus and Go can hold (2^63-1 ns, about 292 years)", "90d") from None
    except ValueError:
        raise _bad(f"{value!r} is not a valid duration", "30s, 5m, 7d or 1h30m") from None
    if nanoseconds == 0:
        raise _bad(f"{value!r} is a zero duration; it must be longer than zero", "30s")
    return value


# Prometheus retention sizes and Loki byte sizes ("512MB", "50GB"); both count 1KB as 1024B.
_BYTE_SIZE = re.compile(r"(\d+)(B|KB|MB|GB|TB|PB|EB)")
_BASE2 = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40, "PB": 2**50, "EB": 2**60}


def _byte_size(value: str) -> str:
    match = _BYTE_SIZE.fullmatch(value)
    if match is None:
        raise _bad(f"{value!r} is not a valid size", "512MB or 50GB")
    size = int(match[1]) * _BASE2[match[2]]
    if size == 0:
        raise _bad(f"{value!r} is zero; a size must be larger than zero", "50GB")
    if size > INT64_MAX:
        raise _bad(f"{value!r} is more than Prometheus and Loki can hold (2^63-1 bytes)", "50GB")
    return value


# Kubernetes quantities: memory and storage ("512Mi", "20Gi"), CPU ("250m", "1", "0.5").
_QUANTITY = re.compile(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?")
_CPU = re.compile(r"(\d+)m|\d+(?:\.\d+)?")

_QUANTITY_UNITS = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15, "EB": 10**18, "B": 1,
    "m": 10**-3,
}


def quantity(value: str) -> float:
    """A Kubernetes quantity or Prometheus size in base units: bytes, or cores for CPU."""
    number = value.rstrip("".join(set("".join(_QUANTITY_UNITS))))
    unit = value[len(number):]
    return float(number) * _QUANTITY_UNITS.get(unit, 1)


def _memory(value: str) -> str:
    match = _QUANTITY.fullmatch(value)
    if match is None:
        raise _bad(f"{value!r} is not a valid Kubernetes quantity", "512Mi or 20Gi")
    size = Decimal(match[1]) * _QUANTITY_UNITS.get(match[2] or "", 1)
    if size == 0:
        raise _bad(f"{value!r} is zero; a quantity must be larger than zero", "512Mi")
    # Container runtimes, Docker's memory limit and volume sizes are int64 bytes.
    if size > INT64_MAX:
        raise _bad(f"{value!r} is more than 2^63-1 bytes, the most a memory limit or volume can hold", "20Gi")
    return value


def _cpu(value: str) -> str:
    if not _CPU.fullmatch(value):
        raise _bad(f"{value!r} is not a valid CPU quantity", "250m, 1 or 0.5")
    cores = Decimal(value[:-1]) / 1000 if value.endswith("m") else Decimal(value)
    if cores == 0:
        raise _bad(f"{value!r} is zero; a CPU quantity must be larger than zero", "250m")
    # Docker counts CPUs in int64 nano-CPUs.
    if cores * 10**9 > INT64_MAX:
        raise _bad(f"{value!r} is more CPUs than Docker can count (int64 nano-CPUs)", "2")
    return value


Duration = Annotated[str, AfterValidator(_duration)]
ByteSize = Annotated[str, AfterValidator(_byte_size)]
Quantity = Annotated[str, AfterValidator(_memory)]
Cpu = Annotated[str, AfterValidator(_cpu)]
Port = Annotated[int, Field(ge=1, le=65535)]


def _count(value: int) -> int:
    # Go reads it as int: int64 on the 64-bit images the stack runs.
    if value > INT64_MAX:
        raise _bad(f"{value} is more than 2^63-1, the largest integer Go reads", "100000")
    return value


Count = Annotated[int, Field(ge=1), AfterValidator(_count)]


# --- names and free text --------------------------------------------------------------------------

# A DNS label (RFC 1123), as Kubernetes names namespaces and label values; also what the stack
# uses for container, volume and Prometheus job names.
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# A DNS subdomain: Kubernetes object names (StorageClass, RuntimeClass, ClusterIssuer).
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# The name part of a Kubernetes label or annotation key, and a label value.
_K8S_NAME_PART = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


def _name(value: str) -> str:
    if not _NAME.fullmatch(value) or len(value) > 63:
        raise _bad(f"{value!r} is not a valid name: lower case letters, digits and '-', starting and "
                   "ending with a letter or digit, at most 63 characters", "api or prod-eu1")
    return value


def _subdomain(example: str):
    def check(value: str) -> str:
        if not _SUBDOMAIN.fullmatch(value) or len(value) > 253:
            raise _bad(f"{value!r} is not a valid Kubernetes object name: lower case letters, digits, '-' "
                       "and '.', starting and ending with a letter or digit", example)
        return value

    return check


def _k8s_key(value: str) -> str:
    """A Kubernetes label, annotation or taint key: [prefix/]name."""
    parts = value.split("/")
    prefix, name = parts if len(parts) == 2 else ("", parts[0] if len(parts) == 1 else "")
    if (len(parts) == 2 and (not _SUBDOMAIN.fullmatch(prefix) or len(prefix) > 253)) \
            or not _K8S_NAME_PART.fullmatch(name) or len(name) > 63:
        raise _bad(f"{value!r} is not a valid Kubernetes key: an optional DNS prefix and '/', then up to 63 "
                   "letters, digits, '-', '_' or '.'", "nvidia.com/gpu.present")
    return value


def _k8s_label_value(value: str) -> str:
    if value and (not _K8S_NAME_PART.fullmatch(value) or len(value) > 63):
        raise _bad(f"{value!r} is not a valid Kubernetes label value: up to 63 letters, digits, '-', '_' "
                   "or '.', starting and ending with a letter or digit", "true")
    return value


def _text(example: str, forbid: str = "", why: str = "", spaces: bool = True):
    """A check for one line of text that another program reads as a whole: not empty, no control
    characters, no leading or trailing spaces, none of the characters in `forbid`."""

    def check(value: str) -> str:
        if not value.strip():
            raise _bad("must not be empty", example)
        if _has_control(value):
            raise _bad("must not contain a newline, tab or other control character", example)
        if value != value.strip():
            raise _bad("must not start or end with a space", example)
        if not spaces and any(ch.isspace() for ch in value):
            raise _bad("must not contain spaces", example)
        found = sorted({ch for ch in forbid if ch in value})
        if found:
            listed = " or ".join(repr(ch) for ch in found)
            raise _bad(f"must not contain {listed}{why}", example)
        return value

    return check


def _no_template(value: str) -> str:
    # Prometheus and Grafana expand alert annotations, and Alertmanager receiver fields, as Go
    # templates: a '{{' in plain text breaks the file (promtool rejects the whole rule file).
    if "{{" in value or "}}" in value:
        raise ValueError("must not contain '{{' or '}}': this field is read as a Go template, where they "
                         "delimit template code")
    return value


Name = Annotated[str, AfterValidator(_name)]
KubernetesKey = Annotated[str, AfterValidator(_k8s_key)]
KubernetesLabelValue = Annotated[str, AfterValidator(_k8s_label_value)]
Title = Annotated[str, AfterValidator(_text("Platform"))]


# Prometheus label names: common/model's LabelNameRE, the classic grammar that every Prometheus,
# Alertmanager and PromQL reader accepts unquoted. "__" is ReservedLabelPrefix, which
# common/model calls not legal in user-supplied label names (Prometheus keeps such labels for
# itself: __address__, __scheme__, ... configure a scrape and are dropped from the series).
def _label_name(value: str) -> str:
    # The classic grammar, which every Prometheus and Alertmanager the stack meets accepts.
    if not grammar.valid_label_name(value, "legacy"):
        raise _bad(f"{value!r} is not a valid Prometheus label name: letters, digits and '_', not starting "
                   "with a digit", "team")
    if value.startswith("__"):
        raise _bad(f"{value!r} starts with '__', which Prometheus reserves for its own labels", "team")
    return value


def _external_label_value(value: str) -> str:
    if not value:
        raise _bad("must not be empty: Prometheus drops a label with an empty value", "eu-west")
    # Prometheus 3 expands $NAME and ${NAME} in external label values from its environment
    # (os.Expand, where "$$" stays a literal "$").
    if "$" in value.replace("$$", ""):
        raise _bad("must not contain '$': Prometheus replaces $NAME and ${NAME} here with its environment "
                   "variables; write '$$' for a literal '$'", "eu-west")
    return value


def _target_label_value(value: str) -> str:
    if not value:
        raise _bad("must not be empty: Prometheus drops a label with an empty value", "payments")
    return value


LabelName = Annotated[str, AfterValidator(_label_name)]
ExternalLabelValue = Annotated[str, AfterValidator(_external_label_value)]


def _group_by(labels: list[str]) -> list[str]:
    # Alertmanager's route: "..." (group by every label) stands alone; a label once.
    if "..." in labels and len(labels) > 1:
        raise _bad("'...' groups by every label and cannot be listed with other labels", "[...]")
    seen = set()
    for label in labels:
        if label in seen:
            raise _bad(f"{label!r} is listed more than once", "[alertname, job]")
        seen.add(label)
        if label != "...":
            _label_name(label)
    return labels


# --- hosts, addresses and URLs --------------------------------------------------------------------

# A DNS host name. '_' is allowed: Docker resolves container names that hold one.
_HOST_LABEL = re.compile(r"[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?")


def _is_hostname(host: str) -> bool:
    labels = host.split(".")
    return (
        len(host) <= 253
        and all(len(label) <= 63 and _HOST_LABEL.fullmatch(label) for label in labels)
        # A name whose last label is all digits is a mistyped IPv4 address (999.1.1.1).
        and not labels[-1].isdigit()
    )


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def _is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def _host_ok(host: str, ipv6_in_brackets: bool = True) -> bool:
    if ipv6_in_brackets and host.startswith("[") and host.endswith("]"):
        return _is_ipv6(host[1:-1])
    return _is_ipv4(host) or _is_hostname(host)


def _port_problem(port: str) -> Optional[str]:
    if not port.isascii() or not port.isdigit():
        return "the port must be a number"
    if not 1 <= int(port) <= 65535:
        return f"port {int(port)} is outside 1 to 65535"
    return None


def _split_host_port(text: str) -> tuple[str, Optional[str]]:
    """`host[:port]` into host and port (None without one); an IPv6 host stays in its []."""
    if text.startswith("["):
        end = text.find("]")
        host, rest = (text[:end + 1], text[end + 1:]) if end > 0 else (text, "")
        if not rest:
            return host, None
        return (host, rest[1:]) if rest.startswith(":") else (text, None)
    host, sep, port = text.rpartition(":")
    return (host, port) if sep else (text, None)


def _host_port_problem(value: str, port_required: bool = True) -> Optional[str]:
    """What is wrong with `host:port` (or `host[:port]`), or None."""
    host, port = _split_host_port(value)
    if port is None and port_required:
        return "must be host:port"
    if not host or not _host_ok(host):
        return "the host must be a host name, an IPv4 address or an IPv6 address in []"
    return _port_problem(port) if port is not None else None


def _scrape_target(value: str) -> str:
    if "@" in value:
        # Not repeated: it may be user:password@. Prometheus takes credentials from basic_auth.
        raise _bad("must be host:port, without credentials", "api.app.svc:8000")
    problem = _host_port_problem(value)
    if problem is not None:
        raise _bad(f"{value!r} is not a valid target: {problem}", "api.app.svc:8000")
    return value


def _url_problem(value: str) -> Optional[str]:
    """What keeps `value` from being an http(s) URL with a host, or None. Credentials aside."""
    if _has_control(value) or any(ch.isspace() for ch in value):
        return "must be a URL without spaces or control characters"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not value.startswith(f"{parts.scheme}://"):
        return "must be an http:// or https:// URL"
    address = parts.netloc.rpartition("@")[2]
    if not address:
        return "has no host"
    problem = _host_port_problem(address, port_required=False)
    return f"has no valid host: {problem.removeprefix('the host ')}" if problem and "host" in problem else problem


def _url(example: str, credentials: str):
    """An http(s) URL with a host and no credentials. Never echoes the value: a URL can hold a token."""

    def check(value: str) -> str:
        problem = _url_problem(value)
        if problem is not None:
            raise _bad(problem, example)
        if "@" in urlsplit(value).netloc:
            raise ValueError(f"must not carry credentials; {credentials} (for example {example})")
        return value

    return check


def _url_secret(example: str):
    """A secret that is a URL: its shape only (http(s) and a host); what it carries is secret.
    Alertmanager trims the file it reads the URL from, so surrounding whitespace is harmless."""

    def check(value: str) -> str:
        problem = _url_problem(value.strip())
        if problem is not None:
            raise _bad(problem, example)
        return value

    return check


def _redis_address(value: str) -> str:
    example = "redis://redis.databases.svc:6379"
    match = re.fullmatch(r"(rediss?)://(.*)", value, flags=re.DOTALL)
    if match is None:
        raise _bad("must be redis://host:port or rediss://host:port (TLS)", example)
    rest = match[2]
    if "@" in rest:
        # redis_exporter would put it into REDIS_ADDR, a plain environment variable.
        raise ValueError("must not carry credentials: put the password in secrets.redis_password "
                         f"and give the address alone (for example {example})")
    if any(ch in rest for ch in "/?#"):
        raise _bad("must be only scheme, host and port, with no path or query", example)
    problem = _host_port_problem(rest)
    if problem is not None:
        raise _bad(f"the address {problem}", example)
    return value


def _postgres_host(value: str) -> str:
    example = "postgres.databases.svc"
    if not value.strip():
        raise _bad("must not be empty", example)
    # postgres-exporter composes DATA_SOURCE_URI as <host>:<port>/<database>?sslmode=<sslmode>:
    # an IPv6 address would need [] there, and anything past the host would change the
    # connection (a '?sslmode=' overrides sslmode).
    if _is_ipv6(value):
        raise _bad("cannot be an IPv6 address: postgres-exporter's connection URL is composed as "
                   "<host>:<port>; use a host name", example)
    if any(ch in value for ch in "/?#@:[]") or any(ch.isspace() for ch in value) or _has_control(value):
        raise _bad("must be a host name or IPv4 address only: the port is exporters.postgres.port, the "
                   "database exporters.postgres.database, TLS exporters.postgres.sslmode and the password "
                   "secrets.postgres_password", example)
    if not _host_ok(value, ipv6_in_brackets=False):
        raise _bad("must be a host name or an IPv4 address", example)
    return value


def _postgres_database(value: str) -> str:
    # The database is the path of postgres-exporter's connection URL, which lib/pq reads with
    # Go's url.Parse: '?' and '#' end the path, '%' starts an escape, '/' is not part of a name.
    return _text("app", forbid="/?#%", why=": the database name goes into the exporter's connection URL")(value)


def _s3_endpoint(value: str) -> str:
    example = "s3.eu-west-1.amazonaws.com or minio.storage.svc:9000"
    # Loki prefixes https:// (http:// with `insecure`) to an endpoint without "://", and takes one
    # with a scheme as it is, whatever `insecure` says.
    if "://" in value:
        raise _bad("must be host[:port] without a scheme; for plain HTTP set loki.storage.insecure: true", example)
    if "@" in value:
        raise ValueError("must not carry credentials: put them in secrets.loki_s3_access_key_id and "
                         f"secrets.loki_s3_secret_access_key (for example {example})")
    if "/" in value or _host_port_problem(value, port_required=False):
        raise _bad("must be host[:port] with a host name or IP address and no path", example)
    return value


def _bucket(value: str) -> str:
    if not value.strip():
        raise _bad("must not be empty", "acme-prod-loki")
    # Loki splits `bucketnames` at commas into several buckets.
    if "," in value:
        raise _bad(f"{value!r} must be one bucket: Loki reads a comma as a list of buckets", "acme-prod-loki")
    # S3's and GCS's bucket naming rules, in their common form.
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]", value):
        raise _bad(f"{value!r} is not a valid bucket name: 3 to 63 lower case letters, digits, '-', '_' or '.'",
                   "acme-prod-loki")
    return value


def _bind_address(value: str) -> str:
    if _is_ipv4(value):
        return value
    if _is_ipv6(value):
        raise _bad(f"{value!r} is an IPv6 address: the stack writes this address into http://<address>:<port> "
                   "URLs, which need an IPv4 address", "127.0.0.1")
    raise _bad(f"{value!r} is not an IPv4 address", "127.0.0.1, or 0.0.0.0 for every interface")


def _absolute_path(value: str) -> str:
    # Mounted into a container that runs as root: only an exact, absolute path.
    if _has_control(value) or value != value.strip() or not value.startswith("/") or value.startswith("//") \
            or posixpath.normpath(value) != value:
        raise _bad(f"{value!r} must be an absolute, normalised path (no '.', '..', '//' or trailing '/')",
                   "/var/run/docker.sock")
    return value


def _docker_host(value: str) -> str:
    example = "unix:///var/run/docker.sock, tcp://docker.example.internal:2376 or ssh://deploy@docker-host"
    # The forms the docker provider's client takes: a socket, TCP, SSH (Docker's connection
    # helper) and, for Docker Desktop on Windows, a named pipe.
    if re.fullmatch(r"npipe:////\./pipe/[A-Za-z0-9_.-]+", value):
        return value
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("unix", "tcp", "ssh"):
        raise _bad("must be unix://<socket path>, tcp://<host>:<port>, ssh://[<user>@]<host>[:<port>] or "
                   "npipe:////./pipe/<name>", example)
    if scheme == "unix":
        _absolute_path(rest)
        return value
    if _has_control(rest) or any(ch in rest for ch in "/?# "):
        raise _bad(f"must be {scheme}://<host>:<port> with no path", example)
    if scheme == "tcp":
        problem = _host_port_problem(rest)
        if problem is not None:
            raise _bad(f"the tcp:// address {problem}", example)
        return value
    user, at, address = rest.rpartition("@")
    if ":" in user:
        # Docker's ssh connection helper refuses a password in the URL; ssh keys authenticate.
        raise _bad("must not carry a password: use an ssh key", "ssh://deploy@docker-host")
    if at and not user:
        raise _bad("has an empty user name", "ssh://deploy@docker-host")
    if _host_port_problem(address, port_required=False):
        raise _bad("must be ssh://[<user>@]<host>[:<port>]", "ssh://deploy@docker-host")
    return value


def _metrics_path(value: str) -> str:
    # Prometheus puts metrics_path into the URL's path: a '?' would be escaped, not a query.
    _text("/metrics", forbid="?#", why=": query parameters cannot go in the path", spaces=False)(value)
    if not value.startswith("/"):
        raise _bad(f"{value!r} must start with '/'", "/metrics")
    return value


def _decimal_text(value: Any) -> Any:
    # `pulumi config set --path` stores integers as numbers but a decimal ("4.5") as text.
    if isinstance(value, str) and re.fullmatch(r"-?\d+\.\d+", value):
        return float(value)
    return value


def _top_level_bool(value: Any) -> Any:
    # `pulumi config set` hands a top-level entry over as text: "true" or "false".
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


Url = Annotated[str, AfterValidator(_url("https://grafana.example.internal", "this URL takes none"))]
# Basic-auth user names: RFC 7617 keeps ':' out of a user-id (it separates the password).
BasicAuthUser = Annotated[str, AfterValidator(_text("admin", forbid=":", why=": it separates user and password"))]
TopLevelBool = Annotated[bool, BeforeValidator(_top_level_bool)]
# A finite number (Model forbids NaN and infinity); not a boolean, and text only as a decimal.
Number = Annotated[float, BeforeValidator(_decimal_text)]


M = TypeVar("M", bound="Model")


class Model(BaseModel):
    """Base of every settings section: unknown keys are errors, values are immutable.

    strict: a value must have the type YAML gives it (nested values reach the program as JSON, so
    ints stay ints): `true` is not a port and "9090" is not a number. No NaN or infinity either.
    """

    # defer_build: each section's validator is built once, inside Settings' own, when the first
    # stack is validated, rather than once per class at import and again inside its parent's.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, strict=True, allow_inf_nan=False)


def args_of(section: Model, args: type[M]) -> M:
    """A component's args from a stack's settings section: the fields the two share, validated
    again as args, where what the stack may leave out (until a service is enabled) is required."""
    return args(**{name: getattr(section, name) for name in args.model_fields})


class ResourceAmounts(Model):
    cpu: Cpu = Field(examples=["250m"])
    memory: Quantity = Field(examples=["512Mi"])


class Resources(Model):
    """Requests and limits; on docker only the limits apply."""

    requests: ResourceAmounts
    limits: ResourceAmounts


def resources(cpu_request: str, memory_request: str, cpu_limit: str, memory_limit: str):
    """A default `resources` field for a service."""
    return Field(
        default_factory=lambda: Resources(
            requests=ResourceAmounts(cpu=cpu_request, memory=memory_request),
            limits=ResourceAmounts(cpu=cpu_limit, memory=memory_limit),
        )
    )


class DockerSettings(Model):
    host: Annotated[str, AfterValidator(_docker_host)] = "unix:///var/run/docker.sock"
    # Published ports bind here; 0.0.0.0 opens them to every interface of the host.
    bind_address: Annotated[str, AfterValidator(_bind_address)] = "127.0.0.1"
    network: Name = "observability"
    # Where the engine keeps its socket on the host, for services that discover containers.
    socket_path: Annotated[str, AfterValidator(_absolute_path)] = "/var/run/docker.sock"


class Toleration(Model):
    # No key, with Exists: every taint (of `effect`, when given).
    key: Optional[KubernetesKey] = Field(default=None, examples=["nvidia.com/gpu"])
    operator: Literal["Exists", "Equal"] = "Exists"
    value: Optional[KubernetesLabelValue] = Field(default=None, examples=["present"])
    effect: Optional[Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]] = None

    @model_validator(mode="after")
    def _value_with_equal(self) -> "Toleration":
        # Kubernetes refuses a value with Exists: the toleration matches the key alone.
        if self.operator == "Exists" and self.value is not None:
            raise _bad("a toleration with operator Exists takes no value; use operator: Equal with a value",
                       "{key: nvidia.com/gpu, operator: Equal, value: present}")
        # And an empty key with Equal: only Exists may match every key.
        if self.operator == "Equal" and self.key is None:
            raise _bad("a toleration with operator Equal needs a key", "{key: dedicated, operator: Equal, value: monitoring}")
        return self


class CoreDns(Model):
    """The cluster's CoreDNS, whose pods Prometheus scrapes: kubeadm, EKS and AKS label them
    k8s-app=kube-dns in kube-system and serve metrics on 9153. Clusters without CoreDNS (GKE's
    kube-dns) set enabled: false."""

    enabled: bool = True
    namespace: Name = "kube-system"
    pod_labels: dict[KubernetesKey, KubernetesLabelValue] = Field(
        default_factory=lambda: {"k8s-app": "kube-dns"}, min_length=1
    )
    port: Port = 9153


class KubernetesSettings(Model):
    context: Optional[Annotated[str, AfterValidator(_text("prod"))]] = Field(default=None, examples=["prod"])
    namespace: Name = "observability"
    # The per-node agents that need their node (node-exporter, the log shipper, the GPU exporter)
    # run in a namespace of their own, at Pod Security's `privileged` level; by default
    # <namespace>-node-agents.
    node_agents_namespace: Optional[Name] = Field(default=None, examples=["observability-node-agents"])
    storage_class: Optional[Annotated[str, AfterValidator(_subdomain("fast-ssd"))]] = Field(
        default=None, examples=["fast-ssd"]
    )
    # Most clusters' kubelets serve a self-signed certificate (kubeadm's default), which no CA
    # can verify; true where kubelets have certificates signed by the cluster's CA
    # (serverTLSBootstrap). Prometheus authenticates to the kubelet with its token either way.
    verify_kubelet_certificates: bool = False
    coredns: CoreDns = Field(default_factory=CoreDns)
    # The taints the per-node agents (node-exporter, the log shipper, the GPU exporter) tolerate,
    # so they also watch tainted nodes: by default every NoSchedule taint (control planes,
    # dedicated pools), but no NoExecute taint, which is how a node says to leave it. Kubernetes
    # adds the tolerations every DaemonSet needs (not-ready, unreachable, pressure) itself.
    node_agent_tolerations: list[Toleration] = Field(
        default_factory=lambda: [Toleration(effect="NoSchedule")]
    )


class ClusterTargets(Model):
    """What a Prometheus on Kubernetes scrapes of the cluster itself: every kubelet, the cAdvisor
    each kubelet serves (`cadvisor`), the API server, and CoreDNS where `coredns.enabled`."""

    cadvisor: bool = True
    verify_kubelet_certificates: bool = False
    coredns: CoreDns = Field(default_factory=CoreDns)


class Retention(Model):
    time: Duration = "7d"
    size: ByteSize = "10GB"


class ScrapeTarget(Model):
    """A static scrape job for something the stack does not deploy (an API, a batch host)."""

    job: Name = Field(examples=["api"])
    targets: list[Annotated[str, AfterValidator(_scrape_target)]] = Field(min_length=1, examples=[["api.app.svc:8000"]])
    metrics_path: Annotated[str, AfterValidator(_metrics_path)] = "/metrics"
    scheme: Literal["http", "https"] = "http"
    interval: Optional[Duration] = Field(default=None, examples=["10s"])
    labels: dict[LabelName, Annotated[str, AfterValidator(_target_label_value)]] = Field(
        default_factory=dict, examples=[{"team": "payments"}]
    )


class RemoteWrite(Model):
    """Long-term storage (Mimir, Thanos receive, Grafana Cloud); password in secrets."""

    url: Annotated[str, AfterValidator(_url(
        "https://mimir.example.internal/api/v1/push",
        "set prometheus.remote_write.username and put the password in secrets.remote_write_password",
    ))] = Field(examples=["https://mimir.example.internal/api/v1/push"])
    username: Optional[BasicAuthUser] = Field(default=None, examples=["prod-prometheus"])


class PrometheusSettings(Model):
    replicas: int = Field(default=1, ge=1, le=10)
    port: Port = 9090
    scrape_interval: Duration = "15s"
    scrape_timeout: Duration = "10s"
    evaluation_interval: Duration = "15s"
    retention: Retention = Field(default_factory=Retention)
    storage_size: Quantity = "20Gi"
    external_labels: dict[LabelName, ExternalLabelValue] = Field(default_factory=dict, examples=[{"region": "eu-west"}])
    # Scrape the user's own containers (docker label) or pods and services (annotation) that opt in.
    discovery: bool = True
    scrape_targets: list[ScrapeTarget] = Field(default_factory=list)
    remote_write: Optional[RemoteWrite] = None
    resources: Resources = resources("250m", "512Mi", "1", "1Gi")


# The `prometheus:` section is all the Prometheus component needs from a stack file.
PrometheusArgs = PrometheusSettings


# Alertmanager expands a Slack channel as a Go template.
SlackChannel = Annotated[str, AfterValidator(_no_template), AfterValidator(_text("#alerts", spaces=False))]


class SlackReceiver(Model):
    enabled: bool = False
    critical_channel: SlackChannel = "#alerts-critical"
    warning_channel: SlackChannel = "#alerts"


class PagerDutyReceiver(Model):
    enabled: bool = False


class WatchdogReceiver(Model):
    """A dead man's switch: an outside service that alarms when the Watchdog stops arriving."""

    enabled: bool = False
    # How often the always-firing Watchdog is sent again; the outside service's grace period
    # must be longer than this plus group_wait.
    repeat_interval: Duration = "1m"


class Receivers(Model):
    slack: SlackReceiver = Field(default_factory=SlackReceiver)
    pagerduty: PagerDutyReceiver = Field(default_factory=PagerDutyReceiver)
    watchdog: WatchdogReceiver = Field(default_factory=WatchdogReceiver)


class AlertmanagerSettings(Model):
    replicas: int = Field(default=1, ge=1, le=9)
    port: Port = 9093
    group_by: Annotated[list[str], AfterValidator(_group_by)] = Field(
        default_factory=lambda: ["alertname", "job", "severity"]
    )
    group_wait: Duration = "30s"
    group_interval: Duration = "5m"
    repeat_interval: Duration = "4h"
    receivers: Receivers = Field(default_factory=Receivers)
    # Kubernetes: the TCP ports its network policy lets it reach its receivers on, anywhere.
    receiver_ports: list[Port] = Field(default_factory=lambda: [443], min_length=1)
    storage_size: Quantity = "1Gi"
    resources: Resources = resources("50m", "64Mi", "200m", "128Mi")


# The `alertmanager:` section is all the Alertmanager component needs from a stack file.
AlertmanagerArgs = AlertmanagerSettings


# Each exporter's args (what its component needs, with the stacks' defaults) and its stack
# settings: the same fields, and `enabled`, which only the stack reads.
class NodeExporterArgs(Model):
    resources: Resources = resources("50m", "32Mi", "200m", "64Mi")


class NodeExporterSettings(NodeExporterArgs):
    enabled: bool = True


class CadvisorArgs(Model):
    resources: Resources = resources("100m", "128Mi", "500m", "256Mi")


class CadvisorSettings(CadvisorArgs):
    enabled: bool = True


PostgresHost = Annotated[str, AfterValidator(_postgres_host)]
# postgres-exporter escapes the user into its connection URL (url.UserPassword), so any
# printable text works.
PostgresUser = Annotated[str, AfterValidator(_text("postgres_exporter"))]


class PostgresExporterArgs(Model):
    host: PostgresHost = Field(examples=["postgres.databases.svc"])
    port: Port = 5432
    user: PostgresUser = Field(examples=["postgres_exporter"])
    database: Annotated[str, AfterValidator(_postgres_database)] = "postgres"
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "disable"
    resources: Resources = resources("50m", "32Mi", "200m", "64Mi")


class PostgresExporterSettings(PostgresExporterArgs):
    enabled: bool = False
    # Required once enabled (_cross_checks says so, naming the key).
    host: Optional[PostgresHost] = Field(default=None, examples=["postgres.databases.svc"])
    user: Optional[PostgresUser] = Field(default=None, examples=["postgres_exporter"])


# redis://host:6379 or rediss://host:6380; a password, if Redis wants one, goes in secrets.
RedisAddress = Annotated[str, AfterValidator(_redis_address)]


class RedisExporterArgs(Model):
    address: RedisAddress = Field(examples=["redis://redis.databases.svc:6379"])
    resources: Resources = resources("50m", "32Mi", "200m", "64Mi")


class RedisExporterSettings(RedisExporterArgs):
    enabled: bool = False
    address: Optional[RedisAddress] = Field(default=None, examples=["redis://redis.databases.svc:6379"])


class GpuExporterArgs(Model):
    # dcgm: NVIDIA DCGM exporter (port 9400); nvidia_smi: the nvidia-smi exporter (port 9835).
    exporter: Literal["dcgm", "nvidia_smi"] = "dcgm"
    # Kubernetes only: which nodes have GPUs, and the taint they carry.
    node_selector: dict[KubernetesKey, KubernetesLabelValue] = Field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"}
    )
    tolerations: list[Toleration] = Field(
        default_factory=lambda: [Toleration(key="nvidia.com/gpu", effect="NoSchedule")]
    )
    runtime_class: Optional[Annotated[str, AfterValidator(_subdomain("nvidia"))]] = "nvidia"
    resources: Resources = resources("50m", "128Mi", "500m", "512Mi")


class GpuExporterSettings(GpuExporterArgs):
    enabled: bool = False


class KubeStateMetricsArgs(Model):
    resources: Resources = resources("50m", "64Mi", "200m", "256Mi")


class KubeStateMetricsSettings(KubeStateMetricsArgs):
    # Kubernetes only: on by default there; the docker platform has no cluster to report on.
    enabled: bool = True


class ExportersSettings(Model):
    node: NodeExporterSettings = Field(default_factory=NodeExporterSettings)
    # On kubernetes every kubelet serves cAdvisor's metrics: Prometheus scrapes those, and no
    # cAdvisor pod runs.
    cadvisor: CadvisorSettings = Field(default_factory=CadvisorSettings)
    kube_state_metrics: KubeStateMetricsSettings = Field(default_factory=KubeStateMetricsSettings)
    postgres: PostgresExporterSettings = Field(default_factory=PostgresExporterSettings)
    redis: RedisExporterSettings = Field(default_factory=RedisExporterSettings)
    gpu: GpuExporterSettings = Field(default_factory=GpuExporterSettings)


class LokiStorage(Model):
    """Where Loki keeps chunks and index: a local volume, or a bucket (prod)."""

    type: Literal["filesystem", "s3", "gcs"] = "filesystem"
    bucket: Optional[Annotated[str, AfterValidator(_bucket)]] = Field(default=None, examples=["acme-prod-loki"])
    # S3 and S3-compatible stores (MinIO, Ceph): endpoint host[:port], region, addressing.
    endpoint: Optional[Annotated[str, AfterValidator(_s3_endpoint)]] = Field(
        default=None, examples=["s3.eu-west-1.amazonaws.com"]
    )
    region: Optional[Annotated[str, AfterValidator(_text("eu-west-1", spaces=False))]] = Field(
        default=None, examples=["eu-west-1"]
    )
    force_path_style: bool = False
    insecure: bool = False


class LokiLimits(Model):
    ingestion_rate_mb: Number = Field(default=4, gt=0)
    ingestion_burst_size_mb: Number = Field(default=6, gt=0)
    max_global_streams_per_user: Count = 5000
    per_stream_rate_limit: ByteSize = "3MB"
    max_line_size: ByteSize = "256KB"


class AutoscaledPods(Model):
    """Stateless pods kept between min_replicas and max_replicas by a HorizontalPodAutoscaler on
    CPU use (percent of the request): at least two, so that losing one leaves one."""

    min_replicas: int = Field(default=2, ge=2, le=1000)
    max_replicas: int = Field(default=6, ge=2, le=1000)
    cpu_utilization: int = Field(default=70, ge=10, le=100)

    @model_validator(mode="after")
    def _bounds(self) -> "AutoscaledPods":
        if self.max_replicas < self.min_replicas:
            raise _bad("max_replicas must be at least min_replicas", "{min_replicas: 2, max_replicas: 6}")
        return self


class LokiAutoscaledRole(AutoscaledPods):
    """A stateless role of Loki in microservices mode."""

    resources: Resources = resources("1", "512Mi", "2", "1Gi")


class LokiFixedRole(Model):
    """A role of Loki in microservices mode with a fixed number of replicas (two or more)."""

    replicas: int = Field(default=2, ge=2, le=100)
    resources: Resources = resources("250m", "256Mi", "1", "512Mi")


class LokiIngesters(Model):
    """The ingesters: every stream is written to three of them (replication factor 3), on three
    different nodes, so one node lost loses no stream's quorum."""

    replicas: int = Field(default=3, ge=3, le=1000)
    # The write-ahead log and the newest index, kept across restarts: lines an ingester acked
    # but had not yet flushed to the bucket are replayed from it.
    storage_size: Quantity = "50Gi"
    resources: Resources = resources("2", "4Gi", "4", "8Gi")


class LokiCompactor(Model):
    """The compactor: one replica, as Loki requires (retention and compaction pause while it is
    down; no write or read path goes through it)."""

    storage_size: Quantity = "20Gi"
    resources: Resources = resources("1", "2Gi", "2", "10Gi")


# Each role's defaults: the smallest shape that keeps every path alive through a lost pod or
# node; docs/sizing.md gives Loki's published figures to grow them by.
class LokiQueriers(LokiAutoscaledRole):
    max_replicas: int = Field(default=10, ge=2, le=1000)
    resources: Resources = resources("1", "1Gi", "2", "4Gi")


class LokiQueryFrontends(LokiAutoscaledRole):
    max_replicas: int = Field(default=4, ge=2, le=1000)
    resources: Resources = resources("500m", "1Gi", "1", "2Gi")


class LokiQuerySchedulers(LokiFixedRole):
    resources: Resources = resources("250m", "256Mi", "1", "512Mi")


class LokiIndexGateways(LokiFixedRole):
    # Each replica's copy of the index it serves from the bucket.
    storage_size: Quantity = "20Gi"
    resources: Resources = resources("500m", "2Gi", "1", "4Gi")


class LokiMicroservices(Model):
    """Loki's roles in microservices mode (loki.mode: microservices), each its own pods."""

    ingester: LokiIngesters = Field(default_factory=LokiIngesters)
    distributor: LokiAutoscaledRole = Field(default_factory=LokiAutoscaledRole)
    querier: LokiQueriers = Field(default_factory=LokiQueriers)
    query_frontend: LokiQueryFrontends = Field(default_factory=LokiQueryFrontends)
    query_scheduler: LokiQuerySchedulers = Field(default_factory=LokiQuerySchedulers)
    index_gateway: LokiIndexGateways = Field(default_factory=LokiIndexGateways)
    compactor: LokiCompactor = Field(default_factory=LokiCompactor)


class LokiSettings(Model):
    port: Port = 3100
    # monolithic: one pod runs every role (dev, staging). microservices: each role its own pods,
    # replicated and spread over nodes (kubernetes, with a bucket; prod): see `microservices`.
    mode: Literal["monolithic", "microservices"] = "monolithic"
    retention: Duration = "7d"
    storage: LokiStorage = Field(default_factory=LokiStorage)
    # monolithic: the one pod's volume.
    storage_size: Quantity = "20Gi"
    limits: LokiLimits = Field(default_factory=LokiLimits)
    # monolithic: the one pod's resources.
    resources: Resources = resources("100m", "256Mi", "1", "1Gi")
    microservices: LokiMicroservices = Field(default_factory=LokiMicroservices)


# The `loki:` section is all the Loki component needs from a stack file.
LokiArgs = LokiSettings


class LogShipperArgs(Model):
    """What the Alloy and Promtail components need."""

    resources: Resources = resources("50m", "64Mi", "500m", "256Mi")


class LogShipperSettings(LogShipperArgs):
    # Promtail reached end of life on 2026-03-02; Grafana Alloy is its supported successor.
    type: Literal["alloy", "promtail"] = "alloy"


class SamplingSettings(Model):
    """Tail sampling: every error trace and every slow trace, and this share of the rest."""

    percentage: Number = Field(default=10, gt=0, le=100)
    slow_threshold: Duration = "1s"
    decision_wait: Duration = "10s"


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise _bad("must be an address block in CIDR notation, its host bits zero", "10.20.0.0/16") from None
    return value


Cidr = Annotated[str, AfterValidator(_cidr)]


class OtlpClients(Model):
    """Kubernetes: who may send OTLP to the collector."""

    # The namespaces whose pods may send; every namespace when unset, none when empty.
    namespaces: Optional[list[Name]] = Field(default=None, examples=[["app"]])
    # Senders outside the pod network (nodes, virtual machines), as address blocks.
    cidrs: list[Cidr] = Field(default_factory=list, examples=[["10.20.0.0/16"]])


class CollectorGateway(AutoscaledPods):
    """The collector's gateway tier (otel_collector.scale_out): receives all OTLP."""

    min_replicas: int = Field(default=2, ge=2, le=100)
    max_replicas: int = Field(default=10, ge=2, le=100)
    resources: Resources = resources("1", "1Gi", "2", "2Gi")


class CollectorSampler(Model):
    """The collector's tail-sampling tier (otel_collector.scale_out): a fixed number of pods. Not
    autoscaled: every change of their number sends part of the traces in flight to another
    sampler, which decides on the spans it got alone."""

    replicas: int = Field(default=3, ge=2, le=100)
    resources: Resources = resources("1", "2Gi", "2", "4Gi")


class CollectorScaleOut(Model):
    """Kubernetes: the collector as two tiers, each of several pods (docs/traces.md)."""

    enabled: bool = False
    gateway: CollectorGateway = Field(default_factory=CollectorGateway)
    sampler: CollectorSampler = Field(default_factory=CollectorSampler)
    # Batches (of up to 8192 spans) each gateway holds for the samplers while it retries them.
    queue_size: Count = 100


class OtelCollectorSettings(Model):
    grpc_port: Port = 4317
    http_port: Port = 4318
    clients: OtlpClients = Field(default_factory=OtlpClients)
    # Require `Authorization: Bearer <secrets.otlp_token>` on every OTLP request, both protocols.
    require_token: bool = False
    sampling: SamplingSettings = Field(default_factory=SamplingSettings)
    # The one collector's; with scale_out, each tier has its own.
    resources: Resources = resources("100m", "256Mi", "1", "512Mi")
    scale_out: CollectorScaleOut = Field(default_factory=CollectorScaleOut)


# The `otel_collector:` section is all the collector component needs from a stack file.
OtelCollectorArgs = OtelCollectorSettings


# Jaeger's memory store allocates a ring of max_traces slots for a tenant on its first request:
# 80 bytes each (internal/storage/v2/memory traceAndId: a 16-byte trace ID, ptrace.Traces' two
# pointers and two time.Time values), before any trace is stored.
JAEGER_TRACE_SLOT_BYTES = 80


# The stores Jaeger shares with other processes: it runs as collectors that write and queriers
# that read, each several pods (kubernetes). memory and badger are one process's own.
JAEGER_DISTRIBUTED = ("elasticsearch", "opensearch", "cassandra")

# What Jaeger reads as its config file expands ${...} (and $$) in every value, before anything
# else reads it.
_JAEGER_EXPANDS = ": Jaeger expands $ in its configuration"
JaegerUser = Annotated[str, AfterValidator(_text(
    "jaeger", forbid=":$", why=_JAEGER_EXPANDS + ", and ':' ends a basic-auth user"))]
JaegerUrl = Annotated[str, AfterValidator(_url(
    "https://elasticsearch.logging.svc:9200",
    "set jaeger.elasticsearch.username and put the password in secrets.jaeger_elasticsearch_password",
))]


def _matching(pattern: str, what: str, example: str):
    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise _bad(f"{value!r} is not {what}", example)
        return value

    return check


def _ca_certificates(value: str) -> str:
    # Never echoed. Only certificates: a private key pasted with them does not belong there.
    _pem_certificates(value)
    if "PRIVATE KEY" in value:
        raise ValueError("holds a private key; give only the CA's certificate (-----BEGIN CERTIFICATE----- ...)")
    return value


CaCertificates = Annotated[str, AfterValidator(_ca_certificates)]


def _cassandra_host(value: str) -> str:
    if not _host_ok(value, ipv6_in_brackets=False):
        raise _bad(f"{value!r} is not a host name or IP address (the port is jaeger.cassandra.port)",
                   "cassandra.databases.svc")
    return value


class JaegerElasticsearch(Model):
    """jaeger.storage elasticsearch or opensearch (Jaeger reads both with one config): the cluster,
    and how the indices are kept. Jaeger writes through aliases that the cluster's own lifecycle
    policy rolls over and deletes (docs/traces.md says what to create first)."""

    # Required with those storages: the cluster's HTTP API, one URL per node or a load balancer.
    server_urls: list[JaegerUrl] = Field(default_factory=list, examples=[["https://elasticsearch.logging.svc:9200"]])
    # Indices and aliases are named <index_prefix>-jaeger-span-...; unset: jaeger-span-....
    # Elasticsearch's index names: lower case, no spaces or \/*?"<>|,#:, not starting with - _ +.
    index_prefix: Optional[Annotated[str, AfterValidator(_matching(
        r"[a-z0-9][a-z0-9._-]{0,99}", "an index prefix: lower case letters, digits, '.', '_' and '-', "
        "starting with a letter or digit, at most 100 characters", "prod"))]] = Field(default=None, examples=["prod"])
    # The ILM (Elasticsearch) or ISM (OpenSearch) policy, which you create, that rolls the write
    # index over and deletes old indices: the traces' retention.
    lifecycle_policy: Annotated[str, AfterValidator(_matching(
        r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}", "a policy name: letters, digits, '.', '_' and '-'",
        "jaeger-ilm-policy"))] = "jaeger-ilm-policy"
    # Primary shards and replicas of each index created from Jaeger's templates.
    shards: int = Field(default=5, ge=1, le=1024)
    replicas: int = Field(default=1, ge=0, le=1024)
    # Basic auth; the password is secrets.jaeger_elasticsearch_password. Unset: none. With
    # https, the CA that signs the cluster's certificate is secrets.jaeger_storage_ca (unset: the
    # system's CAs).
    username: Optional[JaegerUser] = Field(default=None, examples=["jaeger"])


class JaegerCassandra(Model):
    """jaeger.storage cassandra: the cluster, and the keyspace Jaeger keeps spans in."""

    # Required with that storage: contact points (host names or addresses, without a port).
    servers: list[Annotated[str, AfterValidator(_cassandra_host)]] = Field(
        default_factory=list, examples=[["cassandra.databases.svc"]])
    # Every node's CQL port.
    port: Port = 9042
    # Written into CQL as it is: a Cassandra identifier.
    keyspace: Annotated[str, AfterValidator(_matching(
        r"[A-Za-z][A-Za-z0-9_]{0,47}", "a keyspace name: a letter, then letters, digits and '_', at most 48",
        "jaeger_v1_dc1"))] = "jaeger_v1_dc1"
    # The collectors create the keyspace and tables when missing (CREATE ... IF NOT EXISTS), with
    # jaeger.trace_ttl as their TTL, datacenter and replication_factor; false: they exist.
    create_schema: bool = True
    # The keyspace's replication (NetworkTopologyStrategy), when the collectors create it: the
    # cluster's datacenter name, and how many of its nodes hold each span.
    datacenter: Annotated[str, AfterValidator(_text(
        "dc1", forbid="'\\$", why=": it is written into CQL between quotes, and Jaeger expands $ in its configuration",
        spaces=False))] = "dc1"
    replication_factor: int = Field(default=1, ge=1, le=100)
    # The password is secrets.jaeger_cassandra_password. Unset: no authentication.
    username: Optional[JaegerUser] = Field(default=None, examples=["jaeger"])
    # TLS to every node (Jaeger's default), its CA secrets.jaeger_storage_ca (unset: the
    # system's CAs); false: plain text.
    tls: bool = True


class JaegerRole(Model):
    """One role of Jaeger on a distributed store: a Deployment of `replicas` pods, spread over nodes."""

    replicas: int = Field(default=2, ge=2, le=100)


class JaegerCollectors(JaegerRole):
    """The collectors: OTLP from the OpenTelemetry Collector in, spans written to the store."""

    resources: Resources = resources("500m", "512Mi", "2", "2Gi")


class JaegerQueriers(JaegerRole):
    """The queriers: the UI and query API that Grafana reads, from the store."""

    resources: Resources = resources("250m", "256Mi", "1", "1Gi")


class JaegerSettings(Model):
    port: Port = 16686
    # memory (one pod, lost on restart), badger (one pod, a volume), or a store the stack does not
    # run, shared by collectors and queriers of several pods each (kubernetes): elasticsearch,
    # opensearch (jaeger.elasticsearch) or cassandra (jaeger.cassandra).
    storage: Literal["memory", "badger", "elasticsearch", "opensearch", "cassandra"] = "memory"
    # memory: traces kept, oldest dropped first (Go int). badger and cassandra: how long spans are kept.
    max_traces: Count = 100000
    trace_ttl: Duration = "72h"
    storage_size: Quantity = "10Gi"
    # memory and badger: the one pod's.
    resources: Resources = resources("100m", "256Mi", "1", "1Gi")
    elasticsearch: JaegerElasticsearch = Field(default_factory=JaegerElasticsearch)
    cassandra: JaegerCassandra = Field(default_factory=JaegerCassandra)
    # On a distributed store: each role's pods.
    collector: JaegerCollectors = Field(default_factory=JaegerCollectors)
    query: JaegerQueriers = Field(default_factory=JaegerQueriers)


# The `jaeger:` section is all the Jaeger component needs from a stack file.
JaegerArgs = JaegerSettings


_DATASOURCE_CREDENTIALS = "the stack configures Grafana's datasources without credentials"
DatasourceUrl = Annotated[str, AfterValidator(_url("http://prometheus.monitoring.svc:9090", _DATASOURCE_CREDENTIALS))]


class DatasourceUrls(Model):
    """Where Grafana reaches each datasource; by default, the services this stack deploys."""

    prometheus: Optional[DatasourceUrl] = None
    loki: Optional[DatasourceUrl] = None
    jaeger: Optional[DatasourceUrl] = None
    alertmanager: Optional[DatasourceUrl] = None


class GrafanaAlerts(Model):
    """Thresholds of the rules Grafana evaluates (they need Loki, which Prometheus cannot query)."""

    # Error lines of one service in 5 minutes.
    error_log_burst: Count = 10
    # Log volume of one service over 10 minutes, against its average 10 minutes of the last day.
    log_volume_factor: Number = Field(default=3, gt=1)


class GrafanaIngress(Model):
    """Kubernetes: Grafana reachable from outside the cluster, over TLS, at grafana.url's host.
    Without it, Grafana's port admits only Prometheus (NetworkPolicy); use `kubectl port-forward`."""

    enabled: bool = False
    # The IngressClass of the cluster's ingress controller; unset: the cluster's default class.
    class_name: Optional[Name] = Field(default=None, examples=["nginx"])
    # The kubernetes.io/tls Secret in the stack's namespace with the certificate for the host.
    tls_secret: Name = "grafana-tls"
    # A cert-manager ClusterIssuer that issues tls_secret; unset: the Secret is provided otherwise.
    cluster_issuer: Optional[Annotated[str, AfterValidator(_subdomain("internal-ca"))]] = Field(
        default=None, examples=["internal-ca"]
    )
    # Where the ingress controller's pods run: the only namespace whose pods may reach Grafana.
    controller_namespace: Name = "ingress-nginx"
    # Further annotations for the controller (timeouts, allow-lists, ...).
    annotations: dict[KubernetesKey, str] = Field(
        default_factory=dict, examples=[{"nginx.ingress.kubernetes.io/proxy-read-timeout": "300"}]
    )


# Grafana writes [database] values unquoted into PostgreSQL's key=value connection string
# ("user=%s host=%s port=%s dbname=%s sslmode=%s ... password=%s", grafana/grafana
# pkg/services/sqlstore/database_config.go @ a8dd3a999efb): a space, quote or backslash would end
# or change the value there. It also expands ${...} in every setting (pkg/setting/setting.go).
_DSN_FORBIDS = "'\\$"
_DSN_WHY = ": Grafana writes it unquoted into its PostgreSQL connection string and expands $ in its settings"


def _grafana_database_host(value: str) -> str:
    problem = _host_port_problem(value)
    if problem is not None:
        raise _bad(problem, "postgres.databases.svc:5432")
    return value


class GrafanaDatabase(Model):
    """Grafana's database on an existing PostgreSQL instead of SQLite on its own volume: what
    several replicas share (users, sessions, dashboards, alert state). The password is
    secrets.grafana_database_password; a CA that signs the server's certificate,
    secrets.grafana_database_ca_cert."""

    # host:port of the PostgreSQL server, as Grafana reaches it ([database] host).
    host: Annotated[str, AfterValidator(_grafana_database_host)] = Field(examples=["postgres.databases.svc:5432"])
    # The database ([database] name) and the user ([database] user); both must exist.
    name: Annotated[str, AfterValidator(_text("grafana", forbid=_DSN_FORBIDS, why=_DSN_WHY, spaces=False))] = "grafana"
    user: Annotated[str, AfterValidator(_text("grafana", forbid=_DSN_FORBIDS, why=_DSN_WHY, spaces=False))] = "grafana"
    # [database] ssl_mode: the values Grafana documents for postgres (conf/defaults.ini).
    ssl_mode: Literal["disable", "require", "verify-full"] = "verify-full"


# The kinds of store a long-term metrics datasource queries (its jsonData prometheusType).
LongTermStore = Literal["mimir", "thanos", "prometheus"]


class LongTermMetrics(Model):
    """A second Prometheus-type datasource, over the long-term store Prometheus remote-writes to.
    The basic-auth password, with `username`, is secrets.long_term_metrics_password."""

    # Its Prometheus query API: Mimir's is under /prometheus; Thanos's is its querier (or query
    # frontend); a Prometheus is its own URL.
    url: Annotated[str, AfterValidator(_url(
        "https://mimir.example.internal/prometheus",
        "set grafana.long_term_metrics.username and put the password in secrets.long_term_metrics_password",
    ))] = Field(examples=["https://mimir.example.internal/prometheus"])
    type: LongTermStore = Field(examples=["mimir"])
    username: Optional[BasicAuthUser] = Field(default=None, examples=["prod-grafana"])
    # Mimir's tenant, sent as the X-Scope-OrgID header; unset: none is sent (a gateway in front
    # of Mimir that sets it, or Mimir without multi-tenancy).
    tenant: Optional[Annotated[str, AfterValidator(_text("prod", spaces=False))]] = Field(default=None, examples=["prod"])


class GrafanaServerArgs(Model):
    """What the Grafana component needs: the server, without its content."""

    port: Port = 3000
    # Where `pulumi up` and people reach Grafana. On docker it defaults to the published port;
    # on kubernetes and for an external Grafana it must be set (an Ingress, a load balancer).
    url: Optional[Annotated[str, AfterValidator(_url(
        "https://grafana.example.internal",
        "the stack signs in with secrets.grafana_admin_password (grafana.mode: deploy) or "
        "secrets.grafana_api_token (grafana.mode: external)",
    ))]] = Field(default=None, examples=["https://grafana.example.internal"])
    # The stack's Grafana provider signs in with "<admin_user>:<password>" (basic auth).
    admin_user: BasicAuthUser = "admin"
    ingress: GrafanaIngress = Field(default_factory=GrafanaIngress)
    # Kubernetes: how many Grafana pods serve it; more than one share grafana.database.
    replicas: int = Field(default=1, ge=1, le=10)
    # Unset: SQLite on Grafana's own volume (storage_size), for one replica.
    database: Optional[GrafanaDatabase] = None
    storage_size: Quantity = "10Gi"
    resources: Resources = resources("100m", "256Mi", "1", "512Mi")


class GrafanaContentArgs(Model):
    """What the GrafanaContent component needs: the Grafana to configure, and what to put in it."""

    # Where the Grafana provider reaches the Grafana it configures.
    url: Annotated[str, AfterValidator(_url("https://grafana.example.internal", "pass the credentials as auth"))] = Field(
        examples=["https://grafana.example.internal"]
    )
    folders: list[Title] = Field(
        default_factory=lambda: ["Platform", "Applications", "Databases", "GPU & ML", "LLM & RAG"]
    )
    datasource_urls: DatasourceUrls = Field(default_factory=DatasourceUrls)
    # A second Prometheus-type datasource over long-term storage; unset: none.
    long_term_metrics: Optional[LongTermMetrics] = None
    alerts: GrafanaAlerts = Field(default_factory=GrafanaAlerts)
    # Where the rules' runbook links point: <runbook_url>#<alertname in lower case>.
    runbook_url: Annotated[
        str, AfterValidator(_no_template), AfterValidator(_text("https://wiki.example.internal/runbook", spaces=False))
    ] = "docs/runbook.md"


class GrafanaSettings(GrafanaServerArgs):
    # deploy: the stack runs Grafana. external: everything goes to an existing Grafana at
    # grafana.url, with an API token in secrets.grafana_api_token.
    mode: Literal["deploy", "external"] = "deploy"
    folders: list[Title] = Field(
        default_factory=lambda: ["Platform", "Applications", "Databases", "GPU & ML", "LLM & RAG"]
    )
    datasource_urls: DatasourceUrls = Field(default_factory=DatasourceUrls)
    long_term_metrics: Optional[LongTermMetrics] = None
    alerts: GrafanaAlerts = Field(default_factory=GrafanaAlerts)


class AlertOverride(Model):
    """A stack's change to one alert of configs/alerts/catalog.yml, by its name there."""

    # Merged with Model's config: only what this section adds.
    model_config = ConfigDict(populate_by_name=True)

    enabled: bool = True
    # Finite only: a NaN threshold compares false with everything and silently disables the alert.
    threshold: Optional[Number] = Field(default=None, examples=[90])
    for_: Optional[Duration] = Field(default=None, alias="for", examples=["10m"])
    severity: Optional[Literal["critical", "warning", "info"]] = None


class AlertsSettings(Model):
    # Where runbook links point; each alert's section is appended as #<alertname in lower case>.
    # It lands in the runbook_url annotation, which Prometheus and Grafana expand as a template.
    runbook_url: Annotated[
        str, AfterValidator(_no_template), AfterValidator(_text("https://wiki.example.internal/runbook", spaces=False))
    ] = "docs/runbook.md"
    overrides: dict[str, AlertOverride] = Field(default_factory=dict)


def _objective_target(value: float) -> float:
    if value >= 100:
        raise _bad(f"{value} leaves no error budget: at 100% every failed event breaks the objective, so "
                   "no burn rate can be measured against it; aim below 100", "99.9")
    if value <= 0:
        raise _bad(f"{value} is not a share of good events above 0%", "99.9")
    return value


def _series_selector(value: str) -> str:
    # One instant vector selector with a metric name, as the rules put it inside rate(...[w]).
    problem = grammar.promql_problem(value)
    if problem is not None:
        raise _bad(f"{value!r} is not a PromQL selector: {problem}", 'http_requests_total{job="api"}')
    node = promql_parser.parse(value)
    if not isinstance(node, promql_parser.VectorSelector) or not node.name:
        raise _bad(f"{value!r} must be one series selector that names its metric, without functions, "
                   "ranges or operators", 'http_requests_total{job="api"}')
    if node.offset is not None or node.at is not None:
        raise _bad(f"{value!r} must not use offset or @: the objective is measured now", 'http_requests_total{job="api"}')
    return value.strip()


SeriesSelector = Annotated[str, AfterValidator(_series_selector)]


class SloObjective(Model):
    """One service level objective: the share of good events over a rolling window
    (components/alerting/slos.py renders it)."""

    # availability: good events over all events; latency: events faster than `threshold`.
    sli: Literal["availability", "latency"] = Field(examples=["availability"])
    # In percent of events that must be good over the window.
    target: Annotated[Number, AfterValidator(_objective_target)] = Field(examples=[99.9])
    window: Duration = "30d"
    # latency: seconds; one of the histogram's bucket boundaries.
    threshold: Optional[Annotated[Number, Field(gt=0)]] = Field(default=None, examples=[0.5])
    # availability, instead of the application contract's 5xx share: the good and all events.
    good: Optional[SeriesSelector] = Field(default=None, examples=['grpc_server_handled_total{job="api", grpc_code="OK"}'])
    total: Optional[SeriesSelector] = Field(default=None, examples=['grpc_server_handled_total{job="api"}'])
    # latency, instead of the application contract's http_request_duration_seconds: a histogram
    # by its name (without _bucket) and the series to count, and its bucket boundaries.
    histogram: Optional[SeriesSelector] = Field(default=None, examples=['grpc_server_handling_seconds{job="api"}'])
    buckets: Optional[list[Annotated[Number, Field(gt=0)]]] = Field(default=None, min_length=1, examples=[[0.1, 0.5, 1]])


class SloService(Model):
    """A service's objectives, by name."""

    # The scrape job the application contract's series carry; the service's key by default.
    job: Optional[Annotated[str, AfterValidator(_target_label_value)]] = Field(default=None, examples=["api"])
    objectives: dict[Name, SloObjective] = Field(min_length=1)


def _secret_value(value: str) -> str:
    # Never echoed. The services trim what they read from a secret file: only spaces is nothing.
    if not value.strip():
        raise ValueError("must not be empty or only spaces")
    return value


SecretValue = Annotated[str, AfterValidator(_secret_value)]


def _bearer_token(value: str) -> str:
    # Never echoed. RFC 6750's b64token: what an Authorization header carries after "Bearer ".
    if not re.fullmatch(r"[A-Za-z0-9._~+/-]+=*", value.strip()):
        raise ValueError("must be one token of letters, digits and -._~+/ (then = padding only), "
                         "as an Authorization header carries it after 'Bearer'")
    return value


def _grafana_database_password(value: str) -> str:
    # Never echoed. The image's entrypoint reads it from its file as $(cat file), dropping
    # trailing newlines; what is left goes into the connection string as it is (_DSN_FORBIDS).
    password = value.rstrip("\n")
    if not password:
        raise ValueError("must not be empty")
    if any(ch.isspace() for ch in password) or any(ch in password for ch in _DSN_FORBIDS):
        raise ValueError("must not contain spaces, ', \\ or $" + _DSN_WHY)
    return value


def _pem_certificates(value: str) -> str:
    if "-----BEGIN CERTIFICATE-----" not in value or "-----END CERTIFICATE-----" not in value:
        raise ValueError("must be one or more PEM certificates (-----BEGIN CERTIFICATE----- ... "
                         "-----END CERTIFICATE-----)")
    return value


def _jaeger_cassandra_password(value: str) -> str:
    # Never echoed. Jaeger's Cassandra config has no password file: the config names the file
    # as ${file:...}, whose content Jaeger takes whole (a line break included) and expands again.
    _secret_value(value)
    if "$" in value or "\n" in value or "\r" in value:
        raise ValueError("must not contain $ or a line break: Jaeger reads it into its configuration, "
                         "where it would be expanded or kept as part of the password")
    return value


class SecretsSettings(Model):
    """The `secrets` key: set each one with `pulumi config set --secret --path secrets.<name>`."""

    slack_webhook_url: Optional[Annotated[str, AfterValidator(_url_secret("https://hooks.slack.com/services/..."))]] = None
    pagerduty_routing_key: Optional[SecretValue] = None
    # Alertmanager expands the webhook URL it reads from url_file as a template.
    watchdog_url: Optional[Annotated[
        str, AfterValidator(_no_template), AfterValidator(_url_secret("https://hc-ping.com/<check uuid>"))
    ]] = None
    postgres_password: Optional[SecretValue] = None
    redis_password: Optional[SecretValue] = None
    remote_write_password: Optional[SecretValue] = None
    loki_s3_access_key_id: Optional[SecretValue] = None
    loki_s3_secret_access_key: Optional[SecretValue] = None
    loki_gcs_service_account: Optional[SecretValue] = None
    grafana_admin_password: Optional[SecretValue] = None
    # The token applications send to the collector (otel_collector.require_token).
    otlp_token: Optional[Annotated[str, AfterValidator(_bearer_token)]] = None
    grafana_api_token: Optional[SecretValue] = None
    # Grafana's PostgreSQL password (grafana.database), read through GF_DATABASE_PASSWORD__FILE.
    grafana_database_password: Optional[Annotated[str, AfterValidator(_grafana_database_password)]] = None
    # The CA (PEM) that signs the PostgreSQL server's certificate (Grafana's [database]
    # ca_cert_path); unset: none is given.
    grafana_database_ca_cert: Optional[Annotated[str, AfterValidator(_pem_certificates)]] = None
    # The basic-auth password of grafana.long_term_metrics.username.
    long_term_metrics_password: Optional[SecretValue] = None
    # The password of jaeger.elasticsearch.username, read through basic auth's password_file.
    jaeger_elasticsearch_password: Optional[SecretValue] = None
    # The password of jaeger.cassandra.username, read through the config's ${file:...}.
    jaeger_cassandra_password: Optional[Annotated[str, AfterValidator(_jaeger_cassandra_password)]] = None
    # The CA certificate(s), PEM, that sign Jaeger's store's certificates (Elasticsearch or
    # OpenSearch over https, Cassandra with tls); unset: the system's CAs.
    jaeger_storage_ca: Optional[CaCertificates] = None


class Settings(Model):
    platform: Literal["docker", "kubernetes"]
    environment: Name
    cluster: Name = "local"
    # Protect stateful data (volumes, StatefulSets and their claims) from deletion, and keep it
    # if the stack is destroyed: a mistaken `pulumi destroy` or rename loses nothing. On in prod.
    protect_data: TopLevelBool = False
    docker: DockerSettings = Field(default_factory=DockerSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    alertmanager: AlertmanagerSettings = Field(default_factory=AlertmanagerSettings)
    exporters: ExportersSettings = Field(default_factory=ExportersSettings)
    loki: LokiSettings = Field(default_factory=LokiSettings)
    log_shipper: LogShipperSettings = Field(default_factory=LogShipperSettings)
    otel_collector: OtelCollectorSettings = Field(default_factory=OtelCollectorSettings)
    jaeger: JaegerSettings = Field(default_factory=JaegerSettings)
    grafana: GrafanaSettings = Field(default_factory=GrafanaSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    # Service level objectives by service: burn-rate alerts, error budgets and a dashboard.
    slos: dict[Name, SloService] = Field(default_factory=dict)
    secrets: SecretsSettings = Field(default_factory=SecretsSettings, repr=False)

    def secret(self, name: str) -> pulumi.Output[str]:
        """A secret as a Pulumi secret Output, the only form in which it leaves the settings."""
        value = getattr(self.secrets, name)
        if value is None:
            raise KeyError(f"secret {name!r} is not set")
        return pulumi.Output.secret(value)

    def optional_secret(self, name: str) -> Optional[pulumi.Output[str]]:
        """The secret when the stack sets it, else None: each component says which it needs."""
        return self.secret(name) if getattr(self.secrets, name) is not None else None


def _cross_checks(s: Settings) -> list[tuple[str, str]]:
    """Rules that span several keys; each problem as (key path, message)."""
    problems: list[tuple[str, str]] = []

    def need_secret(name: str, because: str) -> None:
        if getattr(s.secrets, name) is None:
            problems.append(
                (
                    f"secrets.{name}",
                    f"required because {because}; set it with "
                    f"`pulumi config set --secret --path secrets.{name} <value>`",
                )
            )

    receivers = s.alertmanager.receivers
    if receivers.slack.enabled:
        need_secret("slack_webhook_url", "alertmanager.receivers.slack.enabled is true")
    if receivers.pagerduty.enabled:
        need_secret("pagerduty_routing_key", "alertmanager.receivers.pagerduty.enabled is true")
    if receivers.watchdog.enabled:
        need_secret("watchdog_url", "alertmanager.receivers.watchdog.enabled is true")

    pg = s.exporters.postgres
    if pg.enabled:
        for key in ("host", "user"):
            if getattr(pg, key) is None:
                problems.append(
                    (f"exporters.postgres.{key}", "required because exporters.postgres.enabled is true")
                )
        need_secret("postgres_password", "exporters.postgres.enabled is true")
    if s.exporters.redis.enabled and s.exporters.redis.address is None:
        problems.append(
            ("exporters.redis.address", "required because exporters.redis.enabled is true")
        )
    rw = s.prometheus.remote_write
    if rw is not None and rw.username is not None:
        need_secret("remote_write_password", "prometheus.remote_write.username is set")

    if s.otel_collector.require_token:
        need_secret("otlp_token", "otel_collector.require_token is true")
    scale_out = s.otel_collector.scale_out
    if scale_out.enabled and s.platform != "kubernetes":
        problems.append(("otel_collector.scale_out.enabled", "the collector's tiers run several pods each behind "
                         "Kubernetes Services, which needs the kubernetes platform; docker runs one collector"))
    if scale_out.enabled and "resources" in s.otel_collector.model_fields_set:
        problems.append(("otel_collector.resources", "sizes the one collector, which otel_collector.scale_out.enabled "
                         "replaces: set scale_out.gateway.resources and scale_out.sampler.resources instead"))

    if milliseconds(s.loki.retention) < _UNIT_MS["d"]:
        # The compactor deletes by whole index periods (24h); Loki refuses shorter retention.
        problems.append(("loki.retention", "must be at least 24h"))
    storage = s.loki.storage
    if storage.type != "filesystem" and storage.bucket is None:
        problems.append(("loki.storage.bucket", f"required because loki.storage.type is {storage.type}"))
    if storage.type == "s3":
        keys = ("loki_s3_access_key_id", "loki_s3_secret_access_key")
        given = [k for k in keys if getattr(s.secrets, k) is not None]
        # Both keys, or neither (credentials from the environment: an IAM role, IRSA).
        if len(given) == 1:
            need_secret(next(k for k in keys if k not in given), f"secrets.{given[0]} is set")

    jaeger = s.jaeger
    if jaeger.storage == "memory":
        slots = jaeger.max_traces * JAEGER_TRACE_SLOT_BYTES
        limit = quantity_bytes(jaeger.resources.limits.memory)
        if slots > limit:
            problems.append(("jaeger.max_traces", (
                f"{jaeger.max_traces} traces need {slots // 2**20} MiB before the first trace is stored "
                f"({JAEGER_TRACE_SLOT_BYTES} bytes a slot), more than jaeger.resources.limits.memory "
                f"({jaeger.resources.limits.memory})"
            )))
    problems += _jaeger_store_checks(s, need_secret)

    grafana = s.grafana
    if grafana.url is None and (grafana.mode == "external" or s.platform == "kubernetes"):
        because = "grafana.mode is external" if grafana.mode == "external" else "platform is kubernetes"
        problems.append(("grafana.url", f"required because {because}: the address where `pulumi up` reaches Grafana"))
    if grafana.mode == "external":
        need_secret("grafana_api_token", "grafana.mode is external")
    if grafana.ingress.enabled:
        if s.platform != "kubernetes":
            problems.append(("grafana.ingress.enabled", "an Ingress needs the kubernetes platform; docker publishes grafana.port"))
        elif grafana.mode != "deploy":
            problems.append(("grafana.ingress.enabled", "an Ingress is for the Grafana the stack deploys (grafana.mode is external)"))
        elif grafana.url is not None and not re.fullmatch(r"https://[^/:]+/?", grafana.url):
            problems.append(("grafana.url", "must be https://<host> because grafana.ingress.enabled is true "
                                            "(the Ingress serves TLS for that host, at its root)"))
    # The server keys (replicas, database, storage_size, ...) are not used in external mode.
    if grafana.mode == "deploy":
        # (docker refuses the replicas themselves, below)
        if grafana.replicas > 1 and grafana.database is None and s.platform == "kubernetes":
            problems.append(("grafana.replicas", "more than one replica needs grafana.database: the replicas share "
                                                 "one PostgreSQL database, where SQLite on a volume serves one pod"))
        if grafana.database is not None:
            need_secret("grafana_database_password", "grafana.database is set")
            if "storage_size" in grafana.model_fields_set:
                problems.append(("grafana.storage_size", "Grafana keeps no volume when grafana.database is set; "
                                                         "remove the key"))
    long_term = grafana.long_term_metrics
    if long_term is not None:
        if long_term.username is not None:
            need_secret("long_term_metrics_password", "grafana.long_term_metrics.username is set")
        if long_term.tenant is not None and long_term.type != "mimir":
            problems.append(("grafana.long_term_metrics.tenant", "is Mimir's X-Scope-OrgID header, and "
                             f"grafana.long_term_metrics.type is {long_term.type}; remove the key"))
    # Folders are known to Grafana, dashboards and configs/grafana/dashboards/ by their uid.
    uids: dict[str, list[str]] = {}
    for title in grafana.folders:
        uids.setdefault(folder_uid(title), []).append(title)
    for uid, titles in sorted(uids.items()):
        if not uid:
            problems.append(("grafana.folders", f"folder {titles[0]!r} needs a letter or digit in its name"))
        elif len(titles) > 1:
            names = " and ".join(repr(t) for t in titles)
            problems.append(("grafana.folders", f"folders {names} would share the uid {uid!r}"))

    published = {
        "prometheus.port": s.prometheus.port,
        "alertmanager.port": s.alertmanager.port,
        "loki.port": s.loki.port,
        "otel_collector.grpc_port": s.otel_collector.grpc_port,
        "otel_collector.http_port": s.otel_collector.http_port,
        "jaeger.port": s.jaeger.port,
    }
    if grafana.mode == "deploy":
        published["grafana.port"] = grafana.port
    seen: dict[int, str] = {}
    for key, port in published.items():
        if port in seen:
            problems.append((key, f"port {port} is already used by {seen[port]}"))
        seen.setdefault(port, key)

    jobs = [t.job for t in s.prometheus.scrape_targets]
    for job in sorted({j for j in jobs if jobs.count(j) > 1}):
        problems.append(("prometheus.scrape_targets", f"job {job!r} is listed more than once"))
    if milliseconds(s.prometheus.scrape_timeout) > milliseconds(s.prometheus.scrape_interval):
        problems.append(
            ("prometheus.scrape_timeout", "must not be longer than prometheus.scrape_interval")
        )

    sized = {
        key: getattr(s, key)
        for key in ("prometheus", "alertmanager", "loki", "log_shipper", "otel_collector", "jaeger", "grafana")
    }
    sized.update({f"exporters.{name}": getattr(s.exporters, name) for name in ExportersSettings.model_fields})
    sized.update({f"otel_collector.scale_out.{tier}": getattr(s.otel_collector.scale_out, tier)
                  for tier in ("gateway", "sampler")})
    sized.update({f"jaeger.{role}": getattr(s.jaeger, role) for role in ("collector", "query")})
    for key, section in sized.items():
        for amount in ("cpu", "memory"):
            request = getattr(section.resources.requests, amount)
            limit = getattr(section.resources.limits, amount)
            if quantity(request) > quantity(limit):
                problems.append(
                    (f"{key}.resources.requests.{amount}", f"{request} is more than the limit {limit}")
                )

    k = s.kubernetes
    if s.platform == "kubernetes":
        # Alertmanager's network policy lets it reach its receivers on alertmanager.receiver_ports
        # alone. The URL is secret: the message names neither it nor its port.
        ports = s.alertmanager.receiver_ports
        for key, on in (("slack_webhook_url", receivers.slack.enabled), ("watchdog_url", receivers.watchdog.enabled)):
            value = getattr(s.secrets, key)
            if on and value is not None and url_port(value.strip()) not in ports:
                problems.append((f"secrets.{key}", "its port is not in alertmanager.receiver_ports, the only ports "
                                 "Alertmanager may reach on kubernetes: add it there"))
        if receivers.pagerduty.enabled and 443 not in ports:
            problems.append(("alertmanager.receiver_ports", "must hold 443 because alertmanager.receivers.pagerduty.enabled "
                             "is true (PagerDuty's events API is served over https)"))
    if s.platform == "kubernetes" and k.node_agents_namespace is None and len(f"{k.namespace}-node-agents") > 63:
        problems.append(("kubernetes.node_agents_namespace", f"required because {k.namespace}-node-agents, the "
                         "default, is longer than the 63 characters of a namespace's name"))
    if s.platform == "kubernetes" and k.node_agents_namespace == k.namespace:
        problems.append(("kubernetes.node_agents_namespace", "must differ from kubernetes.namespace: the node agents "
                         "need a Pod Security level the stack's services must not have"))
    if s.platform == "kubernetes" and "resources" in s.exporters.cadvisor.model_fields_set:
        problems.append(("exporters.cadvisor.resources", "on kubernetes the kubelets serve cAdvisor's metrics "
                         "and no cAdvisor pod runs; remove the key"))
    if s.platform == "docker" and "enabled" in s.exporters.kube_state_metrics.model_fields_set \
            and s.exporters.kube_state_metrics.enabled:
        problems.append(("exporters.kube_state_metrics.enabled", "kube-state-metrics reports on a Kubernetes "
                         "cluster; the docker platform has none"))
    if s.loki.mode == "microservices":
        if s.platform != "kubernetes":
            problems.append(("loki.mode", "microservices runs each of Loki's roles as its own replicated pods, "
                             "which needs the kubernetes platform; docker runs Loki monolithic"))
        if s.loki.storage.type == "filesystem":
            problems.append(("loki.storage.type", "must be s3 or gcs because loki.mode is microservices: every "
                             "role reads and writes the one bucket, which no volume can be"))
    elif "microservices" in s.loki.model_fields_set:
        problems.append(("loki.microservices", "applies only with loki.mode: microservices"))
    if s.platform == "docker":
        # One engine, one machine: replicas would only share the host's fate and its ports.
        for key in ("prometheus", "alertmanager", "grafana"):
            if getattr(s, key).replicas > 1:
                problems.append(
                    (f"{key}.replicas", "docker runs one replica; use the kubernetes platform for HA")
                )
    # Here, not at the top: the objectives' rules read the metric catalog, which reads these settings.
    from components.alerting import slos
    problems += slos.problems(s)
    return problems


def _jaeger_store_checks(s: Settings, need_secret: Callable[[str, str], None]) -> list[tuple[str, str]]:
    """Jaeger on a store it shares: kubernetes only, the store's address, its password (through
    _cross_checks' need_secret), and no key of a shape or store the stack does not use."""
    jaeger, storage = s.jaeger, s.jaeger.storage
    given = jaeger.model_fields_set
    problems: list[tuple[str, str]] = []
    searches = storage in ("elasticsearch", "opensearch")
    used = {"elasticsearch": searches, "cassandra": storage == "cassandra"}
    for key in ("collector", "query"):
        used[key] = storage in JAEGER_DISTRIBUTED
    for key in ("resources", "storage_size"):
        used[key] = storage not in JAEGER_DISTRIBUTED
    used["trace_ttl"] = not searches
    for key in sorted(k for k, on in used.items() if k in given and not on):
        problems.append((f"jaeger.{key}", f"does not apply with jaeger.storage: {storage}{_JAEGER_UNUSED[key]}; remove the key"))
    if storage not in JAEGER_DISTRIBUTED:
        if s.secrets.jaeger_storage_ca is not None:
            problems.append(("secrets.jaeger_storage_ca", f"applies to a distributed store, not jaeger.storage: {storage}"))
        return problems
    if s.platform != "kubernetes":
        problems.append(("jaeger.storage", f"{storage} runs Jaeger as collectors and queriers of several pods each, "
                         "which needs the kubernetes platform; docker runs one Jaeger, with memory or badger"))

    if searches:
        es = jaeger.elasticsearch
        if not es.server_urls:
            problems.append(("jaeger.elasticsearch.server_urls", f"required because jaeger.storage is {storage}"))
        if es.username is not None:
            need_secret("jaeger_elasticsearch_password", "jaeger.elasticsearch.username is set")
        if s.secrets.jaeger_storage_ca is not None and es.server_urls \
                and not any(u.startswith("https://") for u in es.server_urls):
            problems.append(("secrets.jaeger_storage_ca", "applies to https:// server_urls, and every one of "
                             "jaeger.elasticsearch.server_urls is http://"))
    else:
        cassandra = jaeger.cassandra
        if not cassandra.servers:
            problems.append(("jaeger.cassandra.servers", "required because jaeger.storage is cassandra"))
        if cassandra.username is not None:
            need_secret("jaeger_cassandra_password", "jaeger.cassandra.username is set")
        if s.secrets.jaeger_storage_ca is not None and not cassandra.tls:
            problems.append(("secrets.jaeger_storage_ca", "applies with jaeger.cassandra.tls: true"))
        if milliseconds(jaeger.trace_ttl) < 1000:
            # Jaeger's Cassandra schema refuses a TTL under a second (and 0 means none).
            problems.append(("jaeger.trace_ttl", "must be at least 1s with jaeger.storage: cassandra"))
    return problems


# Why a jaeger key is refused with a storage that does not use it.
_JAEGER_UNUSED = {
    "elasticsearch": " (it describes the cluster of storage elasticsearch or opensearch)",
    "cassandra": " (it describes the cluster of storage cassandra)",
    "collector": " (Jaeger runs as one pod, not as collectors and queriers)",
    "query": " (Jaeger runs as one pod, not as collectors and queriers)",
    "resources": ": it sizes the one Jaeger pod of memory or badger; size jaeger.collector and jaeger.query",
    "storage_size": ": it sizes badger's volume, and Jaeger keeps no volume",
    "trace_ttl": ": Jaeger expires no span there; the lifecycle policy (jaeger.elasticsearch.lifecycle_policy) "
                 "deletes old indices",
}


def cluster_targets(s: Settings) -> Optional[ClusterTargets]:
    """What Prometheus scrapes of the cluster the stack runs in (kubernetes only)."""
    if s.platform != "kubernetes":
        return None
    return ClusterTargets(
        cadvisor=s.exporters.cadvisor.enabled,
        verify_kubelet_certificates=s.kubernetes.verify_kubelet_certificates,
        coredns=s.kubernetes.coredns,
    )


def url_port(url: str) -> int:
    """The TCP port an http(s) URL is reached on: its own, or its scheme's."""
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def quantity_bytes(value: str) -> int:
    """A memory quantity ("512Mi", "1.5Gi") in whole bytes, exactly (rounded up, as Kubernetes does)."""
    match = _QUANTITY.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not a memory quantity")
    exact = Decimal(match[1]) * _QUANTITY_UNITS.get(match[2] or "", 1)
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


def go_duration(duration: str) -> str:
    """The same duration in Go's time.Duration syntax, which has no days: "7d" -> "168h".

    The OpenTelemetry Collector and Jaeger read durations that way; Prometheus and Loki do not.
    """
    ms = milliseconds(duration)
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def folder_uid(title: str) -> str:
    """A Grafana folder's uid: its title in lower case, words joined by '-' ("GPU & ML" -> gpu-ml)."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


# --- messages -------------------------------------------------------------------------------------


def _format(stack: str, problems: list[tuple[str, str]]) -> str:
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    lines = [f"stack {stack!r}: invalid configuration: {count} in {stack_file_path(stack)}"]
    lines += [f"  - key '{key}': {message}" for key, message in problems]
    return "\n".join(lines)


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key_path(loc: Iterable) -> str:
    """A key path as `pulumi config set --path` writes it: a.b[0].c, and ["odd key"] quoted."""
    path = ""
    for part in loc:
        if part == "[key]":
            continue  # pydantic's marker for an error in a dict's key, named by the part before
        if isinstance(part, int):
            path += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(str(part)):
            path += f".{part}" if path else str(part)
        else:
            path += f"[{json.dumps(str(part))}]"
    return path


def _strip(annotation: Any) -> Any:
    """The type inside Optional[...] and Annotated[...]."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            inner = [a for a in get_args(annotation) if a is not type(None)]
            if len(inner) != 1:
                return annotation
            annotation = inner[0]
        else:
            return annotation


def _field_at(loc: Iterable) -> tuple[Optional[FieldInfo], bool, Optional[type]]:
    """The settings field a key path leads to, whether the path goes on into one of its items,
    and the section (model) that holds it."""
    annotation: Any = Settings
    field: Optional[FieldInfo] = None
    section: Optional[type] = None
    item = False
    for part in loc:
        if part == "[key]":
            continue
        annotation = _strip(annotation)
        if get_origin(annotation) in (list, dict):
            annotation = get_args(annotation)[-1]
            item = True
            continue
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return field, item, section
        section = annotation
        fields = annotation.model_fields
        field = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        if field is None:
            return None, False, section
        annotation, item = field.annotation, False
    return field, item, section


def _show(value: Any) -> str:
    """An example value as it is written in YAML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)


def _example(loc: Iterable) -> Optional[str]:
    """A good value for the key at `loc`: the field's example, else its default."""
    field, item, _ = _field_at(loc)
    if field is None:
        return None
    if field.examples:
        value = field.examples[0]
    elif field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if item and isinstance(value, list):
        value = value[0] if value else None
    elif item and isinstance(value, dict):
        value = next(iter(value.values()), None)
    # Sections and lists of them have no one-line example; nor has an empty default.
    if value is None or value is PydanticUndefined or value in ([], {}) or isinstance(value, BaseModel):
        return None
    if isinstance(value, list) and isinstance(value[0], BaseModel):
        return None
    return _show(value)


def _unknown_key(loc: tuple) -> str:
    """An unknown key, with the key it was probably meant to be."""
    _, _, section = _field_at(loc)
    names = sorted(f.alias or name for name, f in section.model_fields.items()) if section is not None else []
    close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    return f"unknown key; the keys here are {', '.join(names)}" if names else "unknown key"


def _with_example(loc: Iterable, message: str) -> str:
    """Each problem names a good value, unless its message already shows one."""
    if "for example" in message or "pulumi config set" in message or "did you mean" in message:
        return message
    example = _example(loc)
    return f"{message} (for example {example})" if example else message


def _loc_of(key: str) -> tuple:
    """A key path as written in a message, back into its parts."""
    return tuple(int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", key))


def misplaced_keys(stack: str, keys: Iterable[str]) -> list[tuple[str, str]]:
    """Full config keys ("namespace:key") under a namespace that looks like the project's but is
    not (`observabilty:loki`, `Observability:loki`): Pulumi keeps them, and the program would
    never read them. Keys of other namespaces (`aws:region`) are not problems.

    `stack` names whose file holds the keys; each problem is (key, message).
    """
    problems = []
    for key in keys:
        namespace, sep, rest = key.partition(":")
        if not sep or namespace == NAMESPACE:
            continue
        if namespace.lower() == NAMESPACE or difflib.get_close_matches(namespace.lower(), [NAMESPACE], cutoff=0.8):
            problems.append((key, (
                f"namespace {namespace!r} is not {NAMESPACE!r}, so {stack_file_path(stack)} sets a key the "
                f"program never reads; did you mean '{NAMESPACE}:{rest}'?"
            )))
    return problems


def placeholder_secret(name: str) -> str:
    """A stand-in value of the right shape for a secret, for renders without the stack's key."""
    if name in URL_SECRETS:
        return f"https://placeholder.invalid/{name}"
    return f"placeholder-{name}"


def parse(
    stack: str,
    values: dict[str, Any],
    secret_keys: set[str] = frozenset(),
    other_keys: Iterable[str] = (),
) -> Settings:
    """Validate raw config values (keys without the namespace) into Settings, or raise ConfigError.

    `secret_keys` are the keys Pulumi holds as secrets; the `secrets` key must be one of them.
    `other_keys` are the stack's full config keys outside the namespace, checked for look-alikes.
    """
    values = dict(values)
    values.setdefault("environment", stack)
    problems: list[tuple[str, str]] = list(misplaced_keys(stack, other_keys))
    if "secrets" in values and "secrets" not in secret_keys:
        problems.append(
            ("secrets", "must be set with `pulumi config set --secret --path secrets.<name>`")
        )
    for key in sorted(secret_keys - {"secrets"}):
        problems.append((key, "is a secret; only the `secrets` key may hold secret values"))
    try:
        settings = Settings.model_validate(values)
    except ValidationError as error:
        for e in error.errors(include_input=False, include_url=False):
            # Never echo the input: it may be a secret. Name the key and the rule only.
            loc = e["loc"]
            if e["type"] == "extra_forbidden":
                message = _unknown_key(loc)
            else:
                message = e["msg"].removeprefix("Value error, ")
                if e["type"] != "literal_error":
                    message = _with_example(loc, message)
            problems.append((_key_path(loc), message))
        raise ConfigError(_format(stack, problems)) from None
    problems += [(key, _with_example(_loc_of(key), message)) for key, message in _cross_checks(settings)]
    if problems:
        raise ConfigError(_format(stack, problems))
    return settings


def required_secrets(stack: str, values: dict[str, Any]) -> set[str]:
    """The secrets a configuration (without its `secrets` key) needs; empty if it is invalid."""
    values = {**values, "environment": values.get("environment", stack)}
    try:
        settings = Settings.model_validate(values)
    except ValidationError:
        return set()
    return {
        key.removeprefix("secrets.")
        for key, message in _cross_checks(settings)
        if key.startswith("secrets.") and message.startswith("required because")
    }


def _decode(raw: Any) -> Any:
    """Pulumi hands objects and lists over as JSON text and scalars as plain text."""
    if isinstance(raw, str) and raw[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def load() -> Settings:
    """Read and validate this stack's settings from the Pulumi config."""
    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    prefix = NAMESPACE + ":"
    values = {k[len(prefix):]: _decode(v) for k, v in raw.items() if k.startswith(prefix)}
    env_secret_keys = set(runtime_config.get_config_secret_keys_env())
    secret_keys = {
        k for k in values
        if runtime_config.is_config_secret(prefix + k) or prefix + k in env_secret_keys
    }
    others = [k for k in raw if not k.startswith(prefix)]
    return parse(pulumi.get_stack(), values, secret_keys, others)
