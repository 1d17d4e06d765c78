"""The asyncio SSTP server: settings, address pool, TLS listener, session table, limits and control, and
the server's life on the host (building its parts, checks, reload, state file)."""
