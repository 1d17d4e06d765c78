"""The server's parts built from its settings: the TLS context, link settings, users, login backend,
RADIUS servers and accounting, limits, back-off and pools (at start-up, for ``--check``, and on each
reload)."""

from __future__ import annotations

import email.utils
import ssl
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from pysstp.aaa.backend import AuthBackend
from pysstp.aaa.local import LocalBackend
from pysstp.aaa.pki import read_certificates, read_crls, read_identity
from pysstp.aaa.radius import (
    NasIdentity,
    RadiusAccounting,
    RadiusBackend,
    RadiusClient,
    RadiusServer,
    read_secret,
)
from pysstp.aaa.userdb import UserDatabase
from pysstp.errors import ConfigError
from pysstp.link import ServerConfig
from pysstp.ppp.auth.eap_tls import EapTlsServerSettings
from pysstp.ppp.auth.peap import PeapServerSettings
from pysstp.ppp.auth.tls_tunnel import TlsIdentity
from pysstp.ppp.constants import AuthMethod
from pysstp.server.accounting import SessionAccounting
from pysstp.server.app import Limits
from pysstp.server.backoff import Backoff
from pysstp.server.config import ServerSettings
from pysstp.server.ipv6 import SERVER_INTERFACE_ID
from pysstp.server.pool import AddressPool
from pysstp.sstp.binding import certificate_hashes
from pysstp.sstp.constants import HashProtocol
from pysstp.sstp.http import page_response, redirect_response


def link_config(settings: ServerSettings, certificate_hashes: Mapping[HashProtocol, bytes]) -> ServerConfig:
    """What every new call's link is configured with (at start, and again after each reload)."""
    return ServerConfig(
        certificate_hashes=certificate_hashes,
        auth_methods=settings.auth_methods,
        hash_protocols=settings.tls.hash_protocols,
        mru=settings.mru,
        max_peer_mru=settings.max_peer_mru,
        ipv6=settings.ipv6.enabled,
        ipv6_interface_id=SERVER_INTERFACE_ID,
        hello_interval=settings.keepalive,
        negotiation_timeout=settings.limits.negotiation_timeout,
        handshake_timeout=settings.limits.handshake_timeout,
        http_date=lambda: email.utils.formatdate(usegmt=True),
        not_sstp_response=not_sstp_response(settings),
        eap_tls=load_eap_tls(settings),
        peap=load_peap(settings),
        eap_mode=settings.eap_mode,
    )


def user_database(settings: ServerSettings) -> UserDatabase:
    """The users file; with RADIUS deciding logins it may be missing (it can still fix addresses)."""
    return UserDatabase(settings.users, create=settings.backend == "radius")


def auth_backend(settings: ServerSettings, users: UserDatabase, radius: RadiusClient | None) -> AuthBackend:
    """The backend that decides logins (``backend``); the server puts the login back-off around it."""
    if settings.backend == "radius":
        assert radius is not None  # validate() insists on servers
        return RadiusBackend(radius, nas_identity(settings))
    return LocalBackend(users, users.entry)


def nas_identity(settings: ServerSettings) -> NasIdentity:
    """How the server names itself to RADIUS."""
    return NasIdentity(settings.radius.nas_identifier, settings.radius.nas_address)


def radius_accounting(settings: ServerSettings, radius: RadiusClient | None) -> SessionAccounting | None:
    """RADIUS accounting of the sessions, when there are RADIUS servers and it is not turned off."""
    if radius is None or not settings.radius.accounting:
        return None
    records = RadiusAccounting(radius, nas_identity(settings), spool=settings.radius.accounting_spool)
    return SessionAccounting(records, settings.radius.interim_interval)


def radius_client(settings: ServerSettings) -> RadiusClient | None:
    """The client of the ``[radius]`` servers, ``None`` when there are none."""
    return RadiusClient(radius_servers(settings)) if settings.radius.servers else None


def radius_servers(settings: ServerSettings) -> list[RadiusServer]:
    """The ``[radius]`` servers with their secrets read; priority as set, else the order of the list."""
    radius = settings.radius
    servers = []
    for rank, entry in enumerate(radius.servers):
        secret_file = entry.secret_file or radius.secret_file
        assert secret_file is not None  # validate() refuses a server without a secret
        servers.append(
            RadiusServer(
                entry.address,
                read_secret(secret_file),
                port=entry.port,
                accounting_port=entry.accounting_port or entry.port + 1,
                priority=entry.priority if entry.priority is not None else rank,
                timeout=entry.timeout if entry.timeout is not None else radius.timeout,
                retries=entry.retries if entry.retries is not None else radius.retries,
                dead_time=entry.dead_time if entry.dead_time is not None else radius.dead_time,
            )
        )
    return servers


def limits(settings: ServerSettings) -> Limits:
    """The app's admission limits (at start, and again after each reload)."""
    return Limits(
        max_sessions=settings.limits.max_sessions,
        max_sessions_per_user=settings.limits.max_sessions_per_user,
        max_negotiating=settings.limits.max_handshakes,
        connections_per_source_per_minute=settings.limits.connections_per_source_per_minute,
        on_limit=settings.limits.on_limit,
        rate_in=settings.limits.rate_in,
        rate_out=settings.limits.rate_out,
    )


def tune_backoff(backoff: Backoff, settings: ServerSettings) -> Backoff:
    """Set the login back-off from the settings (at start, and again after each reload, which keeps the
    failure counts)."""
    backoff.base = settings.limits.login_delay
    backoff.maximum = settings.limits.max_login_delay
    backoff.source_limit = settings.limits.max_login_failures_per_source
    backoff.refusal = settings.limits.login_refusal
    return backoff


def named_pools(settings: ServerSettings) -> dict[str, AddressPool]:
    """The ``[pools.NAME]`` pools by name, for RADIUS Framed-Pool."""
    return {named.name: AddressPool(named.network, settings.pool.server_address) for named in settings.pools}


def not_sstp_response(settings: ServerSettings) -> bytes | None:
    """What browsers and scanners get: a redirect, a static page, or (None) the plain 404/501."""
    if settings.http.redirect is not None:
        return redirect_response(settings.http.redirect)
    if settings.http.page is not None:
        try:
            return page_response(settings.http.page.read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read the page {settings.http.page}: {exc.strerror}") from None
    return None


def load_tls(settings: ServerSettings) -> tuple[ssl.SSLContext | None, dict[HashProtocol, bytes]]:
    """The server's TLS context (``None`` with ``tls.offload``) and the hashes of the certificate its
    clients see, which their crypto bindings carry: its own, or with TLS offloaded the terminator's."""
    tls = settings.tls
    if tls.offload:
        return None, binding_hashes(settings)
    if tls.cert is None or tls.key is None:
        raise ConfigError("a certificate and its key are needed: --cert FULLCHAIN.pem --key KEY.pem")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = tls.min_version
    context.set_ciphers(tls.cipher_list)
    # SSTP clients do not resume TLS sessions (every call binds to a fresh handshake), so the two
    # TLS 1.3 session tickets OpenSSL sends after each handshake are work and bytes for nothing.
    context.num_tickets = 0
    der = load_certificate(context, tls.cert, tls.key)
    load_client_verification(context, settings)
    return context, certificate_hashes(der)


def binding_hashes(settings: ServerSettings) -> dict[HashProtocol, bytes]:
    """With TLS offloaded: the terminator's certificate hashes, from ``tls.binding_cert`` or as given."""
    tls = settings.tls
    if tls.binding_cert is not None:
        leaf, *_chain = read_certificates(tls.binding_cert, "certificate (tls.binding_cert)")
        return certificate_hashes(leaf.public_bytes(serialization.Encoding.DER))
    given = {HashProtocol.SHA256: tls.binding_sha256, HashProtocol.SHA1: tls.binding_sha1}
    return {proto: digest for proto, digest in given.items() if digest is not None}


# "require" only requests in TLS; SstpServerApp refuses a call without one, and logs why.
_CLIENT_CERTIFICATE_MODES = {
    "none": ssl.CERT_NONE,
    "request": ssl.CERT_OPTIONAL,
    "require": ssl.CERT_OPTIONAL,
}


def load_client_verification(context: ssl.SSLContext, settings: ServerSettings) -> None:
    """Ask for TLS client certificates as ``tls.verify_client_certificate`` says, trusting
    ``tls.client_ca`` and checking ``tls.client_crl``."""
    tls = settings.tls
    context.verify_mode = _CLIENT_CERTIFICATE_MODES[tls.verify_client_certificate]
    if tls.verify_client_certificate == "none":
        return
    for path, reader in [(p, read_certificates) for p in tls.client_ca] + [
        (p, read_crls) for p in tls.client_crl
    ]:
        reader(path)  # a clear error for a missing or damaged file, before OpenSSL's terse one
        try:
            context.load_verify_locations(cafile=path)
        except ssl.SSLError as exc:
            raise ConfigError(f"{path}: OpenSSL cannot use it: {exc.reason or exc}") from None
    if tls.client_crl:
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


def load_eap_tls(settings: ServerSettings) -> EapTlsServerSettings | None:
    """EAP-TLS certificates, CAs and CRLs read from their files (``None`` when no CA is configured)."""
    eap = settings.eap_tls
    if not eap.ca:
        return None
    try:
        return EapTlsServerSettings(
            identity=_eap_identity(settings),
            trusted_cas=tuple(c for path in eap.ca for c in read_certificates(path, "CA file")),
            crls=tuple(crl for path in eap.crl for crl in read_crls(path)),
            identity_source=eap.identity,
            require_known_user=eap.require_user,
            fragment_size=eap.fragment_size,
            max_version=eap.max_version,
        )
    except ValueError as exc:
        raise ConfigError(f"EAP-TLS: {exc}") from None


def load_peap(settings: ServerSettings) -> PeapServerSettings | None:
    """The certificate PEAP's TLS tunnel shows (``None`` unless PEAP runs here: listed, EAP local)."""
    if AuthMethod.PEAP not in settings.auth_methods or settings.eap_mode != "local":
        return None
    try:
        return PeapServerSettings(_eap_identity(settings), fragment_size=settings.eap_tls.fragment_size)
    except ValueError as exc:
        raise ConfigError(f"PEAP: {exc}") from None


def _eap_identity(settings: ServerSettings) -> TlsIdentity:
    """The EAP certificate (eap_tls.cert), else the HTTPS one; EAP-TLS and PEAP both show it."""
    eap = settings.eap_tls
    cert, key = (eap.cert, eap.key) if eap.cert is not None else (settings.tls.cert, settings.tls.key)
    assert cert is not None and key is not None  # validate() insists on one of the two
    return read_identity(cert, key)


def load_certificate(context: ssl.SSLContext, cert: Path, key: Path) -> bytes:
    """Load the chain and key into ``context``; return the leaf's DER (the crypto binding hashes it)."""
    for path in (cert, key):
        try:
            path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read {path}: {exc.strerror.lower() if exc.strerror else exc}"
            ) from None
    try:
        context.load_cert_chain(cert, key)
        pem = cert.read_text()
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"cannot use certificate {cert} with key {key}: {exc}") from None
    end = pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return ssl.PEM_cert_to_DER_cert(pem[pem.index("-----BEGIN CERTIFICATE-----") : end])
