"""What FastAPI's private ``fastapi._compat`` offers that applications and tests read:
the installed pydantic's version."""

from __future__ import annotations

__all__ = ["PYDANTIC_V2", "PYDANTIC_VERSION", "PYDANTIC_VERSION_MINOR_TUPLE"]

try:
    from pydantic.version import VERSION as PYDANTIC_VERSION
except ImportError:  # pydantic is optional for apps without models
    PYDANTIC_VERSION = "0.0.0"

PYDANTIC_VERSION_MINOR_TUPLE: tuple[int, int] = tuple(  # type: ignore[assignment]
    int(part) for part in PYDANTIC_VERSION.split(".")[:2]
)
PYDANTIC_V2 = PYDANTIC_VERSION_MINOR_TUPLE[0] == 2
