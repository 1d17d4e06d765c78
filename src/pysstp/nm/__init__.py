"""pysstp as a NetworkManager VPN plugin (docs/networkmanager.md): NetworkManager starts the service, hands
it a connection's ``vpn.data`` and ``vpn.secrets``; pysstp dials and owns the TUN, NetworkManager applies
the addresses, routes and DNS it reports."""
