"""Pytest plugin for mutmut's stats run: credit what a shared fixture runs to every test using it.

mutmut learns which tests reach which function by noting the functions each test calls, from the
test's setup to its teardown. A session or module fixture (the three shipped stacks, a rendered
config) runs once, inside the first test that asks for it, so mutmut would try a mutant of the
rendering code against that one test alone and call it survived. This plugin records the
functions each shared fixture runs and hands them to every test that uses the fixture, before
mutmut files the test's calls. conftest.py registers it only during that stats run.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
from mutmut.state import state


def _param_key(fixturedef, request) -> tuple:
    return (fixturedef.argname, repr(getattr(request, "param", None)))


class FixtureCredit:
    def __init__(self) -> None:
        self.calls_by_fixture: dict[tuple, set[str]] = defaultdict(set)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        if fixturedef.scope == "function":
            yield
            return
        # Collect this fixture's own calls apart from the test's, then give both back.
        before = set(state()._stats)
        state()._stats.clear()
        try:
            yield
        finally:
            self.calls_by_fixture[_param_key(fixturedef, request)] |= state()._stats
            state()._stats |= before

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item, nextitem):
        params = getattr(getattr(item, "callspec", None), "params", {})
        for name in item.fixturenames:
            key = (name, repr(params.get(name)))
            state()._stats |= self.calls_by_fixture.get(key, set())
