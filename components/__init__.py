"""The observability stack as Pulumi components, laid out by what each part is.

    stack.py      ObservabilityStack: one stack's settings mapped onto the components below
    workload.py   what a service needs (ports, files, volumes, health), said once for every platform
    services/     one ComponentResource per service: it describes a Workload, a platform builds it
    platforms/    Docker and Kubernetes: the only code that makes container resources
    grafana/      what lives inside Grafana: folders, datasources, dashboards, rules
    alerting/     the alert catalog and the user's rule files, rendered for Prometheus
    settings/     the stack file's model, its grammar and the checks on what was rendered
    tools/        render, verify, benchmark, image checks and the policy pack; never deployed
    images.py     every container image, pinned in one place
    yaml_text.py  YAML in and out
"""

from pathlib import Path

# The repository: configs/ and stacks/ are read from here, wherever the program runs from.
ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
