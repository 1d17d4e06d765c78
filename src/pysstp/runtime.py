"""Process-wide settings for the long-running commands (``pysstp server`` and ``pysstp connect``)."""

from __future__ import annotations

import gc


def freeze_start_up_objects() -> None:
    """Keep the cyclic garbage collector away from what start-up created.

    The modules, TLS libraries and settings loaded before the event loop starts are a few hundred
    thousand objects that live as long as the process. A full collection traverses them all, which here
    took about 20 ms: long enough for the TUN queue (500 packets) or a receiving socket to overflow at
    50 000 packets/s, so a steady UDP flow lost packets in bursts. Frozen, they are never traversed, and
    a full collection only visits what the sessions created since.
    """
    gc.collect()
    gc.freeze()
