"""The policy pack's entry point: serves POLICIES to the Pulumi engine, and blocks while it does.

Never import this module (tests import components.tools.policy.policies instead). From the repository
root, with the program's virtualenv active:

    pulumi preview --stack prod --policy-pack components/tools/policy
"""

import sys
from pathlib import Path

# The policies read the program's own modules (components.services.log_pipeline, components.platforms) and
# the redaction patterns in configs/logs/: make the repository root importable, however the engine
# starts this file.
ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from components.tools.policy.policies import POLICIES  # noqa: E402

PolicyPack(
    name="observability-policies",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)
