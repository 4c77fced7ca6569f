"""components/yaml_text.py: the fast loader reads every shipped YAML file as yaml.safe_load does,
and is as safe."""

import pytest
import yaml

from components import yaml_text
from conftest import ROOT

SHIPPED = sorted(
    p for folder in ("configs", "stacks") for p in (ROOT / folder).rglob("*") if p.suffix in (".yml", ".yaml")
)


def test_the_fast_loader_is_in_use():
    # The wheels pinned in requirements.txt carry libyaml; without it every parse is slower.
    assert yaml.__with_libyaml__
    assert yaml_text.LOADER is yaml.CSafeLoader


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_file_loads_as_safe_load_reads_it(path):
    text = path.read_text()
    assert yaml_text.load(text) == yaml.safe_load(text)


def test_python_tags_are_refused():
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml_text.load("!!python/object/apply:os.system ['true']")


def test_dump_round_trips_with_sorted_keys_and_long_lines_whole():
    document = {"b": ["x" * 300], "a": {"d": 1, "c": "multi\nline"}}
    text = yaml_text.dump(document)
    assert text.index("a:") < text.index("b:")
    assert "x" * 300 in text
    assert yaml_text.load(text) == document
    assert yaml_text.dump({"b": 1, "a": 2}, sort_keys=False).startswith("b:")
