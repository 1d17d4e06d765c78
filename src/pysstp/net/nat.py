"""NAT and MSS clamping with nftables, in a table of pysstp's own per server: ``inet pysstp-<TUN>``.

The rules go to ``nft -f -`` as text; owning a whole table means installing and removing never touches
anybody else's rules (another server's on another TUN included), and the table is replaced in one
transaction.
"""

import string
import subprocess
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Literal

from pysstp.errors import SystemSetupError
from pysstp.net.ifname import check_ifname

TABLE_PREFIX = "pysstp-"
NFT = "nft"

# What nft's scanner takes in an unquoted name after its first character (nft 1.0 takes no quoted
# table names); the prefix supplies a letter first.
_NFT_NAME_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_./")


def table_for(tun: str) -> str:
    """The name of the table for the server on TUN device ``tun``: ``pysstp-<tun>``, with any character
    an nft name cannot hold written as ``_`` and its two hex digits (interface names may hold almost any)."""
    return TABLE_PREFIX + "".join(
        c if c in _NFT_NAME_CHARACTERS else "".join(f"_{b:02x}" for b in c.encode()) for c in tun
    )


@dataclass(frozen=True, slots=True)
class NatRules:
    """The contents of the table :func:`table_for` names after ``tun``.

    * ``source``: masquerade packets from this prefix (the tunnel's address pool) as they leave through
      ``egress``, or through any interface but ``tun`` when ``egress`` is None. No masquerade when None.
    * ``mss``: clamp the MSS of TCP SYNs entering or leaving ``tun``: "route" to the MTU of the route
      the packet takes, a number for a fixed ceiling, None for no clamping. Clients behind SSTP often
      cannot receive ICMP "fragmentation needed", so without this, large TCP transfers stall.
    """

    tun: str
    source: IPv4Network | IPv6Network | None = None
    egress: str | None = None
    mss: int | Literal["route"] | None = "route"

    def __post_init__(self) -> None:
        check_ifname(self.tun)
        if self.egress is not None:
            check_ifname(self.egress)
        if isinstance(self.mss, int) and not 536 <= self.mss <= 65495:
            raise SystemSetupError(f"MSS {self.mss} is out of range (536-65495)")

    @property
    def table(self) -> str:
        """The table's name (see :func:`table_for`)."""
        return table_for(self.tun)

    def render(self) -> str:
        """The nft script that replaces the table with these rules (atomically, even if it exists)."""
        # Declaring the table first makes the delete succeed when there is none yet.
        table = self.table
        lines = [f"table inet {table}", f"delete table inet {table}", f"table inet {table} {{"]
        if self.mss is not None:
            size = "rt mtu" if self.mss == "route" else str(self.mss)
            # A fixed value only ever lowers the MSS the peers offered.
            limit = "" if self.mss == "route" else f"tcp option maxseg size > {self.mss} "
            lines += [
                "  chain forward {",
                "    type filter hook forward priority mangle; policy accept;",
                f'    iifname "{self.tun}" tcp flags syn {limit}tcp option maxseg size set {size}',
                f'    oifname "{self.tun}" tcp flags syn {limit}tcp option maxseg size set {size}',
                "  }",
            ]
        if self.source is not None:
            family = "ip" if self.source.version == 4 else "ip6"
            out = f'oifname "{self.egress}"' if self.egress is not None else f'oifname != "{self.tun}"'
            lines += [
                "  chain postrouting {",
                "    type nat hook postrouting priority srcnat; policy accept;",
                f"    {family} saddr {self.source} {out} masquerade",
                "  }",
            ]
        lines.append("}")
        return "\n".join(lines) + "\n"


def make_nat_rules(
    tun: str,
    *,
    source: str | IPv4Network | IPv6Network | None = None,
    egress: str | None = None,
    mss: int | Literal["route"] | None = "route",
) -> NatRules:
    """Build :class:`NatRules`, accepting the source prefix as a string."""
    return NatRules(tun=tun, source=None if source is None else ip_network(source), egress=egress, mss=mss)


def install_nat(rules: NatRules) -> None:
    """Install the table (replacing one of the same name)."""
    _nft(rules.render(), f"install nftables table inet {rules.table}")


def remove_nat(table: str) -> None:
    """Remove the table (named by :func:`table_for`); harmless when it is not there."""
    if not table.startswith(TABLE_PREFIX) or not set(table) <= _NFT_NAME_CHARACTERS:
        raise SystemSetupError(f"invalid nftables table name {table!r}")
    _nft(f"table inet {table}\ndelete table inet {table}\n", f"remove nftables table inet {table}")


def _nft(script: str, action: str) -> None:
    try:
        result = subprocess.run([NFT, "-f", "-"], input=script, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise SystemSetupError(
            f"cannot {action}: the nft command is missing; install nftables (apt install nftables)"
        ) from None
    if result.returncode != 0:
        # nft prints "<input>:line:col: Error: what", then the offending line and carets.
        lines = [line for line in result.stderr.splitlines() if "Error:" in line]
        message = lines[0].split("Error:", 1)[1].strip() if lines else f"nft exited with {result.returncode}"
        if "Operation not permitted" in message:
            message = "permission denied; run as root or with CAP_NET_ADMIN"
        raise SystemSetupError(f"cannot {action}: {message}")
