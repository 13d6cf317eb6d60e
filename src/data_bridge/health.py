"""Readiness checks for the probes of ``--health``.

With ``--health`` the server answers ``GET /health`` (liveness: 200 while the process
serves) and ``GET /ready`` (readiness) itself, before the router. ``/ready`` answers 503
while the worker drains (SIGTERM, a roll, a recycle) and while any check registered here
returns false or raises; 200 otherwise. A check is a quick synchronous callable taking no
argument; it runs on the event loop when a probe arrives::

    from data_bridge.health import readiness_check

    @readiness_check
    def database() -> bool:
        return pool.connected

Checks are kept per process (each worker registers its own when it imports the
application, or in a startup handler).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

logger = logging.getLogger("data_bridge")

HEALTH_PATH = "/health"
READY_PATH = "/ready"

_checks: list[Callable[[], object]] = []
Check = TypeVar("Check", bound=Callable[[], object])


def readiness_check(func: Check) -> Check:
    """Registers ``func``: the process is not ready while it returns false or raises."""
    _checks.append(func)
    return func


def remove_readiness_check(func: Callable[[], object]) -> None:
    _checks.remove(func)


def ready() -> bool:
    """True when every registered check passes (what ``/ready`` answers)."""
    for check in list(_checks):
        try:
            if not check():
                return False
        except Exception:
            logger.exception("readiness check %r failed", getattr(check, "__name__", check))
            return False
    return True
