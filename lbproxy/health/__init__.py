"""Active health checks of backends (see ``lbproxy.health.checker``)."""

from lbproxy.health.checker import MAX_BODY, MAX_HEAD, HealthChecker, ProbeResult, Target, probe

__all__ = ["MAX_BODY", "MAX_HEAD", "HealthChecker", "ProbeResult", "Target", "probe"]
