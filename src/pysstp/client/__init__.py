"""The SSTP client: dial a server and carry a TUN device's traffic through the call."""
