"""The mutation testing set-up (tests/mutation): its scope, its score, and how it links tests to code."""

from __future__ import annotations

import ast
import configparser
import fnmatch
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import importlib.util

import pytest
import yaml

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("mutation_run", ROOT / "tests" / "mutation" / "run.py")
mutation = importlib.util.module_from_spec(_spec)
sys.modules["mutation_run"] = mutation  # dataclasses look their module up there
_spec.loader.exec_module(mutation)

CONFIG = ROOT / "tests" / "mutation" / "mutmut.cfg"


def mutmut_setting(key: str) -> list[str]:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    return [line for line in parser.get("mutmut", key).split("\n") if line]


def test_mutmut_mutates_exactly_the_modules_the_score_is_kept_for():
    only_mutate = mutmut_setting("only_mutate")
    scoped = [pattern for patterns in mutation.SCOPE.values() for pattern in patterns]
    modules = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "components").rglob("*.py"))
    mutated = {m for m in modules if any(fnmatch.fnmatch(m, p) for p in only_mutate)}
    scored = {m for m in modules if mutation.group_of(m)}
    assert mutated == scored
    for pattern in scoped:
        assert any(fnmatch.fnmatch(m, pattern) for m in modules), f"{pattern} matches no module"
    # The modules that decide what a stack deploys are all in scope.
    for module in ("settings/__init__", "stack", "services/prometheus", "services/loki", "services/grafana",
                   "grafana/content", "grafana/dashboards", "alerting/alert_rules"):
        assert f"components/{module}.py" in scored
    assert "components/platforms/kubernetes.py" in scored


def write_meta(tree: Path, module: str, codes: dict[str, int | None]) -> None:
    meta = tree / "mutants" / f"{module}.meta"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes}))


def test_the_score_counts_kills_and_timeouts_over_every_mutant_run(tmp_path: Path):
    codes = {f"components.services.loki.x_f__mutmut_{i}": 1 for i in range(1, 17)}  # 16 failing tests
    codes["components.services.loki.x_f__mutmut_17"] = 36  # a timeout: the mutant hangs, a kill
    codes["components.services.loki.x_f__mutmut_18"] = 0  # survived
    codes["components.services.loki.x_f__mutmut_19"] = 33  # no test reaches it
    write_meta(tmp_path, "components/services/loki.py", codes)
    write_meta(tmp_path, "components/tools/render.py", {"components.tools.render.x_g__mutmut_1": 0})  # out of scope

    tallies = mutation.tally(tmp_path)
    services = tallies["services"]
    assert (services.killed, services.timeouts, services.survived, services.untested, services.total) == (
        17, 1, ["components.services.loki.x_f__mutmut_18"], ["components.services.loki.x_f__mutmut_19"], 19,
    )
    assert services.score == pytest.approx(17 / 19)
    assert all(t.total == 0 for g, t in tallies.items() if g != "services")

    table, ok = mutation.report(tallies, {}, ["services"])
    assert not ok, "two mutants are neither killed nor explained"
    assert "| services | 19 | 17 (1) | 1 (0) | 1 | 89.5% | 0 |" in table
    assert "components.services.loki.x_f__mutmut_18" in table and "components.services.loki.x_f__mutmut_19" in table

    explained = {"components.services.loki.x_f__mutmut_18": "why", "components.services.loki.x_f__mutmut_19": "why"}
    table, ok = mutation.report(tallies, explained, ["services"])
    assert ok
    assert "| services | 19 | 17 (1) | 1 (1) | 1 | 89.5% | 0 |" in table
    assert "| grafana | 0 | | | | | all |" in table
    # Judged as a whole, the groups that have not run fail the target.
    assert not mutation.report(tallies, explained)[1]


def test_a_group_with_mutants_not_run_yet_is_not_done(tmp_path: Path):
    codes = {f"components.alerting.alert_rules.x_f__mutmut_{i}": 1 for i in range(1, 10)}
    codes["components.alerting.alert_rules.x_f__mutmut_10"] = None  # made, not run yet
    write_meta(tmp_path, "components/alerting/alert_rules.py", codes)
    tallies = mutation.tally(tmp_path)
    assert (tallies["alerts"].total, tallies["alerts"].pending, tallies["alerts"].score) == (9, 1, 1.0)
    table, ok = mutation.report(tallies, {}, ["alerts"])
    assert "| alerts | 9 | 9 (0) | 0 (0) | 0 | 100.0% | 1 |" in table
    assert not ok


def test_a_group_under_the_target_fails_even_when_every_survivor_is_explained(tmp_path: Path):
    codes = {f"components.services.prometheus.x_f__mutmut_{i}": 1 for i in range(1, 9)}
    codes |= {"components.services.prometheus.x_f__mutmut_9": 0, "components.services.prometheus.x_f__mutmut_10": 0}
    write_meta(tmp_path, "components/services/prometheus.py", codes)
    table, ok = mutation.report(mutation.tally(tmp_path), {name: "why" for name in codes}, ["services"])
    assert "80.0%" in table
    assert not ok, "8 of 10 is under 85%"


def test_a_sample_draws_the_same_mutants_of_each_group_for_the_same_seed(tmp_path: Path):
    loki = {f"components.services.loki.x_f__mutmut_{i}": None for i in range(1, 101)}
    rules = {f"components.alerting.alert_rules.x_g__mutmut_{i}": None for i in range(1, 6)}
    write_meta(tmp_path, "components/services/loki.py", loki)
    write_meta(tmp_path, "components/alerting/alert_rules.py", rules)

    drawn = mutation.sample(tmp_path, 10)
    assert len(drawn["services"]) == 10 and set(drawn["services"]) <= set(loki)
    assert drawn["alerts"] == sorted(rules), "a group smaller than the sample is taken whole"
    assert drawn["grafana"] == []
    assert mutation.sample(tmp_path, 10) == drawn
    assert mutation.sample(tmp_path, 10, seed="another")["services"] != drawn["services"]

    # New mutants (the code changed) may take places in the sample, but never bring in old ones
    # that were not drawn: what has run keeps counting.
    write_meta(tmp_path, "components/services/prometheus.py", {f"components.services.prometheus.x_h__mutmut_{i}": None for i in range(1, 51)})
    redrawn = mutation.sample(tmp_path, 10)["services"]
    assert {name for name in redrawn if name in loki} <= set(drawn["services"])
    assert any(name not in loki for name in redrawn), "50 new mutants among 150: some are drawn"

    # Results of mutants outside the sample do not count.
    write_meta(tmp_path, "components/services/loki.py", {name: 0 for name in loki})
    services = mutation.tally(tmp_path, drawn)["services"]
    assert (services.total, sorted(services.survived)) == (10, drawn["services"])


def test_a_sampled_score_is_shown_with_its_wilson_interval(tmp_path: Path):
    # Reference values of the 95% Wilson score interval: n/(n + 1.96^2) when every mutant is
    # killed, and (0.490, 0.943) for 8 of 10.
    assert mutation.interval(40, 40) == (pytest.approx(40 / (40 + 1.96**2)), 1.0)
    low, high = mutation.interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)

    codes = {f"components.grafana.dashboards.x_f__mutmut_{i}": 1 for i in range(1, 41)}
    write_meta(tmp_path, "components/grafana/dashboards.py", codes)
    table, ok = mutation.report(mutation.tally(tmp_path), {}, ["grafana"], sampled=True)
    assert "| score (95% interval) |" in table
    assert "| grafana | 40 | 40 (0) | 0 (0) | 0 | 100.0% (91% to 100%) | 0 |" in table
    assert ok


def test_the_pinned_mutmut_makes_mutants_before_a_sample_is_drawn(tmp_path: Path):
    (tmp_path / "components" / "services").mkdir(parents=True)
    (tmp_path / "components" / "services" / "loki.py").write_text("def replicas(n):\n    return n + 1\n")
    (tmp_path / "setup.cfg").write_text("[mutmut]\nsource_paths=components/\n")
    mutation.make_mutants(tmp_path, 1)
    names = mutation.results(tmp_path)["services"]
    assert names and all(name.startswith("components.services.loki.x_replicas__mutmut_") for name in names)
    assert set(names.values()) == {None}, "made, not run"

    # A run stopped while mutmut wrote the module left it empty: it is made again.
    made = tmp_path / "mutants" / "components" / "services" / "loki.py"
    made.write_text("")
    mutation.make_mutants(tmp_path, 1)
    assert "x_replicas__mutmut_1" in made.read_text()


def test_every_recorded_equivalent_names_a_mutant_of_a_scoped_module_and_says_why():
    entries = yaml.safe_load((ROOT / "tests" / "mutation" / "equivalent.yaml").read_text()) or []
    names = [entry["mutant"] for entry in entries]
    assert len(names) == len(set(names)), "a mutant is listed twice"
    for entry in entries:
        assert set(entry) == {"mutant", "change", "reason"}, entry
        match = re.fullmatch(r"(components(?:\.\w+)+)\.x.+__mutmut_\d+", entry["mutant"])
        assert match, entry["mutant"]
        module = match.group(1).split(".x")[0]
        assert any(mutation.group_of(p) for p in (module.replace(".", "/") + ".py", module.replace(".", "/") + "/__init__.py"))
        assert len(entry["reason"].split()) >= 5, f"{entry['mutant']}: say why no test can kill it"


def test_shared_fixtures_credit_their_calls_to_every_test_that_uses_them(tmp_path: Path):
    """mutmut files a function under the test during which it ran; a session fixture runs during
    the first test only. With the plugin, the second and third tests are credited as well."""
    (tmp_path / "conftest.py").write_text(textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        import pytest
        from mutmut.state import state
        from tests.mutation.fixture_credit import FixtureCredit

        credited = {{}}

        class Filer:  # files calls as mutmut's stats collector does, after the plugin
            def pytest_runtest_teardown(self, item, nextitem):
                credited[item.name] = sorted(state()._stats)
                state()._stats.clear()

            def pytest_sessionfinish(self, session):
                (session.config.rootpath / "credited.json").write_text(json.dumps(credited))

        def pytest_configure(config):
            config.pluginmanager.register(FixtureCredit(), "credit")
            config.pluginmanager.register(Filer(), "filer")

        @pytest.fixture(scope="session")
        def rendered():
            state()._stats.add("components.tools.render.x_render")
            return 1

        @pytest.fixture(scope="module", params=["dev", "prod"])
        def stack(request):
            state()._stats.add("components.stack.x_" + request.param)
            return request.param
    """))
    (tmp_path / "test_inner.py").write_text(textwrap.dedent("""
        from mutmut.state import state

        def test_first(rendered):
            state()._stats.add("components.own.x_first")

        def test_second(rendered):
            pass

        def test_without_fixture():
            pass

        def test_per_stack(stack):
            pass
    """))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    credited = json.loads((tmp_path / "credited.json").read_text())
    assert credited == {
        "test_first": ["components.own.x_first", "components.tools.render.x_render"],
        "test_second": ["components.tools.render.x_render"],
        "test_without_fixture": [],
        "test_per_stack[dev]": ["components.stack.x_dev"],
        "test_per_stack[prod]": ["components.stack.x_prod"],
    }


def test_the_documented_command_runs_the_driver_after_the_test_set_up():
    script = (ROOT / ".ci" / "mutation").read_text()
    assert "bash .ci/setup" in script
    assert script.rstrip().endswith('exec venv/bin/python tests/mutation/run.py "$@"')
    assert "bash .ci/setup" in (ROOT / ".ci" / "test").read_text()
    assert "bash .ci/mutation" in (ROOT / "docs" / "mutation.md").read_text()


def test_the_scheduled_workflow_runs_every_group():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "mutation.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["schedule"] and "workflow_dispatch" in triggers
    job = workflow["jobs"]["mutation"]
    assert job["strategy"]["matrix"]["group"] == list(mutation.SCOPE)
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert 'bash .ci/mutation --group "$GROUP" --output "out/mutation-$GROUP.md"' in runs


def test_a_mutants_own_tests_run_first_then_the_oracles_then_the_rest():
    from tests.mutation.killers_first import OWN_TESTS, mutated_module, order

    assert mutated_module("components.platforms.kubernetes.x_workload__mutmut_3") == "platforms.kubernetes"
    assert mutated_module("components.alerting.user_rules.xǁUserRuleFileǁproblems__mutmut_4") == "alerting.user_rules"
    files = ["test_alert_rules.py", "test_dashboards.py", "test_oracles_configs.py", "test_prometheus.py"]
    rank = order(files, "alerting.alert_rules")
    assert sorted(files, key=lambda f: rank[f]) == [
        "test_alert_rules.py", "test_prometheus.py", "test_oracles_configs.py", "test_dashboards.py"]
    # Every module in scope names its own tests, and they exist.
    for pattern in (p for patterns in mutation.SCOPE.values() for p in patterns):
        for path in (ROOT).glob(pattern):
            if len(ast.parse(path.read_text()).body) <= 1:
                continue  # a package's docstring: nothing to mutate
            module = str(path.relative_to(ROOT / "components")).removesuffix(".py").replace("/", ".")
            module = module.removesuffix(".__init__")
            assert module in OWN_TESTS, module
            for name in OWN_TESTS[module]:
                assert len(list((ROOT / "tests").rglob(name))) == 1, name
