"""RADIUS (RFC 2865, 2866, 2869, 3162, 3579, 5080) over asyncio UDP, with packets through pyrad.

See docs/radius.md for what is sent, what is honoured and how to set up FreeRADIUS.
"""

from pysstp.aaa.radius.accounting import Counters, RadiusAccounting, SessionFacts, TerminateCause
from pysstp.aaa.radius.backend import RadiusBackend
from pysstp.aaa.radius.client import RadiusClient, RadiusServerStats, RadiusServerStatus, RadiusUnavailable
from pysstp.aaa.radius.request import NasIdentity
from pysstp.aaa.radius.server import RadiusServer, read_secret

__all__ = [
    "Counters",
    "NasIdentity",
    "RadiusAccounting",
    "RadiusBackend",
    "RadiusClient",
    "RadiusServer",
    "RadiusServerStats",
    "RadiusServerStatus",
    "RadiusUnavailable",
    "SessionFacts",
    "TerminateCause",
    "read_secret",
]
