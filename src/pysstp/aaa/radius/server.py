"""One RADIUS server as pysstp sees it: where it is, its shared secret, and how long to wait for it.

Secrets come from files (never from the command line, where ``ps`` shows them), RFC 2865 §3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pysstp.errors import ConfigError

AUTHENTICATION_PORT = 1812
"""RFC 2865 §3."""
ACCOUNTING_PORT = 1813
"""RFC 2866 §3."""


@dataclass(frozen=True, slots=True)
class RadiusServer:
    """A RADIUS server and the failover rules for it (RFC 5080 §2.2).

    Lower ``priority`` is tried first. Each request is sent, then resent unchanged ``retries`` times,
    ``timeout`` seconds apart; a server that never answered is skipped for ``dead_time`` seconds (it is
    still tried when every server is dead).
    """

    address: str
    secret: bytes = field(repr=False)
    port: int = AUTHENTICATION_PORT
    accounting_port: int = ACCOUNTING_PORT
    priority: int = 0
    timeout: float = 3.0
    retries: int = 2
    dead_time: float = 30.0

    @property
    def name(self) -> str:
        """``address:port`` for log lines and status."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def read_secret(path: Path) -> bytes:
    """The shared secret in ``path``: its first line, without the line end.

    Raises :class:`ConfigError` with one line that says what to do when the file is missing or empty.
    """
    try:
        text = path.read_bytes()
    except OSError as error:
        raise ConfigError(
            f"cannot read the RADIUS secret file {path}: {error.strerror}; "
            "put the shared secret on its first line"
        ) from None
    secret = text.splitlines()[0].strip() if text.strip() else b""
    if not secret:
        raise ConfigError(f"the RADIUS secret file {path} is empty; put the shared secret on its first line")
    return secret
