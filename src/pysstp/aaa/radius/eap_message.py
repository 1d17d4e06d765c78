"""EAP-Message attributes (RFC 3579 §3.1): one EAP packet cut into attributes of at most 253 bytes.

The pieces are sent in order and joined in order; only the last may be shorter than 253 bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_ATTRIBUTE_VALUE = 253
"""An attribute's value: 255 bytes minus Type and Length (RFC 2865 §5)."""


def split_eap_message(packet: bytes) -> list[bytes]:
    """The EAP-Message values that carry ``packet`` (one empty value for an empty packet)."""
    if not packet:
        return [b""]
    return [
        packet[start : start + MAX_ATTRIBUTE_VALUE] for start in range(0, len(packet), MAX_ATTRIBUTE_VALUE)
    ]


def join_eap_message(values: Iterable[bytes]) -> bytes:
    """The EAP packet carried by consecutive EAP-Message values."""
    return b"".join(values)
