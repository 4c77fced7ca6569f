"""The CrossGuard policies the stack's resources must meet, as plain policy objects.

Nothing here starts a server: components/tools/policy/__main__.py wraps POLICIES in a PolicyPack (which
serves them to the engine and blocks), and the tests call `policy.validate(args, report)` directly.

Every policy reads the resource's inputs as the engine hands them over: mappings and sequences
(the SDK wraps them in proxies that raise UnknownValueError for values unknown during preview,
which the SDK turns into an advisory note). Violation messages name the resource and the problem,
and never repeat a value that looks like a secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Iterator, Optional

import re2
from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from components.services.log_pipeline import redactions
from components.platforms import PUBLIC_PORTS_LABEL
from components.workload import SECRETS_DIR

REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
DOCKER_CONTAINER = "docker:index/container:Container"
DOCKER_VOLUME = "docker:index/volume:Volume"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
# Deployments, StatefulSets and DaemonSets, whatever API version registers them.
_WORKLOAD_TYPE = re.compile(r"^kubernetes:(?:apps|extensions)/[^:]+:(Deployment|StatefulSet|DaemonSet)$")

PROD_STACK = "prod"
# metadata.name of a StatefulSet -> the fewest replicas a prod stack may run.
PROD_MIN_REPLICAS = {"prometheus": 2, "alertmanager": 3}

# The log shippers' redaction patterns (configs/logs/redaction.yml): what they strip from log
# lines is what must not sit in plain sight in the first place. RE2, as the shippers run them.
_REDACTIONS = [(r.name, re2.compile(r.expression)) for r in redactions()]
# A match whose secret part only points elsewhere is no secret: a file under SECRETS_DIR (how
# this program hands secrets over), or an expansion from the environment or a file.
_REFERENCE = re.compile(r"^(?:\$\{|\$__(?:env|file)\{|" + re.escape(SECRETS_DIR) + "/)")
# Parts of an environment variable's name that say its value is a secret (PASS only as a word,
# as in DATA_SOURCE_PASS; not PWD, which names the working directory in every shell).
_SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL"
    r"|(?:^|_)PASS(?:_|$)"
)
# Docker publishes a port on every interface when no address is given.
_ALL_INTERFACES = {None, "", "0.0.0.0", "::", "[::]"}
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


# Reading inputs --------------------------------------------------------------------------------


def _get(value: Any, *path: str) -> Any:
    """value[path[0]][path[1]]..., or None where a step is missing or not a mapping."""
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _items(value: Any) -> Sequence:
    """A list input, or nothing when it is unset (a string is not a list here)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return value
    return ()


def _entries(value: Any) -> Iterator[tuple[str, Any]]:
    """A map input's (key, value) pairs, or nothing when it is unset."""
    if isinstance(value, Mapping):
        yield from ((str(k), value[k]) for k in value)


def stack_of(urn: str) -> str:
    """The stack a URN belongs to: urn:pulumi:<stack>::<project>::<type>::<name>."""
    return urn.split("::", 1)[0].split(":", 2)[-1]


def workload_kind(resource_type: str) -> Optional[str]:
    """Deployment, StatefulSet or DaemonSet for a kubernetes workload type, else None."""
    match = _WORKLOAD_TYPE.match(resource_type)
    return match.group(1) if match else None


def _containers(props: Mapping) -> Iterator[tuple[str, Mapping]]:
    """("container 'x'" or "init container 'x'", container) for every container of a pod template."""
    pod = _get(props, "spec", "template", "spec")
    for field, what in (("initContainers", "init container"), ("containers", "container")):
        for i, container in enumerate(_items(_get(pod, field))):
            name = _get(container, "name") or f"#{i}"
            yield f"{what} {name!r}", container


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _show(value: Any) -> str:
    """A number as the engine sends it (3000.0) written as people do (3000)."""
    number = _number(value)
    return f"{number:g}" if number is not None else str(value)


# What the policies check -----------------------------------------------------------------------


def image_problem(image: Any) -> Optional[str]:
    """Why an image reference is not pinned, or None when it has a fixed tag or a digest."""
    if not isinstance(image, str) or not image.strip():
        return "has no image"
    if "@" in image:
        if _DIGEST.match(image.split("@", 1)[1]):
            return None
        return f"image {image!r} has a malformed digest (expected @sha256:<64 hex digits>)"
    last = image.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else ""
    if not tag:
        return f"image {image!r} has no tag, so it pulls whatever latest is"
    if tag == "latest":
        return f"image {image!r} uses the moving tag latest"
    return None


def secret_pattern(text: Any) -> Optional[str]:
    """The name of the first redaction pattern that finds a secret in `text`, else None."""
    if not isinstance(text, str):
        return None
    for name, pattern in _REDACTIONS:
        for match in pattern.finditer(text):
            captured = next((g for g in match.groups() if g), match.group(0))
            if not _REFERENCE.match(captured):
                return name
    return None


def secret_env_problem(name: str, value: Any) -> Optional[str]:
    """Why a plain environment variable leaks a secret, or None. Never quotes the value."""
    if not isinstance(value, str) or not value:
        return None
    upper = name.upper()
    if not upper.endswith("_FILE") and _SECRET_NAME.search(upper):
        return (
            f"environment variable {name} has a secret-looking name and a literal value; "
            f"mount the secret as a file under {SECRETS_DIR} and point {name}_FILE at it"
        )
    pattern = secret_pattern(value)
    if pattern:
        return f"environment variable {name} holds what looks like a secret ({pattern})"
    return None


def _labelled(where: str, pairs: Iterator[tuple[str, Any]]) -> Iterator[str]:
    for key, value in pairs:
        pattern = secret_pattern(f"{key}={value}")
        if pattern:
            yield f"{where} {key!r} holds what looks like a secret ({pattern})"


def _kubernetes_secret_problems(args: ResourceValidationArgs) -> Iterator[str]:
    props = args.props
    metadatas = [("", _get(props, "metadata"))]
    if workload_kind(args.resource_type):
        metadatas.append(("pod template ", _get(props, "spec", "template", "metadata")))
    for prefix, metadata in metadatas:
        yield from _labelled(f"{prefix}label", _entries(_get(metadata, "labels")))
        yield from _labelled(f"{prefix}annotation", _entries(_get(metadata, "annotations")))
    if args.resource_type == CONFIG_MAP:
        for key, value in _entries(_get(props, "data")):
            pattern = secret_pattern(value)
            if pattern:
                yield f"data key {key!r} holds what looks like a secret ({pattern}); use a Secret"
    for container_name, container in _containers(props):
        for variable in _items(_get(container, "env")):
            problem = secret_env_problem(str(_get(variable, "name")), _get(variable, "value"))
            if problem:
                yield f"{container_name}: {problem}"


def _docker_secret_problems(props: Mapping) -> Iterator[str]:
    labels = ((_get(label, "label"), _get(label, "value")) for label in _items(_get(props, "labels")))
    yield from _labelled("label", ((str(k), v) for k, v in labels))
    for entry in _items(_get(props, "envs")):
        if isinstance(entry, str) and "=" in entry:
            name, value = entry.split("=", 1)
            problem = secret_env_problem(name, value)
            if problem:
                yield problem


# Validations -----------------------------------------------------------------------------------


def _describe(args: ResourceValidationArgs) -> str:
    kind = args.resource_type.rsplit(":", 1)[-1]
    return f"{kind} {args.name!r}"


def _validate_images(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type == REMOTE_IMAGE:
        problem = image_problem(_get(args.props, "name"))
        if problem:
            report_violation(f"{_describe(args)}: {problem}", None)
        return
    if not workload_kind(args.resource_type):
        return
    for container_name, container in _containers(args.props):
        problem = image_problem(_get(container, "image"))
        if problem:
            report_violation(f"{_describe(args)}: {container_name} {problem}", None)


def _validate_resources(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not workload_kind(args.resource_type):
        return
    for container_name, container in _containers(args.props):
        missing = [
            f"resources.{section}.{resource}"
            for section in ("requests", "limits")
            for resource in ("cpu", "memory")
            if _get(container, "resources", section, resource) in (None, "")
        ]
        if missing:
            report_violation(f"{_describe(args)}: {container_name} has no {', '.join(missing)}", None)


def _validate_secrets(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type.startswith("kubernetes:"):
        problems = _kubernetes_secret_problems(args)
    elif args.resource_type == DOCKER_CONTAINER:
        problems = _docker_secret_problems(args.props)
    else:
        return
    for problem in problems:
        report_violation(f"{_describe(args)}: {problem}", None)


def _validate_prod_replicas(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if workload_kind(args.resource_type) != "StatefulSet" or stack_of(args.urn) != PROD_STACK:
        return
    name = _get(args.props, "metadata", "name")
    minimum = PROD_MIN_REPLICAS.get(name) if isinstance(name, str) else None
    if minimum is None:
        return
    replicas = _get(args.props, "spec", "replicas")
    # Kubernetes runs one replica when spec.replicas is unset.
    count = 1.0 if replicas is None else _number(replicas)
    if count is None or count < minimum:
        report_violation(
            f"{_describe(args)}: {name} runs {_show(replicas if replicas is not None else 1)} "
            f"replica(s); a prod stack needs at least {minimum}",
            None,
        )


def _validate_prod_protection(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    holds_data = args.resource_type == DOCKER_VOLUME or workload_kind(args.resource_type) == "StatefulSet"
    if not holds_data or stack_of(args.urn) != PROD_STACK:
        return
    if not getattr(args.opts, "protect", False):
        report_violation(
            f"{_describe(args)} holds data but is not protected; a prod stack sets protect_data: true "
            "so data_options() gives it protect (and retain_on_delete)",
            None,
        )


def _validate_public_ports(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != DOCKER_CONTAINER:
        return
    labels = {_get(label, "label") for label in _items(_get(args.props, "labels"))}
    if PUBLIC_PORTS_LABEL in labels:
        return
    for port in _items(_get(args.props, "ports")):
        ip = _get(port, "ip")
        if ip in _ALL_INTERFACES:
            internal, external = _get(port, "internal"), _get(port, "external")
            published = f"{_show(external)}->{_show(internal)}" if external is not None else _show(internal)
            report_violation(
                f"{_describe(args)}: port {published} is published on every interface "
                f"(ip {ip or 'unset'}) without the label {PUBLIC_PORTS_LABEL}; bind it to "
                "127.0.0.1 or open it through the stack's docker.bind_address",
                None,
            )


# The policies ----------------------------------------------------------------------------------

images_pinned = ResourceValidationPolicy(
    name="images-pinned",
    description=(
        "Every image is pinned: docker RemoteImage names and every container and init container "
        "image of kubernetes Deployments, StatefulSets and DaemonSets carry an explicit tag other "
        "than latest, or a sha256 digest."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_images,
)

kubernetes_requests_and_limits = ResourceValidationPolicy(
    name="kubernetes-requests-and-limits",
    description=(
        "Every container and init container of kubernetes Deployments, StatefulSets and DaemonSets "
        "sets resources.requests and resources.limits, each with cpu and memory."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_resources,
)

no_secrets_in_plain_places = ResourceValidationPolicy(
    name="no-secrets-in-plain-places",
    description=(
        "No secret sits in plain sight: ConfigMap data, labels and annotations of kubernetes "
        "objects (and their pod templates), docker container labels, and literal environment "
        "variables must not match the log redaction patterns (configs/logs/redaction.yml), and "
        "no environment variable with a secret-looking name (PASSWORD, SECRET, TOKEN, API_KEY, "
        "ACCESS_KEY, PRIVATE_KEY, CREDENTIAL...) has a literal value. Names ending in _FILE point "
        f"at files and are fine: secrets reach containers only as files under {SECRETS_DIR}."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_secrets,
)

prod_high_availability = ResourceValidationPolicy(
    name="prod-high-availability",
    description=(
        "In the prod stack (read from the URN) the StatefulSet named prometheus runs at least 2 "
        "replicas and the one named alertmanager at least 3 (an unset replicas counts as 1)."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_prod_replicas,
)

prod_data_protected = ResourceValidationPolicy(
    name="prod-data-protected",
    description=(
        "In the prod stack (read from the URN) kubernetes StatefulSets and docker volumes are "
        "protected (protect=True). Only protect is checked: pulumi-policy does not show policies "
        "a resource's retain_on_delete option."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_prod_protection,
)

no_public_ports_without_setting = ResourceValidationPolicy(
    name="no-public-ports-without-setting",
    description=(
        "A docker container publishes a port on every interface (ip 0.0.0.0, ::, or no ip) only "
        f"when it carries the label {PUBLIC_PORTS_LABEL}, which the program sets when the stack "
        "opens docker.bind_address on purpose."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_public_ports,
)

POLICIES = [
    images_pinned,
    kubernetes_requests_and_limits,
    no_secrets_in_plain_places,
    prod_high_availability,
    prod_data_protected,
    no_public_ports_without_setting,
]
