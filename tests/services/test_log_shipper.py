"""The log shippers: Alloy (every stack's choice) and Promtail (still selectable, past its end of
life) behave alike, point at the stack's Loki, and redact secrets before a line leaves the node."""

import json
import re

import pytest
import re2
import yaml

from components.services import log_pipeline
from conftest import (
    SECRETS,
    container_files,
    controller,
    merge,
    run_program,
    scrape_jobs,
    stack_config,
    stack_secrets,
)

PROMTAIL_CONFIG = "/etc/promtail/promtail.yml"
ALLOY_CONFIG = "/etc/alloy/config.alloy"


def with_shipper(stack, shipper):
    return run_program(stack, merge(stack_config(stack), {"log_shipper": {"type": shipper}}), stack_secrets(stack))


@pytest.fixture(scope="module")
def runs(stack_runs):
    """Both shippers on both platforms: the shipped choices and the other one."""
    return {
        ("docker", "promtail"): with_shipper("dev", "promtail"),
        ("docker", "alloy"): stack_runs["dev"],
        ("kubernetes", "alloy"): stack_runs["staging"],
        ("kubernetes", "promtail"): with_shipper("staging", "promtail"),
    }


def test_every_stack_ships_with_alloy_and_promtail_is_still_selectable(stack_runs, runs):
    for stack in ("dev", "staging", "prod"):
        assert "alloy" in stack_runs[stack].outputs["services"] and "promtail" not in stack_runs[stack].outputs["services"]
    for platform in ("docker", "kubernetes"):
        services = runs[(platform, "promtail")].outputs["services"]
        assert "promtail" in services and "alloy" not in services


def test_alloy_is_the_default_shipper():
    config = stack_config("dev")
    del config["log_shipper"]
    assert "alloy" in run_program("dev", config).outputs["services"]


def test_choosing_promtail_warns_of_its_end_of_life(caplog):
    with caplog.at_level("WARNING"):
        with_shipper("dev", "promtail")
    (warning,) = [r.getMessage() for r in caplog.records if "Promtail" in r.getMessage()]
    assert "end of life on 2026-03-02" in warning and "grafana/promtail:3.6.15" in warning
    assert "set log_shipper.type to alloy" in warning
    caplog.clear()
    with caplog.at_level("WARNING"):
        with_shipper("dev", "alloy")
    assert not [r for r in caplog.records if "Promtail" in r.getMessage()]


# --- Alloy's configuration, read back --------------------------------------------------------------

BLOCK = re.compile(r'^([a-z_]+(?:\.[a-z_]+)+) "([a-z0-9_]+)" \{$', re.M)
REFERENCE = re.compile(r"\b((?:discovery|local|loki)\.[a-z_]+)\.([a-z0-9_]+)\.(targets|output|receiver)\b")
ATTRIBUTE = re.compile(r"^\s*([a-z_]+) = (.+)$")


def braces(line):
    """Opening minus closing braces outside string literals (Alloy strings are JSON-escaped)."""
    depth, in_string, escaped = 0, False, False
    for char in line:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        else:
            depth += {"{": 1, "}": -1}.get(char, 0)
    assert not in_string, f"unterminated string: {line}"
    return depth


def alloy_blocks(text):
    """{(component, label): body} for the top-level components of an Alloy file."""
    blocks, current, depth, body = {}, None, 0, []
    for line in text.splitlines():
        match = BLOCK.match(line)
        if depth == 0 and match:
            current, body = (match.group(1), match.group(2)), []
        depth += braces(line)
        if current is not None:
            body.append(line)
            if depth == 0:
                blocks[current] = "\n".join(body)
                current = None
    assert depth == 0, "unbalanced braces"
    return blocks


def alloy_rules(text):
    """The relabel rules of discovery.relabel, as dicts of their attributes."""
    (relabel,) = [body for (name, _), body in alloy_blocks(text).items() if name == "discovery.relabel"]
    rules = []
    for chunk in relabel.split("rule {")[1:]:
        rule = {}
        for line in chunk.split("}")[0].splitlines():
            match = ATTRIBUTE.match(line)
            if match:
                rule[match.group(1)] = json.loads(match.group(2))
        rules.append(rule)
    return rules


def alloy_stage_values(text, stage, attribute):
    process = alloy_blocks(text)[("loki.process", "pipeline")]
    pattern = re.compile(rf"{re.escape(stage)} \{{\n\s*{attribute} = (.+)\n")
    return [json.loads(value) for value in pattern.findall(process)]


@pytest.mark.parametrize("platform", ["docker", "kubernetes"])
def test_every_alloy_reference_names_a_component_that_is_defined(runs, platform):
    text = container_files(runs[(platform, "alloy")], "alloy")[ALLOY_CONFIG]
    defined = set(alloy_blocks(text))
    referenced = {(component, label) for component, label, _ in REFERENCE.findall(text)}
    assert referenced, "no references found: the check would prove nothing"
    assert referenced <= defined, referenced - defined
    # And the pipeline is one chain: every component but the heads (discovery and the log
    # source that reads what it found) is fed by another.
    heads = {c for c in defined if c[0] in ("discovery.docker", "discovery.kubernetes") or c[0].startswith("loki.source.")}
    assert len(heads) == 2
    assert defined - referenced - heads == set()


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_alloy_on_kubernetes_reads_only_its_own_nodes_pods(stack_runs, stack):
    """discovery.kubernetes finds pods (role "pod") and filters them with a `selectors` block whose
    role is the role of the discovery it filters: Alloy's roles are lower case ("pod", "node",
    "service", ...) and a selector of another role filters nothing Alloy discovers here. The field
    selector keeps this node's pods; NODE_NAME comes from the pod's spec.nodeName."""
    run = stack_runs[stack]
    text = container_files(run, "alloy")[ALLOY_CONFIG]
    assert alloy_blocks(text)[("discovery.kubernetes", "pods")] == "\n".join([
        'discovery.kubernetes "pods" {',
        '  role = "pod"',
        "  selectors {",
        '    role = "pod"',
        '    field = "spec.nodeName=" + sys.env("NODE_NAME")',
        "  }",
        "}",
    ])
    env = controller(run, "alloy").inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in env


# --- Both shippers alike -----------------------------------------------------------------------------


def promtail_job(run):
    return yaml.safe_load(container_files(run, "promtail")[PROMTAIL_CONFIG])["scrape_configs"][0]


def without_promtail_host_rule(rules):
    """Promtail's own node filter (__host__); Alloy filters with a discovery selector instead."""
    return [r for r in rules if r.get("target_label") != "__host__"]


@pytest.mark.parametrize("platform", ["docker", "kubernetes"])
def test_both_shippers_relabel_alike(runs, platform):
    promtail_rules = without_promtail_host_rule(promtail_job(runs[(platform, "promtail")])["relabel_configs"])
    alloy = alloy_rules(container_files(runs[(platform, "alloy")], "alloy")[ALLOY_CONFIG])
    assert promtail_rules == alloy


@pytest.mark.parametrize("platform, labels", [
    ("docker", {"container", "service_name"}),
    ("kubernetes", {"namespace", "pod", "container", "node", "service_name", "__path__"}),
])
def test_the_labels_that_come_out(runs, platform, labels):
    rules = promtail_job(runs[(platform, "promtail")])["relabel_configs"]
    targets = {r["target_label"] for r in rules if r["action"] == "replace"} - {"__host__"}
    assert targets == labels


@pytest.mark.parametrize("platform", ["docker", "kubernetes"])
def test_both_shippers_parse_json_promote_level_and_keep_trace_id(runs, platform):
    stages = promtail_job(runs[(platform, "promtail")])["pipeline_stages"]
    names = [next(iter(stage)) for stage in stages]
    # Redaction first: nothing is parsed out of a line before its secrets are gone.
    first_parse = names.index("json")
    assert set(names[:first_parse]) <= {"cri", "replace"} and "replace" in names[:first_parse]
    assert (platform == "kubernetes") == (names[0] == "cri")
    assert stages[first_parse]["json"]["expressions"] == {"level": "level", "trace_id": "trace_id"}
    assert {"labels": {"level": None}} in stages
    assert {"structured_metadata": {"trace_id": None}} in stages
    assert {"template": {"source": "level", "template": "{{ ToLower .Value }}"}} in stages

    alloy = container_files(runs[(platform, "alloy")], "alloy")[ALLOY_CONFIG]
    assert 'expressions = {level = "level", trace_id = "trace_id"}' in alloy
    assert "stage.labels {\n    values = {level = \"\"}" in alloy
    assert "stage.structured_metadata {\n    values = {trace_id = \"\"}" in alloy
    assert alloy.index("stage.replace") < alloy.index("stage.json")


@pytest.mark.parametrize("platform", ["docker", "kubernetes"])
def test_both_shippers_apply_the_same_redactions_in_the_same_order(runs, platform):
    promtail = [s["replace"]["expression"] for s in promtail_job(runs[(platform, "promtail")])["pipeline_stages"] if "replace" in s]
    alloy = alloy_stage_values(container_files(runs[(platform, "alloy")], "alloy")[ALLOY_CONFIG], "stage.replace", "expression")
    shipped = [r["expression"] for r in yaml.safe_load(log_pipeline.REDACTION_FILE.read_text())]
    assert promtail == alloy == shipped


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_shipper_pushes_to_the_stacks_loki_with_its_labels(stack_runs, runs, stack):
    url = {"dev": "http://loki:3100/loki/api/v1/push", "staging": "http://loki-0.loki:3100/loki/api/v1/push",
           # Loki's distributors take prod's pushes (loki.mode: microservices).
           "prod": "http://loki-distributor:3100/loki/api/v1/push"}[stack]
    cluster = {"dev": "laptop", "staging": "staging-eu1", "prod": "prod-eu1"}[stack]
    write = alloy_blocks(container_files(stack_runs[stack], "alloy")[ALLOY_CONFIG])[("loki.write", "default")]
    assert f'url = "{url}"' in write
    assert f'external_labels = {{environment = "{stack}", cluster = "{cluster}"}}' in write
    if stack in ("dev", "staging"):
        promtail = runs[("docker" if stack == "dev" else "kubernetes", "promtail")]
        client = yaml.safe_load(container_files(promtail, "promtail")[PROMTAIL_CONFIG])["clients"][0]
        assert client == {"url": url, "external_labels": {"environment": stack, "cluster": cluster}}


# --- Redaction, on sample lines, with RE2 (the engine both shippers use) --------------------------


def redact(line, expressions):
    """Promtail's and Alloy's replace stage: the text of every capture group becomes [REDACTED]."""
    for expression in expressions:
        pattern = re2.compile(expression)
        pieces, last = [], 0
        for match in pattern.finditer(line):
            for group in range(1, pattern.groups + 1):
                start, end = match.span(group)
                if start >= 0:
                    pieces += [line[last:start], log_pipeline.REDACTED]
                    last = end
        line = "".join(pieces) + line[last:]
    return line


@pytest.fixture(scope="module")
def expressions(runs):
    return [s["replace"]["expression"] for s in promtail_job(runs[("kubernetes", "promtail")])["pipeline_stages"] if "replace" in s]


SECRET_LINES = [
    ('{"level":"INFO","msg":"login","user":"ada","password":"hunter2","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}',
     ["hunter2"], ['"user":"ada"', '"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"', '"password":"[REDACTED]"']),
    ("GET /api/v1/items Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl status=200",
     ["eyJhbGciOiJIUzI1NiJ9", "c2lnbmF0dXJl"], ["GET /api/v1/items", "status=200"]),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", ["dXNlcjpwYXNzd29yZA=="], ["Authorization: Basic [REDACTED]"]),
    ("connecting to postgres://app:s3cr3tP4ss@db.internal:5432/app", ["s3cr3tP4ss"], ["postgres://app:[REDACTED]@db.internal:5432/app"]),
    ('{"api_key": "sk-live-abcdef123456", "tokens_used": 1234, "prompt_tokens": 50}',
     ["sk-live-abcdef123456"], ['"tokens_used": 1234', '"prompt_tokens": 50']),
    ("POST /oauth/token client_secret=abc123XYZ&grant_type=client_credentials", ["abc123XYZ"], ["grant_type=client_credentials"]),
    ("refresh ok access_token=tok_9f8e7d6c expires_in=3600", ["tok_9f8e7d6c"], ["expires_in=3600"]),
    ('{"headers": {"x-api-key": "k-123-456"}}', ["k-123-456"], ['"x-api-key": "[REDACTED]"']),
    ("uploading with AKIAIOSFODNN7EXAMPLE to s3://bucket", ["AKIAIOSFODNN7EXAMPLE"], ["s3://bucket"]),
    (f"DB_PASSWORD={SECRETS['postgres_password']} starting", [SECRETS["postgres_password"]], ["starting"]),
    ("[default] aws_secret_access_key = wJalrXUtnFEMI/K7MDENG region=eu-west-1", ["wJalrXUtnFEMI"], ["region=eu-west-1"]),
    ('{"secret_access_key": "s3-key-123", "bucket": "logs"}', ["s3-key-123"], ['"bucket": "logs"']),
]


@pytest.mark.parametrize("line, secrets, kept", SECRET_LINES, ids=[line[:40] for line, _, _ in SECRET_LINES])
def test_secrets_are_redacted_and_the_rest_of_the_line_kept(expressions, line, secrets, kept):
    redacted = redact(line, expressions)
    for secret in secrets:
        assert secret not in redacted, redacted
    for fragment in kept:
        assert fragment in redacted, redacted


CLEAN_LINES = [
    '{"level":"error","msg":"upstream timeout after 30s","trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331"}',
    '{"level":"info","msg":"completion","model":"gpt-4o","prompt_tokens":812,"completion_tokens":95,"cost_usd":0.0123}',
    "GET /health 200 1.2ms",
    "basic auth is enabled for the admin API; bearer tokens expire after 1h",
    '{"token_type": "bearer", "expires_in": 3600}',
]


@pytest.mark.parametrize("line", CLEAN_LINES, ids=[line[:40] for line in CLEAN_LINES])
def test_lines_without_secrets_pass_untouched(expressions, line):
    assert redact(line, expressions) == line


def test_a_redacted_json_line_is_still_json_with_its_level_and_trace_id(expressions):
    line, _, _ = SECRET_LINES[0]
    parsed = json.loads(redact(line, expressions))
    assert parsed["level"] == "INFO" and parsed["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert parsed["password"] == "[REDACTED]"


def test_every_redaction_is_valid_re2_with_a_capture_group(expressions):
    assert len(expressions) >= 4
    for expression in expressions:
        assert re2.compile(expression).groups >= 1, expression


# --- How each platform runs the shipper ------------------------------------------------------------


@pytest.mark.parametrize("shipper, port", [("alloy", 12345), ("promtail", 9080)])
def test_kubernetes_runs_one_shipper_per_node_reading_pod_logs(runs, shipper, port):
    run = runs[("kubernetes", shipper)]
    daemonset = controller(run, shipper)
    assert daemonset.type == "kubernetes:apps/v1:DaemonSet"
    pod = daemonset.inputs["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    logs = mounts["/var/log/pods"]
    assert logs["readOnly"] is True and volumes[logs["name"]]["hostPath"]["path"] == "/var/log/pods"
    # Read positions survive a restart: they live on the node.
    positions = volumes[mounts[f"/var/lib/{shipper}"]["name"]]["hostPath"]
    assert positions == {"path": f"/var/lib/observability-{shipper}", "type": "DirectoryOrCreate"}
    assert pod["serviceAccountName"] == shipper
    job = scrape_jobs(run)[shipper]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["observability-node-agents"]}}]
    assert {"source_labels": ["__meta_kubernetes_pod_container_port_number"], "regex": str(port), "action": "keep"} in job["relabel_configs"]


def test_promtail_on_kubernetes_knows_its_node(runs):
    run = runs[("kubernetes", "promtail")]
    env = controller(run, "promtail").inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "HOSTNAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in env
    rules = promtail_job(run)["relabel_configs"]
    assert rules[0]["source_labels"] == ["__meta_kubernetes_pod_node_name"] and rules[0]["target_label"] == "__host__"
    path = [r for r in rules if r.get("target_label") == "__path__"]
    assert path == [{
        "source_labels": ["__meta_kubernetes_pod_uid", "__meta_kubernetes_pod_container_name"],
        "regex": "(.+)", "action": "replace", "target_label": "__path__",
        "replacement": "/var/log/pods/*$1/*.log", "separator": "/",
    }]


@pytest.mark.parametrize("shipper", ["alloy", "promtail"])
def test_docker_reads_container_logs_through_the_engine(runs, shipper):
    run = runs[("docker", shipper)]
    container = run.one("docker:index/container:Container", shipper).inputs
    socket = {"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock", "readOnly": True}
    assert socket in container["volumes"]
    assert {"volumeName": f"observability-{shipper}-data", "containerPath": f"/var/lib/{shipper}"} in container["volumes"]
    assert not container.get("ports")
    assert scrape_jobs(run)[shipper]["static_configs"][0]["targets"] == [f"{shipper}:{12345 if shipper == 'alloy' else 9080}"]


def test_both_shippers_look_for_new_containers_every_five_seconds(runs):
    """A container that lives a few seconds (a job, the verify command's marked line) is found
    before it is gone: both look every 5s (Alloy's default is 1m)."""
    docker = alloy_blocks(container_files(runs[("docker", "alloy")], "alloy")[ALLOY_CONFIG])[("discovery.docker", "containers")]
    assert 'refresh_interval = "5s"' in docker
    (sd,) = promtail_job(runs[("docker", "promtail")])["docker_sd_configs"]
    assert sd["refresh_interval"] == "5s"
