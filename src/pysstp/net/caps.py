"""Linux capabilities of this process."""

from __future__ import annotations

import os
from pathlib import Path

CAP_NET_ADMIN = 12
"""Capability number from linux/capability.h: TUN devices, addresses, routes, net sysctls, nftables."""


def has_capability(number: int) -> bool:
    """Whether this process holds a Linux capability in its effective set (root normally holds all)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> number & 1)
    except OSError:
        pass
    return os.geteuid() == 0
