"""pytest plugin: per-test outcomes of a run as JSON lines, for `scripts/fastapi_tests.py`.

Loaded with `-p db_fastapi_outcomes` (this folder on PYTHONPATH). Each event is one JSON
object on its own line, written and flushed as it happens, so that the runner still knows
what ran when the process dies (a crash, or pytest-timeout's thread method ending a hung
test with os._exit) and can resume the run after the test that killed it.

Environment:
  DB_FASTAPI_OUTCOMES       the file the events are appended to (required)
  DB_FASTAPI_SKIP           a file of nodeids (deselected) and test-file paths (not
                            collected) that already have an outcome
  DB_FASTAPI_ONLY           a file of nodeids: every other test is deselected
  DB_FASTAPI_COLLECT_TIMEOUT seconds one test module may take to import before the
                            process dumps its stacks and exits (0: no limit)

Events: collectstart {nodeid}, collect_error {nodeid, error}, collected {nodeids},
start {nodeid}, report {nodeid, when, outcome, xfail, duration, error}, finish {exitstatus}.
"""

from __future__ import annotations

import faulthandler
import json
import os
import re
import sys
from pathlib import Path
from typing import IO, Any

import pytest

_out: IO[str] | None = None
_skip: set[str] = set()
_only: set[str] | None = None
_collect_timeout = 0.0
_rootpath: Path | None = None

_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Warning|Interrupt|Failed)\b")


def _emit(event: str, **fields: Any) -> None:
    if _out is None:
        return
    _out.write(json.dumps({"event": event, **fields}) + "\n")
    _out.flush()


def _read_set(path: str) -> set[str]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def first_error(longrepr: object) -> str:
    """One line saying what went wrong: `ExceptionType: message`."""
    crash = getattr(longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    if isinstance(message, str) and message.strip():
        return message.strip().splitlines()[0][:300]
    text = str(longrepr)
    e_lines = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    for line in reversed(e_lines):
        if _ERROR_LINE.match(line):
            return line[:300]
    if e_lines:
        return e_lines[-1][:300]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "unknown error"


def pytest_configure(config: pytest.Config) -> None:
    global _out, _only, _collect_timeout, _rootpath
    # FastAPI's tests mark some tests for pytest-xdist's scheduler; without xdist installed
    # the marker must be known, or --strict-markers fails their modules.
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist scheduling group")
    path = os.environ.get("DB_FASTAPI_OUTCOMES")
    if not path:
        return
    _out = open(path, "a", encoding="utf-8")
    skip = os.environ.get("DB_FASTAPI_SKIP")
    if skip:
        _skip.update(_read_set(skip))
    only = os.environ.get("DB_FASTAPI_ONLY")
    if only:
        _only = _read_set(only)
    _collect_timeout = float(os.environ.get("DB_FASTAPI_COLLECT_TIMEOUT") or 0)
    _rootpath = config.rootpath


def pytest_unconfigure(config: pytest.Config) -> None:
    global _out
    if _out is not None:
        _out.close()
        _out = None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if _rootpath is None or not _skip:
        return None
    try:
        rel = collection_path.relative_to(_rootpath).as_posix()
    except ValueError:
        return None
    return True if rel in _skip else None


def pytest_collectstart(collector: pytest.Collector) -> None:
    if isinstance(collector, pytest.Module):
        _emit("collectstart", nodeid=collector.nodeid)
        if _collect_timeout > 0:
            faulthandler.dump_traceback_later(_collect_timeout, exit=True, file=sys.stderr)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if _collect_timeout > 0:
        faulthandler.cancel_dump_traceback_later()
    if report.failed:
        _emit("collect_error", nodeid=report.nodeid, error=first_error(report.longrepr))


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        wanted = item.nodeid not in _skip and (_only is None or item.nodeid in _only)
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_collection_finish(session: pytest.Session) -> None:
    _emit("collected", nodeids=[item.nodeid for item in session.items])


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _emit("start", nodeid=nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    xfail = hasattr(report, "wasxfail")
    _emit(
        "report",
        nodeid=report.nodeid,
        when=report.when,
        outcome=report.outcome,
        xfail=xfail,
        duration=round(report.duration, 4),
        error=first_error(report.longrepr) if report.failed else None,
    )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _emit("finish", exitstatus=int(session.exitstatus))
