"""The asyncio SSTP server: settings, address pool, TLS listener, session table, limits and control."""
