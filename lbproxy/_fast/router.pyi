# Stub for the compiled module; keep in step with router_py.py, its twin.
from lbproxy._fast.router_py import Router as Router
from lbproxy._fast.router_py import normalise_host as normalise_host
