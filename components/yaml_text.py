"""YAML in and out for every file the program reads or renders.

Reading uses PyYAML's C bindings (libyaml, in its wheels) where present: they parse several times
faster than its pure Python loader, and parsing the stack file, the alert catalog and the shipped
configs was a good part of an evaluation. Both loaders build the same data from the same text.

Writing stays with the pure Python dumper. libyaml's emitter breaks long quoted strings at other
points, so switching would change the bytes of rendered files (and so the config hash of every
pod that mounts one) for no change of meaning; the gain, about 10 ms an evaluation, is not worth
a restart of every service on upgrade.
"""

from __future__ import annotations

import yaml

# libyaml's safe loader, or PyYAML's own where the C bindings are missing; the program's checks
# of rendered files (components/settings) read with it too.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str):
    """A YAML document as plain data, with only the safe tags, as yaml.safe_load."""
    return yaml.load(text, Loader=LOADER)


def load_first(text: str):
    """The first document of a YAML stream (None for an empty one), as load reads a document."""
    return next(iter(yaml.load_all(text, Loader=LOADER)), None)


def dump(document, sort_keys: bool = True) -> str:
    """YAML as every rendered file is written: block style, long lines kept whole, and by default
    sorted keys, so the same input gives the same bytes."""
    return yaml.safe_dump(document, sort_keys=sort_keys, default_flow_style=False, width=1000)
