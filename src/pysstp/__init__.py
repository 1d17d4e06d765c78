"""pysstp: an SSTP VPN client and server with PPP done in user space."""

__version__ = "0.1.0"
