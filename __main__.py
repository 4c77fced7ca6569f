"""Entry point: validate the stack's settings, then build the stack and export its endpoints."""

import pulumi

from components import settings as stack_settings
from components.stack import ObservabilityStack

# Raises ConfigError naming every bad key before a single resource is registered.
settings = stack_settings.load()
stack = ObservabilityStack("observability", settings)

pulumi.export("platform", settings.platform)
pulumi.export("environment", settings.environment)
pulumi.export("endpoints", stack.endpoints)
pulumi.export("services", sorted(w.name for w in stack.workloads))
if stack.grafana_admin_password is not None:
    # A Pulumi secret: `pulumi stack output grafana_admin_password --show-secrets` reveals it.
    pulumi.export("grafana_admin_password", stack.grafana_admin_password)
