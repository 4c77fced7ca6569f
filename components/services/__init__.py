"""One Pulumi component per service. Each module says what its service needs as a Workload and
leaves the provider resources to the platform it is given (components/platforms/); component.py
holds what every service component shares."""
