"""Real, tiny PNG images for the emulator's image generation: deterministic from the prompt.

Only the standard library is used (zlib + struct). The picture is a two-colour diagonal gradient
whose colours come from a hash of the prompt and the image index, so the same request always yields
the same bytes and different prompts yield visibly different images.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_COLOR_TYPE_RGB = 2
_MAX_SIDE = 4096


@dataclass(frozen=True)
class PngHeader:
    """The facts of a PNG's IHDR chunk."""

    width: int
    height: int
    bit_depth: int
    color_type: int


def render_png(prompt: str, *, width: int = 64, height: int = 64, index: int = 0) -> bytes:
    """An 8-bit RGB PNG of `width` x `height` pixels: a gradient seeded by `prompt` and `index`."""
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):
        raise ValueError(f"image size {width}x{height} is outside 1..{_MAX_SIDE} pixels per side")
    digest = hashlib.sha256(f"{index}\0{prompt}".encode()).digest()
    start, end = digest[0:3], digest[3:6]
    span = max(width + height - 2, 1)
    # A pixel's colour depends on x + y only: one colour per diagonal, each scanline a slice of them
    # (full-size 1024x1024 images in milliseconds, not seconds).
    diagonal = [
        bytes(round(a + (b - a) * (k / span)) for a, b in zip(start, end, strict=True)) for k in range(width + height - 1)
    ]
    rows = b"".join(b"\x00" + b"".join(diagonal[y : y + width]) for y in range(height))  # filter "None" per line
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPE_RGB, 0, 0, 0)
    return (
        PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows, 6)) + _chunk(b"IEND", b"")
    )


def read_png_header(data: bytes) -> PngHeader:
    """Check the PNG signature and the IHDR chunk (and its CRC); ValueError when not a PNG."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG: the 8-byte signature is missing")
    if len(data) < 33:
        raise ValueError("not a PNG: too short to hold an IHDR chunk")
    length, kind = struct.unpack(">I4s", data[8:16])
    if kind != b"IHDR" or length != 13:
        raise ValueError("not a PNG: the first chunk is not a 13-byte IHDR")
    body = data[16:29]
    (crc,) = struct.unpack(">I", data[29:33])
    if crc != zlib.crc32(kind + body):
        raise ValueError("not a PNG: the IHDR checksum does not match")
    width, height, bit_depth, color_type = struct.unpack(">IIBB", body[:10])
    return PngHeader(width=width, height=height, bit_depth=bit_depth, color_type=color_type)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
