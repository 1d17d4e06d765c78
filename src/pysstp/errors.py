"""Exception types shared by every layer.

A peer's bad input raises a subclass of :class:`ProtocolError` inside the codec that found it; the state
machine of that layer turns it into the protocol's answer. Nothing else may escape a session.
"""


class PysstpError(Exception):
    """Base of every exception pysstp raises on purpose."""


class ProtocolError(PysstpError):
    """Bytes from the network that do not follow the protocol."""


class SstpError(ProtocolError):
    """A malformed or unexpected SSTP packet or attribute."""


class DelineationError(SstpError):
    """The SSTP byte stream cannot be cut into packets (bad version, impossible length).

    The spec's answer is to drop the TCP connection without sending anything.
    """


class HttpError(ProtocolError):
    """The HTTP handshake that precedes SSTP is malformed or not an SSTP request/response."""


class PppError(ProtocolError):
    """A malformed PPP frame, control packet or option."""


class AuthError(PppError):
    """A malformed authentication packet (PAP, CHAP, MS-CHAPv2, EAP)."""


class ConfigError(PysstpError):
    """A user mistake in a configuration file, a flag or a command: shown as one line, no traceback."""


class SystemSetupError(PysstpError):
    """The operating system refused something pysstp needs (TUN, address, route, port, privileges)."""
