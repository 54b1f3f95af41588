"""Several worker processes under one supervisor (``workers: N``).

See supervisor.py for how they share sockets, health, admin changes and
metrics, and how a reload replaces them without losing a request.
"""

from lbproxy.workers.supervisor import Supervisor, WorkerStartError, worker_count

__all__ = ["Supervisor", "WorkerStartError", "worker_count"]
