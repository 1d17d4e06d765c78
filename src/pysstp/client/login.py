"""Who the client is to the server: the user name, the password and the certificate, as read from the
files, the environment and the terminal by ``pysstp connect`` (the settings only name where they are)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pysstp.ppp.auth.eap_tls import EapTlsPeerSettings
from pysstp.ppp.auth.peap import PeapPeerSettings
from pysstp.ppp.auth.tls_tunnel import TlsIdentity


@dataclass(frozen=True)
class ClientCertificate:
    """The user's certificate and key (``--cert``, ``--key``), read and checked (the key decrypted): it
    logs in with EAP-TLS and is the TLS client certificate when the server asks for one."""

    cert: Path
    key: Path
    passphrase: bytes | None = field(repr=False)
    identity: TlsIdentity = field(repr=False)


@dataclass(frozen=True)
class Login:
    """The credentials of every call of one ``pysstp connect``."""

    user: str
    password: str = field(default="", repr=False)
    """Empty for a certificate login (``--auth eap-tls`` alone)."""
    certificate: ClientCertificate | None = None
    eap_tls: EapTlsPeerSettings | None = None
    """EAP-TLS with ``certificate``, when a certificate is given."""
    peap: PeapPeerSettings | None = None
    """The CAs and name PEAP checks the server's certificate with, with ``--auth peap``."""
