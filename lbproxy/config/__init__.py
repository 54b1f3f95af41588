"""Configuration: the frozen model and the YAML loader that validates into it.

``load_config``/``parse_config`` are the only way from YAML to a ``Config``;
everything else in lbproxy reads the model (``lbproxy.config.model``).
"""

from lbproxy.config.addresses import AddressError, parse_address
from lbproxy.config.errors import ConfigError
from lbproxy.config.loader import load_config, parse_config
from lbproxy.config.model import (
    AccessLog,
    Address,
    Admin,
    Backend,
    CircuitBreaker,
    Config,
    HashKey,
    HealthCheck,
    Keepalive,
    Listener,
    ListenerLimits,
    ListenerTimeouts,
    OutlierDetection,
    Pool,
    PoolLimits,
    PoolTimeouts,
    Retries,
    Route,
    RouteMatch,
)
from lbproxy.config.units import UnitError, parse_duration, parse_size

__all__ = [
    "AccessLog",
    "Address",
    "AddressError",
    "Admin",
    "Backend",
    "CircuitBreaker",
    "Config",
    "ConfigError",
    "HashKey",
    "HealthCheck",
    "Keepalive",
    "Listener",
    "ListenerLimits",
    "ListenerTimeouts",
    "OutlierDetection",
    "Pool",
    "PoolLimits",
    "PoolTimeouts",
    "Retries",
    "Route",
    "RouteMatch",
    "UnitError",
    "load_config",
    "parse_address",
    "parse_config",
    "parse_duration",
    "parse_size",
]
