"""pytest plugin: `fastapi` (and some of `starlette`) resolved to `data_bridge.api`.

Loaded with `-p db_fastapi_shim` (this folder on PYTHONPATH) by
`scripts/fastapi_tests.py`, so that FastAPI's own tutorial tests run against data-bridge
unchanged. A finder placed first on `sys.meta_path` answers every import of `fastapi`,
`fastapi.*`, `starlette` and `starlette.*`, so the real packages in site-packages are never
reached:

- `fastapi` is `data_bridge.api`, and `fastapi.X.Y` is `data_bridge.api.X.Y`: the module
  objects are the same (`fastapi.responses is data_bridge.api.responses`);
- `starlette.X` is the `data_bridge.api` module listed in `STARLETTE_MODULES`, and
  `starlette` itself an empty package holding them;
- a module with no counterpart raises ModuleNotFoundError naming the fastapi (or
  starlette) module, so the test that needs it fails and says what is missing.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence

import pytest

TARGET = "data_bridge.api"

# starlette module -> data_bridge.api module (parents of these are mapped the same way).
STARLETTE_MODULES = {
    "starlette.background": "data_bridge.api.background",
    "starlette.concurrency": "data_bridge.api.concurrency",
    "starlette.datastructures": "data_bridge.api.datastructures",
    "starlette.exceptions": "data_bridge.api.exceptions",
    "starlette.middleware.cors": "data_bridge.api.middleware.cors",
    "starlette.requests": "data_bridge.api.requests",
    "starlette.responses": "data_bridge.api.responses",
    "starlette.staticfiles": "data_bridge.api.staticfiles",
    "starlette.status": "data_bridge.api.status",
    "starlette.templating": "data_bridge.api.templating",
    "starlette.testclient": "data_bridge.api.testclient",
    "starlette.websockets": "data_bridge.api.websockets",
}
STARLETTE_PARENTS = {"starlette.middleware": "data_bridge.api.middleware"}

SHIMMED = ("fastapi", "starlette")


def _shimmed(fullname: str) -> bool:
    return any(fullname == top or fullname.startswith(top + ".") for top in SHIMMED)


def target_of(fullname: str) -> str | None:
    """The data_bridge.api module that stands for `fullname`, or None if there is none."""
    if fullname == "fastapi" or fullname.startswith("fastapi."):
        return TARGET + fullname[len("fastapi") :]
    return STARLETTE_MODULES.get(fullname) or STARLETTE_PARENTS.get(fullname)


class _AliasLoader(importlib.abc.Loader):
    """Hands the import system a module that is already imported, unchanged."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module
        self.spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        # The import system set module.__spec__ to the alias's spec: give the real one back.
        module.__spec__ = self.spec


class _StubLoader(importlib.abc.Loader):
    """An empty package (`starlette`) whose submodules the finder resolves."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        module.__doc__ = "Stand-in for starlette: only modules data_bridge.api has resolve."


class FastAPIShimFinder(importlib.abc.MetaPathFinder):
    """Maps fastapi/starlette imports onto data_bridge.api; everything else passes by."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not _shimmed(fullname):
            return None
        if fullname == "starlette":
            return importlib.machinery.ModuleSpec(fullname, _StubLoader(), is_package=True)
        real = target_of(fullname)
        if real is None:
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (data_bridge.api has no counterpart)",
                name=fullname,
            )
        try:
            module = importlib.import_module(real)
        except ModuleNotFoundError as exc:
            # Only a missing data_bridge.api module is reported under the fastapi name; a
            # dependency missing inside an existing module is reported as it is.
            if exc.name is not None and (real == exc.name or real.startswith(exc.name + ".")):
                raise ModuleNotFoundError(
                    f"No module named {fullname!r} (data_bridge.api has no {real!r})",
                    name=fullname,
                ) from None
            raise
        return importlib.machinery.ModuleSpec(
            fullname,
            _AliasLoader(module),
            is_package=hasattr(module, "__path__"),
        )


_FINDER = FastAPIShimFinder()


def install() -> None:
    """Put the finder first on sys.meta_path; refuse if fastapi/starlette are loaded."""
    if _FINDER in sys.meta_path:
        if sys.meta_path[0] is not _FINDER:
            sys.meta_path.remove(_FINDER)
            sys.meta_path.insert(0, _FINDER)
        return
    loaded = sorted(name for name in sys.modules if _shimmed(name))
    if loaded:
        raise pytest.UsageError(
            "db_fastapi_shim: these modules were imported before the shim was installed: "
            + ", ".join(loaded)
        )
    sys.meta_path.insert(0, _FINDER)


def real_modules_loaded() -> list[str]:
    """Modules of the real fastapi/starlette packages that got imported despite the shim."""
    found = []
    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", None)
        if isinstance(name, str) and _shimmed(name) and name != "starlette":
            found.append(name)
    return sorted(found)


def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    # `-p` plugins are imported before conftests and entry-point plugins; installing here
    # (and at import, below) keeps every later import on the shim.
    install()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaked = real_modules_loaded()
    if leaked:
        sys.stderr.write(
            "db_fastapi_shim: the real fastapi/starlette were imported: " + ", ".join(leaked) + "\n"
        )
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR


install()
