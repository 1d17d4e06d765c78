"""What is wrong before serving: ``pysstp server --check``, the users' fixed addresses, the host's
networks and interfaces, and a listening socket the kernel refused."""

from __future__ import annotations

import datetime
import errno
import logging
import sys
from collections.abc import Callable
from ipaddress import ip_address, ip_network
from pathlib import Path

from pysstp.aaa.pki import read_certificates, read_crls
from pysstp.aaa.userdb import UserDatabase
from pysstp.errors import ConfigError, SystemSetupError
from pysstp.net.iproute import link_exists, list_addresses
from pysstp.server.build import (
    load_eap_tls,
    load_peap,
    load_tls,
    not_sstp_response,
    radius_servers,
    user_database,
)
from pysstp.server.config import ServerSettings
from pysstp.server.dae import dae_clients
from pysstp.server.pool import AddressPool

log = logging.getLogger("pysstp.server")


def check(settings: ServerSettings) -> int:
    """``--check``: read every file the settings name and check the certificates, changing nothing;
    print one line per problem (exit 1) or "configuration OK"."""
    problems: list[str] = []
    steps: list[Callable[[], object]] = [
        lambda: load_tls(settings),
        lambda: problems.extend(
            fixed_address_problems(
                user_database(settings), AddressPool(settings.pool.network, settings.pool.server_address)
            )
        ),
        lambda: radius_servers(settings),
        lambda: load_eap_tls(settings),
        lambda: load_peap(settings),
        lambda: not_sstp_response(settings),
        lambda: dae_clients(settings.dae),
    ]
    for step in steps:
        try:
            step()
        except (ConfigError, SystemSetupError) as exc:
            problems.append(str(exc))
    problems += certificate_dates(settings, datetime.datetime.now(datetime.UTC))
    for problem in problems:
        print(f"pysstp: {problem}", file=sys.stderr)
    if not problems:
        print("configuration OK")
    return 1 if problems else 0


def certificate_dates(settings: ServerSettings, now: datetime.datetime) -> list[str]:
    """A line for each certificate the server uses or trusts that is expired or not yet valid, and for
    each CRL past its next update (OpenSSL then refuses every certificate of that CA)."""
    tls, eap = settings.tls, settings.eap_tls
    named: list[tuple[str, Path]] = [("tls.cert", p) for p in (tls.cert,) if p is not None]
    named += [("eap_tls.cert", p) for p in (eap.cert,) if p is not None]
    named += [("tls.client_ca", p) for p in tls.client_ca if tls.verify_client_certificate != "none"]
    named += [("eap_tls.ca", p) for p in eap.ca]
    problems = []
    for key, path in named:
        try:
            certificates = read_certificates(path)
        except ConfigError:
            continue  # already reported by the step that loads it
        for certificate in certificates:
            subject = certificate.subject.rfc4514_string() or "(no subject)"
            after, before = certificate.not_valid_after_utc, certificate.not_valid_before_utc
            if after < now:
                problems.append(f"{key} {path}: the certificate {subject} expired on {after:%Y-%m-%d}")
            elif before > now:
                problems.append(
                    f"{key} {path}: the certificate {subject} is not valid yet ({before:%Y-%m-%d})"
                )
    crls = [("tls.client_crl", p) for p in tls.client_crl if tls.verify_client_certificate != "none"]
    for key, path in crls + [("eap_tls.crl", p) for p in eap.crl]:
        try:
            lists = read_crls(path)
        except ConfigError:
            continue
        for crl in lists:
            if crl.next_update_utc is not None and crl.next_update_utc < now:
                problems.append(
                    f"{key} {path}: the CRL of {crl.issuer.rfc4514_string()} expired on "
                    f"{crl.next_update_utc:%Y-%m-%d}; issue a new one (pysstp pki crl)"
                )
    return problems


def check_fixed_addresses(users: UserDatabase, pool: AddressPool) -> None:
    """One warning per user whose fixed address the server cannot route into the tunnel; such a user is
    refused at each login (the user file itself stays in force, so nobody else is locked out)."""
    for problem in fixed_address_problems(users, pool):
        log.warning("%s", problem)


def fixed_address_problems(users: UserDatabase, pool: AddressPool) -> list[str]:
    """A line for each user whose fixed address the server cannot route into the tunnel."""
    return [
        f"user {entry.name!r} gets no session: its fixed address {problem}"
        for entry in users.entries()
        if entry.address is not None and (problem := pool.fixed_refusal(entry.address)) is not None
    ]


def check_host(settings: ServerSettings) -> None:
    """Refuse, before anything is changed, a pool that overlaps a network this host already has (the
    TUN would take an address the host uses, and the host's routes would compete with the tunnel's) and,
    in NAT mode, an egress interface the host does not have."""
    pool = settings.pool
    for info in list_addresses():
        networks = [info.address.network]
        if info.peer is not None:
            networks.append(ip_network(f"{info.peer}/{info.address.network.prefixlen}"))
        for network in networks:
            if network.version != 4:
                continue
            if network.overlaps(pool.network) or pool.server_address in network:
                raise SystemSetupError(
                    f"pool {pool.network} (server {pool.server_address}) overlaps {network} on "
                    f"{info.ifname}, a network this host already has; choose a pool.network no "
                    "interface uses (see ip addr)"
                )
            for named in settings.pools:
                if network.overlaps(named.network):
                    raise SystemSetupError(
                        f"pools.{named.name} {named.network} overlaps {network} on {info.ifname}, a "
                        "network this host already has; choose a network no interface uses (see ip addr)"
                    )
    egress = settings.forwarding.egress
    if settings.forwarding.mode == "nat" and egress is not None and not link_exists(egress):
        raise SystemSetupError(
            f"forwarding.egress: this host has no interface {egress} (see ip link); "
            "name the one that leads to the clients' destinations"
        )


def listen_error(settings: ServerSettings, exc: OSError) -> SystemSetupError:
    """The one line for a listening socket the kernel refused, with the likely cause."""
    port = settings.port
    if exc.errno == errno.EADDRNOTAVAIL:
        host = {str(a.address.ip) for a in list_addresses()}
        missing = [a for a in settings.listen if a not in host and not ip_address(a).is_unspecified]
        return SystemSetupError(
            f"cannot listen on {', '.join(missing or settings.listen)} port {port}: no interface of this "
            "host has that address (see ip addr); listen on one it has, or on 0.0.0.0 and ::"
        )
    if exc.errno == errno.EACCES and port < 1024:
        return SystemSetupError(
            f"cannot listen on port {port}: ports below 1024 need root or CAP_NET_BIND_SERVICE"
        )
    if exc.errno == errno.EADDRINUSE:
        return SystemSetupError(f"cannot listen on port {port}: it is in use; is another server using it?")
    return SystemSetupError(f"cannot listen on port {port}: {exc.strerror or exc}")
