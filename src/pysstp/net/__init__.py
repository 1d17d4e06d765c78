"""The operating system side of a tunnel: TUN device, addresses and routes, sysctls, NAT.

Nothing here knows about SSTP or PPP. Every change that server and client make to the system goes through
:class:`~pysstp.net.changes.NetworkChanges`, which can put it all back.

All of it acts in the network namespace of the calling thread. Functions that talk netlink block for a
few milliseconds; they are meant for setup and teardown, not for the data path.
"""

from pysstp.net.changes import NetworkChanges
from pysstp.net.iproute import AddressInfo, Route
from pysstp.net.nat import NatRules
from pysstp.net.tun import TunDevice

__all__ = ["AddressInfo", "NatRules", "NetworkChanges", "Route", "TunDevice"]
