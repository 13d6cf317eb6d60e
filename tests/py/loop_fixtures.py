"""Fixtures shared by the loop tests: every test runs once on stdlib asyncio's loop and once
on PyLoop, with the same body and the same expectations (differential testing)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Iterator

import pytest

from data_bridge import pyloop

__all__ = ["is_pyloop", "loop", "loop_factory", "tls_files"]

LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.SelectorEventLoop,
    "pyloop": pyloop.new_event_loop,
}


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def loop_factory(request: pytest.FixtureRequest) -> Callable[[], asyncio.AbstractEventLoop]:
    return LOOP_FACTORIES[request.param]


@pytest.fixture
def loop(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> Iterator[asyncio.AbstractEventLoop]:
    lp = loop_factory()
    try:
        yield lp
    finally:
        if not lp.is_closed() and not lp.is_running():
            lp.run_until_complete(lp.shutdown_asyncgens())
            lp.close()
        asyncio.set_event_loop(None)


def is_pyloop(loop: asyncio.AbstractEventLoop) -> bool:
    return isinstance(loop, pyloop.Loop)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key (paths)."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    try:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl unavailable: {exc}")
    return str(cert), str(key)
