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
from components.workload import HOST_ACCESS_BECAUSE, ROOT_BECAUSE, SECRETS_DIR

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


def pod_privilege_problems(props: Mapping) -> list[str]:
    """What a workload's pod template holds without saying why, or must never hold."""
    problems = []
    template = _get(props, "spec", "template")
    pod = _get(template, "spec")
    annotations = dict(_entries(_get(template, "metadata", "annotations")))
    security = _get(pod, "securityContext")
    containers = list(_containers(props))
    root = _get(security, "runAsNonRoot") is not True or not _number(_get(security, "runAsUser"))
    added = [str(c) for _, container in containers
             for c in _items(_get(container, "securityContext", "capabilities", "add"))]
    if (root or added) and not str(annotations.get(ROOT_BECAUSE) or "").strip():
        held = " and ".join(part for part in ("runs as root" if root else "", f"adds {', '.join(added)}" if added else "") if part)
        problems.append(f"{held} without the annotation {ROOT_BECAUSE} saying why")
    host = [flag for flag in ("hostNetwork", "hostPID", "hostIPC") if _get(pod, flag) is True]
    host += [f"hostPath {_get(v, 'hostPath', 'path')}" for v in _items(_get(pod, "volumes")) if _get(v, "hostPath") is not None]
    if host and not str(annotations.get(HOST_ACCESS_BECAUSE) or "").strip():
        problems.append(f"uses {', '.join(host)} without the annotation {HOST_ACCESS_BECAUSE} saying why")
    pod_seccomp = _get(security, "seccompProfile", "type")
    for name, container in containers:
        context = _get(container, "securityContext")
        if _get(context, "privileged") is True:
            problems.append(f"{name} is privileged")
        if _get(context, "allowPrivilegeEscalation") is not False:
            problems.append(f"{name} does not set allowPrivilegeEscalation: false")
        if _get(context, "readOnlyRootFilesystem") is not True:
            problems.append(f"{name} does not set readOnlyRootFilesystem: true")
        if "ALL" not in [str(c) for c in _items(_get(context, "capabilities", "drop"))]:
            problems.append(f"{name} does not drop ALL capabilities")
        if (_get(context, "seccompProfile", "type") or pod_seccomp) not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name} has no RuntimeDefault (or Localhost) seccomp profile")
    for toleration in _items(_get(pod, "tolerations")):
        if _get(toleration, "key") in (None, "") and _get(toleration, "effect") in (None, "") \
                and _get(toleration, "operator") == "Exists":
            problems.append("tolerates every taint (operator Exists with no key and no effect)")
    return problems


def _validate_pod_privileges(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not workload_kind(args.resource_type):
        return
    for problem in pod_privilege_problems(args.props):
        report_violation(f"{_describe(args)}: {problem}", None)


# Grafana's settings for a server reached over https: its session cookie is marked Secure and
# browsers are told (HSTS) to come back over https only.
GRAFANA_HTTPS_SETTINGS = {"GF_SECURITY_COOKIE_SECURE": "true", "GF_SECURITY_STRICT_TRANSPORT_SECURITY": "true"}


def _environment(args: ResourceValidationArgs) -> Iterator[tuple[str, dict[str, str]]]:
    """(container, its literal environment) of a docker container or a workload's containers."""
    if args.resource_type == DOCKER_CONTAINER:
        envs = [str(e).split("=", 1) for e in _items(_get(args.props, "envs"))]
        yield "container", {e[0]: e[1] for e in envs if len(e) == 2}
    elif workload_kind(args.resource_type):
        for name, container in _containers(args.props):
            yield name, {str(_get(e, "name")): str(_get(e, "value")) for e in _items(_get(container, "env"))
                         if _get(e, "value") is not None}


def _validate_grafana_https(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    for name, env in _environment(args):
        if not env.get("GF_SERVER_ROOT_URL", "").startswith("https://"):
            continue
        missing = [f"{key}={value}" for key, value in GRAFANA_HTTPS_SETTINGS.items() if env.get(key) != value]
        if missing:
            report_violation(f"{_describe(args)}: {name} serves Grafana over https without {', '.join(missing)}", None)


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

kubernetes_pods_least_privilege = ResourceValidationPolicy(
    name="kubernetes-pods-least-privilege",
    description=(
        "Every container of kubernetes Deployments, StatefulSets and DaemonSets is unprivileged, "
        "cannot escalate, has a read-only root filesystem, drops ALL capabilities and runs under a "
        "RuntimeDefault (or Localhost) seccomp profile. A pod that runs as root or adds a capability "
        f"says why in the annotation {ROOT_BECAUSE}; one that uses the node's network, PID or IPC "
        f"namespace or a hostPath volume in {HOST_ACCESS_BECAUSE}. No pod tolerates every taint."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_pod_privileges,
)

grafana_https_cookies_and_hsts = ResourceValidationPolicy(
    name="grafana-https-cookies-and-hsts",
    description=(
        "A Grafana container (docker or kubernetes) whose GF_SERVER_ROOT_URL is https:// sets "
        "GF_SECURITY_COOKIE_SECURE=true and GF_SECURITY_STRICT_TRANSPORT_SECURITY=true: its session "
        "cookie travels over https only and browsers are told to use nothing else."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_grafana_https,
)

POLICIES = [
    images_pinned,
    kubernetes_requests_and_limits,
    no_secrets_in_plain_places,
    prod_high_availability,
    prod_data_protected,
    no_public_ports_without_setting,
    kubernetes_pods_least_privilege,
    grafana_https_cookies_and_hsts,
]
