"""SIGHUP: read the settings, users file and certificates again and apply what a reload may change."""

from __future__ import annotations

import dataclasses
import logging
import ssl
from collections.abc import Callable, Iterable
from operator import attrgetter

from pysstp.aaa.userdb import UserDatabase
from pysstp.errors import ConfigError
from pysstp.logsetup import setup_logging
from pysstp.server.app import SstpServerApp
from pysstp.server.build import limits, link_config, load_tls, tune_backoff, user_database
from pysstp.server.check import check_fixed_addresses
from pysstp.server.config import Ipv6Settings, ServerSettings
from pysstp.server.pool import AddressPool

log = logging.getLogger("pysstp.server")

RESTART_SETTINGS = (
    "listen",
    "port",
    "workers",
    "tun_name",
    "pool.network",
    "pool.server_address",
    "pools",
    "ipv6",
    "mru",
    "max_peer_mru",
    "forwarding.mode",
    "forwarding.egress",
    "forwarding.mss_clamp",
    "control_socket",
    "backend",
    "eap_mode",
    "radius.servers",
    "radius.secret_file",
    "radius.timeout",
    "radius.retries",
    "radius.dead_time",
    "radius.nas_identifier",
    "radius.nas_address",
    "radius.accounting",
    "radius.interim_interval",
    "radius.accounting_spool",
    "dae.listen",
    "dae.port",
    "dae.clients",
    "metrics.listen",
    "proxy_protocol",
    "proxy_sources",
    "tls.offload",
)
"""Settings (server.toml keys) that only a restart applies: they shape the TUN device, its addresses and
routes, the nftables rules, the sockets (the Dynamic Authorization clients' secrets are read with their
socket), what the listening port speaks (PROXY headers, TLS or plain HTTP), and who decides logins
(the backend, its RADIUS servers and their secrets, and the EAP mode that goes with them). SIGHUP
applies every other one, because a reload builds the TLS context, the link settings, the limits, the
login back-off and the logging from the new settings exactly as start-up does."""


class Reloader:
    """SIGHUP: read server.toml (with the same flags), the users file and the certificates again, check
    all of it, and only then apply it; a problem anywhere keeps everything that runs."""

    def __init__(
        self,
        app: SstpServerApp,
        users: UserDatabase,
        pool: AddressPool,
        settings: ServerSettings,
        reread: Callable[[], ServerSettings] | None,
    ) -> None:
        self.app = app
        self.users = users
        self.pool = pool
        self.started = settings
        """What the restart-only settings are, for as long as the process runs."""
        self.settings = settings
        """What the reloadable settings are now."""
        self.reread = reread

    def reload(self) -> None:
        """Reload, or log one line per problem found and keep the running configuration."""
        try:
            read = self.reread() if self.reread is not None else self.settings
        except ConfigError as exc:
            log.error("reload: %s; keeping the running configuration", exc)
            return
        # New calls must match the TUN and the routes: they keep the restart-only values that run.
        settings = keep_settings(read, self.started, RESTART_SETTINGS)
        problems: list[str] = []
        users = tls = config = None
        try:
            users = user_database(settings)
        except ConfigError as exc:
            problems.append(str(exc))
        try:
            tls = load_tls(settings)
        except (ConfigError, OSError, ssl.SSLError) as exc:
            problems.append(str(exc))
        if tls is not None:
            try:
                config = link_config(settings, tls[1])
            except ConfigError as exc:
                problems.append(str(exc))
        if users is None or tls is None or config is None:
            for problem in problems:
                log.error("reload: %s", problem)
            log.error("reload failed; keeping the running configuration")
            return
        self.users.take_over(users)
        check_fixed_addresses(self.users, self.pool)
        self.app.reconfigure(
            ssl_context=tls[0],
            link_config=config,
            dns=settings.pool.dns,
            limits=limits(settings),
            idle_timeout=settings.limits.idle_timeout,
            require_client_certificate=settings.tls.verify_client_certificate == "require",
        )
        tune_backoff(self.app.backoff, settings)
        if settings.log != self.settings.log:
            setup_logging(settings.log.level, settings.log.format)
        for key in RESTART_SETTINGS:
            if attrgetter(key)(read) != attrgetter(key)(self.started):
                log.warning("reload: %s changed; restart to apply", key)
        changed = [
            key
            for key in setting_keys(settings)
            if attrgetter(key)(settings) != attrgetter(key)(self.settings)
        ]
        self.settings = settings
        log.info(
            "reloaded users (%d), the certificates and the CRLs%s",
            len(self.users),
            f"; changed: {', '.join(changed)}" if changed else "",
        )


def keep_settings(settings: ServerSettings, source: ServerSettings, keys: Iterable[str]) -> ServerSettings:
    """``settings`` with the values of ``keys`` (dotted, ``pool.network``) taken from ``source``."""
    for key in keys:
        section, _, name = key.rpartition(".")
        if section:
            value = dataclasses.replace(getattr(settings, section), **{name: attrgetter(key)(source)})
            settings = dataclasses.replace(settings, **{section: value})
        else:
            settings = dataclasses.replace(settings, **{name: getattr(source, name)})
    return settings


def setting_keys(settings: object, prefix: str = "") -> list[str]:
    """The dotted keys of every setting in ``settings`` (``pool.dns``); ``ipv6`` is one setting."""
    keys: list[str] = []
    for item in dataclasses.fields(settings):  # type: ignore[arg-type]
        value = getattr(settings, item.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, Ipv6Settings):
            keys += setting_keys(value, f"{prefix}{item.name}.")
        else:
            keys.append(prefix + item.name)
    return keys
