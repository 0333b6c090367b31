"""Small generated logos: a coin-coloured disc with a lighter rim, as a real PNG."""

from __future__ import annotations

import functools
import math
import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.lru_cache(maxsize=128)
def disc_png(rgb: tuple[int, int, int], size: int = 64) -> bytes:
    """An RGBA PNG of ``size`` pixels: a disc of ``rgb``, its edge anti-aliased, a rim lighter."""
    centre, radius = (size - 1) / 2, size / 2 - 1
    rim = tuple(min(255, c + (255 - c) // 2) for c in rgb)
    rows = bytearray()
    for y in range(size):
        rows.append(0)  # filter: none
        for x in range(size):
            distance = math.hypot(x - centre, y - centre)
            alpha = max(0.0, min(1.0, radius - distance + 0.5))
            colour = rim if radius - 5 < distance < radius - 2 else rgb
            rows.extend((*colour, round(alpha * 255)))
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _chunk(b"IEND", b"")
    )
