"""SSTP: wire codec, HTTP handshake, crypto binding and the sans-I/O client and server machines."""
