"""RFC 1662 asynchronous HDLC-like framing: flags, byte stuffing and FCS-16.

SSTP itself carries bare PPP frames. HDLC is only needed where a peer talks PPP over a byte stream, which is
how sstpc (``--nolaunchpppd``) exchanges PPP on its standard input; the interop harness wraps our PPP code
with this module.
"""

from __future__ import annotations

from pysstp.ppp.constants import (
    FCS16_GOOD,
    FCS16_INIT,
    FCS16_POLYNOMIAL,
    FCS16_SIZE,
    HDLC_DEFAULT_ACCM,
    HDLC_ESCAPE,
    HDLC_ESCAPE_XOR,
    HDLC_FLAG,
    MAX_MRU,
)

_BYTE_BITS = 8
_BYTE_MASK = 0xFF
_CONTROL_CHARACTERS = 0x20
"""Bytes below this value are escaped when their bit in the ACCM is set."""

MIN_HDLC_FRAME = 4
"""Shortest acceptable frame between flags after unescaping, FCS included (RFC 1662 §4.3)."""

MAX_HDLC_FRAME = MAX_MRU + FCS16_SIZE
"""Longest frame we keep: anything bigger would not fit into an SSTP data packet anyway."""


def _fcs16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        value = byte
        for _ in range(_BYTE_BITS):
            value = (value >> 1) ^ FCS16_POLYNOMIAL if value & 1 else value >> 1
        table.append(value)
    return tuple(table)


_FCS16_TABLE = _fcs16_table()


def fcs16(data: bytes, fcs: int = FCS16_INIT) -> int:
    """RFC 1662 §C.2 FCS-16 of ``data``, continuing from ``fcs``.

    Over a frame followed by its correct FCS (low byte first) the result is ``FCS16_GOOD`` (0xf0b8).
    """
    table = _FCS16_TABLE
    for byte in data:
        fcs = (fcs >> _BYTE_BITS) ^ table[(fcs ^ byte) & _BYTE_MASK]
    return fcs


def _escape_table(accm: int) -> tuple[bytes, ...]:
    """Wire form of every byte value under ``accm`` (flag and escape are always escaped)."""
    table = []
    for byte in range(256):
        escaped = byte in (HDLC_FLAG, HDLC_ESCAPE) or (byte < _CONTROL_CHARACTERS and accm >> byte & 1)
        table.append(bytes((HDLC_ESCAPE, byte ^ HDLC_ESCAPE_XOR)) if escaped else bytes((byte,)))
    return tuple(table)


_DEFAULT_ESCAPES = _escape_table(HDLC_DEFAULT_ACCM)


def hdlc_encode(frame: bytes, accm: int = HDLC_DEFAULT_ACCM) -> bytes:
    """Return ``7e`` + escaped (frame + FCS-16) + ``7e``."""
    fcs = fcs16(frame) ^ FCS16_INIT  # the FCS goes out complemented, low byte first (RFC 1662 §C.2)
    escapes = _DEFAULT_ESCAPES if accm == HDLC_DEFAULT_ACCM else _escape_table(accm)
    body = b"".join(escapes[byte] for byte in frame + fcs.to_bytes(FCS16_SIZE, "little"))
    flag = bytes((HDLC_FLAG,))
    return flag + body + flag


class HdlcDecoder:
    """Cuts an async HDLC byte stream into PPP frames (without FCS).

    Any escaping is accepted. Frames with a bad FCS, frames shorter than :data:`MIN_HDLC_FRAME`, aborted
    frames (``7d 7e``) and frames longer than ``max_frame`` are dropped and counted in :attr:`errors`; a
    frame that grows past ``max_frame`` is discarded up to the next flag, so garbage cannot grow memory.
    """

    def __init__(self, max_frame: int = MAX_HDLC_FRAME) -> None:
        self.max_frame = max_frame
        self.errors = 0
        self._frame = bytearray()
        self._escaped = False
        self._overflow = False

    def feed(self, data: bytes) -> list[bytes]:
        """Consume ``data`` and return every complete, valid frame it finished."""
        frames: list[bytes] = []
        chunks = data.split(bytes((HDLC_FLAG,)))
        for index, chunk in enumerate(chunks):
            self._append(chunk)
            if index < len(chunks) - 1:  # a flag followed this chunk
                frame = self._end_frame()
                if frame is not None:
                    frames.append(frame)
        return frames

    def _append(self, chunk: bytes) -> None:
        if self._overflow or not chunk:
            return
        if not self._escaped and HDLC_ESCAPE not in chunk:
            self._frame += chunk
        else:
            for byte in chunk:
                if self._escaped:
                    self._frame.append(byte ^ HDLC_ESCAPE_XOR)
                    self._escaped = False
                elif byte == HDLC_ESCAPE:
                    self._escaped = True
                else:
                    self._frame.append(byte)
        if len(self._frame) > self.max_frame:
            self._overflow = True
            self._frame.clear()

    def _end_frame(self) -> bytes | None:
        frame = bytes(self._frame)
        broken = self._overflow or self._escaped  # an escape right before a flag aborts the frame
        self._frame.clear()
        self._overflow = self._escaped = False
        if not frame and not broken:
            return None  # back-to-back flags (idle fill or shared flags) are not frames
        if broken or len(frame) < MIN_HDLC_FRAME or fcs16(frame) != FCS16_GOOD:
            self.errors += 1
            return None
        return frame[:-FCS16_SIZE]
