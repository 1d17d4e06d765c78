"""Real asyncio TLS server and clients on 127.0.0.1, with a TUN stand-in: no root needed."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pysstp.aaa.backend import AuthBackend
from pysstp.aaa.local import CredentialStore, LocalBackend, StaticCredentials
from pysstp.client.dial import ClientConnection, dial
from pysstp.connection import LinkConnection
from pysstp.link import CallEvent, ClientConfig, LinkDown, LinkUp, ServerConfig
from pysstp.server.app import Limits, SstpServerApp
from pysstp.server.pool import AddressPool
from pysstp.sstp.binding import certificate_hashes

SERVER_ADDRESS = IPv4Address("10.77.0.1")
POOL = IPv4Network("10.77.0.0/24")


def make_certificate(
    directory: Path, name: str = "sstp.test", *, rsa_key: bool = False
) -> tuple[Path, Path, bytes]:
    """A self-signed certificate for ``name`` and 127.0.0.1, P-256 or (``rsa_key``) RSA-2048; returns
    (cert path, key path, DER)."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path, cert.public_bytes(serialization.Encoding.DER)


class FakeTun:
    """Stands in for the TUN device: packets 'from the kernel' are injected, written ones collected."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self.fd = self._r
        self.inbox: list[bytes] = []
        self.written: list[bytes] = []

    def inject(self, packet: bytes) -> None:
        """The kernel routed ``packet`` into the TUN."""
        self.inbox.append(packet)
        os.write(self._w, b"x")

    def read_batch(self, limit: int) -> list[bytes]:
        with contextlib.suppress(BlockingIOError):
            os.read(self._r, 4096)
        batch, self.inbox = self.inbox[:limit], self.inbox[limit:]
        return batch

    def write_batch(self, packets: list[memoryview]) -> None:
        self.written.extend(map(bytes, packets))

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


@dataclass
class Client:
    """One dialed call and what it saw."""

    connection: ClientConnection | None = None
    events: list[CallEvent] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)
    up: asyncio.Event = field(default_factory=asyncio.Event)
    down: asyncio.Event = field(default_factory=asyncio.Event)

    def on_event(self, connection: LinkConnection, event: CallEvent) -> None:
        self.events.append(event)
        if isinstance(event, LinkUp):
            self.up.set()
        elif isinstance(event, LinkDown):
            self.down.set()

    def deliver(self, connection: LinkConnection, packets: list[memoryview]) -> None:
        self.received.extend(map(bytes, packets))

    def first(self, kind: type) -> CallEvent:
        return next(e for e in self.events if isinstance(e, kind))


@dataclass
class Bench:
    """A running server with its TLS material."""

    app: SstpServerApp
    tun: FakeTun
    port: int
    cert_path: Path
    client_context: ssl.SSLContext

    async def connect(self, user: str = "alice", password: str = "alicepw", **overrides: object) -> Client:
        client = Client()
        settings: dict[str, object] = {"host": "sstp.test", "username": user, "password": password}
        settings.update(overrides)
        client.connection = await dial(
            ClientConfig(**settings),  # type: ignore[arg-type]
            "127.0.0.1",
            self.port,
            self.client_context,
            deliver=client.deliver,
            on_event=client.on_event,
        )
        return client


async def start_bench(
    tmp_path: Path,
    users: dict[str, str] | None = None,
    limits: Limits | None = None,
    configure: Callable[[ServerConfig], ServerConfig] | None = None,
    pool: IPv4Network = POOL,
    credentials: CredentialStore | None = None,
    backend: AuthBackend | None = None,
    offload: bool = False,
    **app_options: object,
) -> Bench:
    """A server on 127.0.0.1 with users alice/alicepw and bob/bobpw (or ``users``, or ``credentials``: a
    user database gives the users' authorization too), behind the local backend (or ``backend``).
    With ``offload`` it serves plain HTTP, for a TLS terminator with the bench's certificate in front."""
    cert_path, key_path, der = make_certificate(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    if credentials is None:
        credentials = StaticCredentials(users or {"alice": "alicepw", "bob": "bobpw"})
    link_config = ServerConfig(certificate_hashes=certificate_hashes(der))
    if configure is not None:
        link_config = configure(link_config)
    tun = FakeTun()
    app = SstpServerApp(
        ssl_context=None if offload else server_context,
        link_config=link_config,
        backend=backend or LocalBackend(credentials, getattr(credentials, "entry", None)),
        pool=AddressPool(pool, SERVER_ADDRESS),
        tun=tun,
        dns=(SERVER_ADDRESS,),
        server_address=SERVER_ADDRESS,
        limits=limits,
        **app_options,  # type: ignore[arg-type]
    )
    ((_, port),) = await app.listen(["127.0.0.1"], 0)
    client_context = ssl.create_default_context(cafile=str(cert_path))
    return Bench(app, tun, port, cert_path, client_context)
