# Stub for the compiled module; keep in step with proxyproto_py.py, its twin.
# The compiled module re-exports the twin's result type, error and limits.

from lbproxy._fast.proxyproto_py import V1_MAX_LENGTH as V1_MAX_LENGTH
from lbproxy._fast.proxyproto_py import V2_MAX_LENGTH as V2_MAX_LENGTH
from lbproxy._fast.proxyproto_py import V2_SIGNATURE as V2_SIGNATURE
from lbproxy._fast.proxyproto_py import ProxyInfo as ProxyInfo
from lbproxy._fast.proxyproto_py import ProxyProtocolError as ProxyProtocolError

def parse(data: bytes) -> tuple[int, ProxyInfo | None]: ...
