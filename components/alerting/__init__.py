"""The rules Prometheus evaluates: the built-in alert catalog (configs/alerts/catalog.yml) and the
user's own rule files (configs/prometheus/rules/), checked and rendered per stack."""
