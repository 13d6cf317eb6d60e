"""TLS settings: uvicorn's ``--ssl-*`` options turned into a native ``_core.TLSContext``.

The handshake, the records and every byte of the connections are handled in C
(``csrc/tls/`` through memory BIOs, ``csrc/server/tls.c`` on the loop); this module only
checks the options, names what went wrong, and reloads the certificate on SIGHUP (a new
context for new connections; open ones keep theirs).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
from dataclasses import dataclass
from typing import Any

from data_bridge import _core

logger = logging.getLogger("data_bridge")

# Wire values of the versions (RFC 8446 §4.2.1), as _core.TLSContext takes them.
TLS_1_2 = 0x0303
TLS_1_3 = 0x0304

# uvicorn's --ssl-version takes the stdlib's ssl.PROTOCOL_* numbers (its default is
# PROTOCOL_TLS_SERVER): each as the (lowest, highest) version served; 0 is "the highest".
_VERSIONS: dict[int, tuple[int, int]] = {
    int(ssl.PROTOCOL_TLS_SERVER): (TLS_1_2, 0),
    2: (TLS_1_2, 0),  # PROTOCOL_TLS (deprecated alias of PROTOCOL_SSLv23)
    5: (TLS_1_2, TLS_1_2),  # PROTOCOL_TLSv1_2
}
_REFUSED_VERSIONS = {
    3: "PROTOCOL_TLSv1 (TLS 1.0 is not served: the minimum is TLS 1.2)",
    4: "PROTOCOL_TLSv1_1 (TLS 1.1 is not served: the minimum is TLS 1.2)",
    int(ssl.PROTOCOL_TLS_CLIENT): "PROTOCOL_TLS_CLIENT (a client protocol)",
}
SSL_PROTOCOL_VERSION = int(ssl.PROTOCOL_TLS_SERVER)


@dataclass(frozen=True)
class TLSOptions:
    """uvicorn's TLS options under its names (``Config`` carries them)."""

    keyfile: str | os.PathLike[str] | None = None
    certfile: str | os.PathLike[str] | None = None
    keyfile_password: str | None = None
    version: int = SSL_PROTOCOL_VERSION
    cert_reqs: int = int(ssl.CERT_NONE)
    ca_certs: str | os.PathLike[str] | None = None
    ciphers: str | None = None

    @property
    def enabled(self) -> bool:
        """As uvicorn's Config.is_ssl: a key file or a certificate file turns TLS on."""
        return bool(self.keyfile or self.certfile)

    def context(self) -> Any:
        """A new ``_core.TLSContext`` from the files as they are now; ValueError saying what
        is wrong (a missing or unreadable file, a key that does not match, a bad option)."""
        if not self.certfile:
            raise ValueError("ssl_certfile is required for TLS (ssl_keyfile alone is not enough)")
        if self.version in _REFUSED_VERSIONS:
            raise ValueError(f"ssl_version {self.version}: {_REFUSED_VERSIONS[self.version]}")
        if self.version not in _VERSIONS:
            raise ValueError(
                f"ssl_version {self.version} is not a server protocol of the ssl module "
                f"(use {SSL_PROTOCOL_VERSION}, ssl.PROTOCOL_TLS_SERVER)"
            )
        if self.cert_reqs not in (ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED):
            raise ValueError(
                f"ssl_cert_reqs must be 0 (CERT_NONE), 1 (CERT_OPTIONAL) or 2 (CERT_REQUIRED), "
                f"got {self.cert_reqs}"
            )
        low, high = _VERSIONS[self.version]
        try:
            return _core.TLSContext(
                os.fspath(self.certfile),
                os.fspath(self.keyfile) if self.keyfile else None,
                self.keyfile_password,
                os.fspath(self.ca_certs) if self.ca_certs else None,
                int(self.cert_reqs),
                self.ciphers,
                low,
                high,
            )
        except OSError as exc:
            raise ValueError(f"TLS: {exc}") from None


def reload_on_sighup(loop: asyncio.AbstractEventLoop, server: Any, options: TLSOptions) -> None:
    """On SIGHUP, the certificate files are read again and connections accepted from then on
    use them; open connections keep the context they began with. A reload that fails
    (a file being replaced, a mismatched key) is logged and the server keeps its
    current certificate."""

    def reload() -> None:
        try:
            context = options.context()
        except ValueError as exc:
            logger.error("SIGHUP: certificate not reloaded: %s", exc)
            return
        server.set_tls(context)
        logger.info("SIGHUP: certificate reloaded from %s", os.fspath(options.certfile or ""))

    try:
        loop.add_signal_handler(signal.SIGHUP, reload)
    except (RuntimeError, ValueError) as exc:  # not the main thread
        logger.debug("certificate reload on SIGHUP is off: %s", exc)
