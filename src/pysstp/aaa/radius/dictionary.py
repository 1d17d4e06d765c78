"""The RADIUS dictionary pysstp ships: the standard attributes it uses and Microsoft's (RFC 2548).

The file beside this module (``dictionary.pysstp``, FreeRADIUS format) is read once by pyrad; everything in
:mod:`pysstp.aaa.radius` and the Dynamic Authorization server encodes and decodes packets with it.
"""

from __future__ import annotations

import functools
from importlib import resources

from pyrad.dictionary import Dictionary

DICTIONARY_FILE = "dictionary.pysstp"
"""The package data file with the attribute definitions."""


@functools.cache
def radius_dictionary() -> Dictionary:
    """The shared pyrad :class:`~pyrad.dictionary.Dictionary` (read on first use)."""
    with resources.files(__package__).joinpath(DICTIONARY_FILE).open("r", encoding="ascii") as handle:
        return Dictionary(handle)
