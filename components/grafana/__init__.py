"""What lives inside a Grafana, managed through its API: folders, datasources, dashboards and the
alert rules Prometheus cannot evaluate. The Grafana server itself is a service
(components/services/grafana.py)."""
