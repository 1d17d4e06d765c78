"""The VPN service NetworkManager starts: ``org.freedesktop.NetworkManager.VPN.Plugin`` on the system bus.

NetworkManager runs the ``program`` of the plugin's ``.name`` file (:mod:`pysstp.nm.plugin`), waits for the
service's bus name, asks :meth:`NeedSecrets` until the secrets suffice, then calls :meth:`ConnectInteractive`
(or :meth:`Connect`). The service dials with :class:`~pysstp.client.app.ClientApp`, without reconnecting
(NetworkManager's autoconnect decides about dialing again), through a
:class:`~pysstp.nm.tunnel.ReportingTunnel`; the ``Config``, ``Ip4Config`` and ``Ip6Config`` signals carry
the call to NetworkManager, ``StateChanged`` and ``Failure`` its end. One service runs one connection and
exits once it is over, as libnm's plugins do.

D-Bus through dbus-fast: asyncio like the rest of pysstp, pure Python with optional C speed-ups, and no
GObject main loop to run beside asyncio (libnm's NMVpnServicePlugin through PyGObject would need one).
"""

# No "from __future__ import annotations": dbus-fast reads the D-Bus signatures from the annotations.
import asyncio
import contextlib
import dataclasses
import enum
import logging
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Network, ip_address
from typing import Annotated

from dbus_fast import BusType, DBusError, Message, RequestNameReply, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusSignature, DBusStr, DBusUInt32
from dbus_fast.constants import PropertyAccess
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property, dbus_signal

from pysstp.client.app import ClientApp, backoff_delay
from pysstp.client.dial import ConnectError
from pysstp.client.login import Login
from pysstp.client.settings import ClientSettings
from pysstp.commands.connect import read_login
from pysstp.errors import PysstpError, SystemSetupError
from pysstp.link import Ipv6Up, LinkUp
from pysstp.logsetup import setup_logging
from pysstp.nd import Advertised
from pysstp.net.changes import NetworkChanges
from pysstp.nm import report
from pysstp.nm.tunnel import ReportingTunnel, free_ifname
from pysstp.nm.vpn_setting import (
    GATEWAY,
    SERVICE_TYPE,
    asks_every_time,
    client_settings,
    missing_secrets,
    never_default,
    wants_ipv6,
)

log = logging.getLogger("pysstp.nm")

INTERFACE = "org.freedesktop.NetworkManager.VPN.Plugin"
PATH = "/org/freedesktop/NetworkManager/VPN/Plugin"
_ERROR = "org.freedesktop.NetworkManager.VPN.Error"
CONNECT_REPLY_WAIT = 8.0
"""Seconds ``Connect`` waits for the call before answering: failures this early become its D-Bus error,
which NetworkManager logs with pysstp's line; NetworkManager gives up on the answer after 10 s."""
IDLE_EXIT = 180.0
"""Seconds a service that was started but never asked to connect stays (as NetworkManager's own start
timeout allows for the secrets dialog)."""

ConnectionDict = Annotated[dict[str, dict[str, Variant]], DBusSignature("a{sa{sv}}")]
VarDict = Annotated[dict[str, Variant], DBusSignature("a{sv}")]


class ServiceState(enum.IntEnum):
    """``NMVpnServiceState``."""

    UNKNOWN = 0
    INIT = 1
    SHUTDOWN = 2
    STARTING = 3
    STARTED = 4
    STOPPING = 5
    STOPPED = 6


class PluginFailure(enum.IntEnum):
    """``NMVpnPluginFailure``: NetworkManager turns them into the connection's state reason
    (login-failed, ip-config-invalid; connect-failed becomes unknown)."""

    LOGIN_FAILED = 0
    CONNECT_FAILED = 1
    BAD_IP_CONFIG = 2


def vpn_setting(
    connection: Mapping[str, Mapping[str, Variant]],
) -> tuple[dict[str, str], dict[str, str], str]:
    """``vpn.data``, ``vpn.secrets`` and the connection's id from the connection NetworkManager sends."""
    vpn = connection.get("vpn", {})
    data = vpn["data"].value if "data" in vpn else {}
    secrets = vpn["secrets"].value if "secrets" in vpn else {}
    name = connection.get("connection", {}).get("id", Variant("s", "pysstp")).value
    return dict(data), dict(secrets), str(name)


class VpnPlugin(ServiceInterface):
    """The plugin's D-Bus object: one connection from Connect to the end of its call."""

    def __init__(self, done: asyncio.Event) -> None:
        super().__init__(INTERFACE)
        self.done = done
        self.state = ServiceState.INIT
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.connected: asyncio.Future[str | None] | None = None
        """Resolves when the call is up (``None``) or failed before (pysstp's line)."""
        self.asked = False
        """Whether ``SecretsRequired`` went out and ``NewSecrets`` is awaited."""

    # -- methods NetworkManager calls ---------------------------------------------------------------

    @dbus_method()
    def NeedSecrets(self, settings: ConnectionDict) -> DBusStr:
        """The setting whose secrets are missing (``"vpn"``), or ``""`` when dialing can start.

        A password asked for at every connect (``password-flags=2``) is not reported missing here:
        :meth:`ConnectInteractive` asks for it with ``SecretsRequired``, whose hints name the secret, so
        any secret agent (nmcli's too) can answer without a pysstp dialog of its own.
        """
        data, secrets, name = vpn_setting(settings)
        if not missing_secrets(data, secrets, name) or asks_every_time(data):
            return ""
        return "vpn"

    @dbus_method()
    async def Connect(self, connection: ConnectionDict) -> None:
        """Dial; answer once the call is up, failed, or :data:`CONNECT_REPLY_WAIT` has passed."""
        await self._connect(connection)

    @dbus_method()
    async def ConnectInteractive(self, connection: ConnectionDict, details: VarDict) -> None:
        """As :meth:`Connect`, but first ask for a missing password (``SecretsRequired``; the answer
        comes with :meth:`NewSecrets`)."""
        data, secrets, name = vpn_setting(connection)
        missing = missing_secrets(data, secrets, name)
        if missing and self.task is None:
            self.asked = True
            user = data.get("user", "")
            self.SecretsRequired(f"Password for {user} on {data.get(GATEWAY, '')}", missing)
            return
        await self._connect(connection)

    @dbus_method()
    async def NewSecrets(self, connection: ConnectionDict) -> None:
        """The secrets :meth:`ConnectInteractive` asked for: dial with them."""
        if not self.asked:
            raise DBusError(f"{_ERROR}.WrongState", "no secrets were asked for")
        self.asked = False
        # Answer at once: NetworkManager moves the connection back to "connect" when this returns, and
        # would miss a Config sent before. Failures from here on are signals.
        await self._connect(connection, wait=False)

    @dbus_method()
    async def Disconnect(self) -> None:
        """End the call in order; NetworkManager removes what it applied. Before a call (while the
        password is being asked for) the service just ends."""
        if self.task is None:
            self._finish()
            return
        self._set_state(ServiceState.STOPPING)
        self.stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self.task)

    @dbus_method()
    def SetConfig(self, config: VarDict) -> None:
        """For helper processes (libnm's interface): passed on as the ``Config`` signal."""
        self.Config(config)

    @dbus_method()
    def SetIp4Config(self, config: VarDict) -> None:
        """For helper processes: passed on as the ``Ip4Config`` signal."""
        self.Ip4Config(config)

    @dbus_method()
    def SetIp6Config(self, config: VarDict) -> None:
        """For helper processes: passed on as the ``Ip6Config`` signal."""
        self.Ip6Config(config)

    @dbus_method()
    def SetFailure(self, reason: DBusStr) -> None:
        """For helper processes: a failure with ``reason`` ends the connection."""
        log.error("%s", reason)
        self.Failure(PluginFailure.CONNECT_FAILED)
        self.stop.set()

    @dbus_property(access=PropertyAccess.READ)
    def State(self) -> DBusUInt32:
        """The service's ``NMVpnServiceState``."""
        return int(self.state)

    # -- signals ------------------------------------------------------------------------------------

    @dbus_signal()
    def StateChanged(self, state: int) -> DBusUInt32:
        """The service's state changed."""
        return state

    @dbus_signal()
    def Config(self, config: dict[str, Variant]) -> VarDict:
        """The tunnel: device, gateway, MTU, which IP versions follow."""
        return config

    @dbus_signal()
    def Ip4Config(self, config: dict[str, Variant]) -> VarDict:
        """IPv4 address, peer, DNS, routes."""
        return config

    @dbus_signal()
    def Ip6Config(self, config: dict[str, Variant]) -> VarDict:
        """IPv6 address, gateway (the server's link-local address), never-default."""
        return config

    @dbus_signal()
    def Failure(self, reason: int) -> DBusUInt32:
        """Why the connection failed (``NMVpnPluginFailure``); ``StateChanged(STOPPED)`` follows."""
        return reason

    @dbus_signal()
    def LoginBanner(self, banner: str) -> DBusStr:
        """A banner to show (never sent: SSTP has none)."""
        return banner

    @dbus_signal()
    def SecretsRequired(
        self, message: str, secrets: list[str]
    ) -> Annotated[tuple[str, list[str]], DBusSignature("sas")]:
        """Secrets wanted during a call (never sent)."""
        return message, secrets

    # -- the call -----------------------------------------------------------------------------------

    async def _connect(self, connection: Mapping[str, Mapping[str, Variant]], wait: bool = True) -> None:
        """Start the call; with ``wait``, answer when it is up, failed (the D-Bus error) or after
        :data:`CONNECT_REPLY_WAIT`."""
        if self.task is not None:
            raise DBusError(f"{_ERROR}.AlreadyStarted", "this service already runs a connection")
        data, secrets, name = vpn_setting(connection)
        if missing_secrets(data, secrets, name):
            self._finish(announce=False)
            raise DBusError(f"{_ERROR}.NoSecrets", f"{name}: no password (vpn.secrets password)")
        try:
            method = connection.get("ipv6", {}).get("method", Variant("s", "auto")).value
            settings = client_settings(data, secrets, name, ipv6=wants_ipv6(str(method)))
            settings = dataclasses.replace(settings, ifname=free_ifname())
            login = read_login(settings, {})
        except PysstpError as exc:
            log.error("%s", exc)
            self._finish(announce=False)
            raise DBusError(f"{_ERROR}.BadArguments", str(exc)) from None
        log.info("%s: dialing %s:%d", name, settings.host, settings.port)
        self._set_state(ServiceState.STARTING)
        self.task = asyncio.ensure_future(self._run(settings, login, never_default(data)))
        if not wait:
            return
        self.connected = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            failure = await asyncio.wait_for(asyncio.shield(self.connected), CONNECT_REPLY_WAIT)
            if failure is not None:
                raise DBusError(f"{_ERROR}.LaunchFailed", failure)

    async def _run(self, settings: ClientSettings, login: Login, no_default: bool) -> None:
        changes = NetworkChanges()
        reporter = _Reporter(self, no_default)
        tunnel = ReportingTunnel(settings, changes, reporter)
        answered = False
        try:
            app = reporter.app = ClientApp(settings, login, tunnel, self.stop)
            await self._dial_until_answered(app)
        except PysstpError as exc:
            log.error("%s", exc)
            if isinstance(exc, ConnectError) and exc.login_failed:
                # Only the signal gives NetworkManager's login-failed reason; an error answer to Connect
                # would read "the service failed to start".
                self.Failure(PluginFailure.LOGIN_FAILED)
            else:
                answered = self._answer(str(exc))
                if not answered:
                    self.Failure(PluginFailure.CONNECT_FAILED)
        finally:
            tunnel.close()
            changes.undo()
            self._answer(None)
            # After an error answer to Connect NetworkManager has failed the connection with
            # service-start-failed; StateChanged(stopped) before that answer would make it "unknown".
            self._finish(announce=not answered)

    async def _dial_until_answered(self, app: ClientApp) -> None:
        """Run the call; while the gateway does not answer at all (TCP refused, unreachable or silent),
        dial again until NetworkManager's connect timeout (``vpn.timeout``) gives up and disconnects, so
        that NetworkManager fails the connection with its connect-timeout reason (a ``Failure`` signal
        could only say connect-failed, which NetworkManager words as "unknown"). Each attempt's line goes
        to the log, the last one again when NetworkManager gives up."""
        attempt = 0
        last: ConnectError | None = None
        while not self.stop.is_set():
            try:
                await app.run()
            except ConnectError as exc:
                if not exc.no_answer or self.stop.is_set():
                    raise
                attempt, last = attempt + 1, exc
                log.warning("%s; dialing again until NetworkManager's connect timeout", exc)
                # Connect succeeds now: NetworkManager's connect timeout starts when Connect returns.
                self._answer(None)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), backoff_delay(attempt))
                continue
            break
        if last is not None and app.last_up is None:
            log.error("gave up after %d attempts: %s", attempt, last)

    def _answer(self, failure: str | None) -> bool:
        """Hand ``failure`` to a Connect still waiting for its answer; whether one was."""
        if self.connected is None or self.connected.done():
            return False
        self.connected.set_result(failure)
        return True

    def _finish(self, announce: bool = True) -> None:
        """The connection is over: say so (unless Connect's error answer does) and let the service exit."""
        if announce:
            self._set_state(ServiceState.STOPPED)
        else:
            self.state = ServiceState.STOPPED
        self.done.set()

    def _set_state(self, state: ServiceState) -> None:
        if state != self.state:
            self.state = state
            self.StateChanged(int(state))


class _Reporter:
    """The call as NetworkManager's signals (:class:`~pysstp.nm.tunnel.Report`)."""

    def __init__(self, plugin: VpnPlugin, never_default: bool) -> None:
        self.plugin = plugin
        self.never_default = never_default
        self.app: ClientApp | None = None
        self.up: LinkUp | None = None

    def config(self, up: LinkUp, ifname: str, has_ip6: bool) -> None:
        """``Config`` and ``Ip4Config``; the service has started (NetworkManager waits for an ``Ip6Config``
        as well when ``has_ip6``)."""
        plugin = self.plugin
        assert self.app is not None
        if up.local_address is None or up.peer_address is None:
            log.error("IPCP: the server gave no IPv4 address; the plugin needs IPv4")
            plugin.Failure(PluginFailure.BAD_IP_CONFIG)
            plugin.stop.set()
            return
        plugin.Config(report.generic_config(ifname, self.app.address, up.mtu, has_ip6))
        plugin.Ip4Config(report.ip4_config(up, self.never_default))
        self.up = up
        plugin._set_state(ServiceState.STARTED)
        plugin._answer(None)

    def pushed(self, routes: Sequence[IPv4Network], domains: Sequence[str]) -> None:
        """``Ip4Config`` again, now with the server's routes and search domain (NetworkManager takes a
        new one while the connection is up and applies the difference)."""
        if self.up is None:
            return
        self.plugin.Ip4Config(report.ip4_config(self.up, self.never_default, routes, domains))
        log.info(
            "the server's %s reported to NetworkManager",
            ", ".join([*(f"route {route}" for route in routes), *(f"domain {d}" for d in domains)]),
        )

    def ip6(self, ipv6: Ipv6Up, advertised: Advertised) -> None:
        """``Ip6Config``."""
        config = report.ip6_config(
            ipv6.local_interface_id, ipv6.peer_interface_id, advertised, self.never_default
        )
        log.info(
            "IPv6: %s reported to NetworkManager",
            ip_address(bytes(config["address"].value)),
        )
        self.plugin.Ip6Config(config)


async def serve() -> None:
    """Own the service's bus name until one connection has come and gone (or none came)."""
    try:
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    except OSError as exc:
        raise SystemSetupError(f"cannot reach the system bus: {exc.strerror}") from None
    done = asyncio.Event()
    plugin = VpnPlugin(done)
    bus.export(PATH, plugin)
    try:
        reply = await bus.request_name(SERVICE_TYPE)
    except DBusError as exc:
        bus.disconnect()
        raise SystemSetupError(
            f"the system bus refused {SERVICE_TYPE} ({exc.text}); run as root, after pysstp nm install"
        ) from None
    if reply != RequestNameReply.PRIMARY_OWNER:
        bus.disconnect()
        raise PysstpError(f"another process already owns {SERVICE_TYPE} on the system bus")
    log.info("pysstp VPN service ready as %s", SERVICE_TYPE)
    idle = asyncio.get_running_loop().call_later(
        IDLE_EXIT, lambda: None if plugin.task is not None else done.set()
    )
    lost = asyncio.ensure_future(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
    finished = asyncio.ensure_future(done.wait())
    await asyncio.wait({lost, finished}, return_when=asyncio.FIRST_COMPLETED)
    idle.cancel()
    if lost.done():
        # NetworkManager (or its bus) is gone: nobody applies or removes the configuration any more.
        log.error("lost the system bus; ending the call")
        plugin.stop.set()
        if plugin.task is not None:
            await plugin.task
        return
    lost.cancel()
    # A round trip to the bus: its answer comes after the last signals we sent have reached it.
    await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus.Peer",
            member="Ping",
        )
    )
    bus.disconnect()


def main() -> int:
    """``pysstp-nm-service``, the program NetworkManager starts (no arguments); logs go to NetworkManager's
    log (its stderr, the journal under systemd)."""
    setup_logging("info", "text")
    try:
        asyncio.run(serve())
    except PysstpError as exc:
        log.error("%s", exc)
        return 1
    return 0
