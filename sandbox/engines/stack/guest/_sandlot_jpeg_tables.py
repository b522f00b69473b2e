"""What the JPEG encoder and decoder share: ITU T.81's tables and the DCT as a matrix.

The example tables of Annex K (quantisation K.1/K.2, Huffman K.3-K.6) are what libjpeg
writes by default, and what nearly every JPEG in the wild carries; the quality scaling
is the IJG one, so ``quality=75`` gives the tables libjpeg would. Used by
``_sandlot_jpeg_encode`` and ``_sandlot_jpeg_decode``.
"""

from __future__ import annotations

import math

import numpy as np

# ZIGZAG[k] is the row-major (natural) index of the k-th coefficient in zigzag order.
ZIGZAG = np.array(
    sorted(
        range(64),
        key=lambda i: (
            i // 8 + i % 8,
            (i // 8) if (i // 8 + i % 8) % 2 else (i % 8),
        ),
    ),
    dtype=np.intp,
)

LUMA_QUANT = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int64,
).reshape(64)
CHROMA_QUANT = np.full((8, 8), 99, dtype=np.int64)
CHROMA_QUANT[:4, :4] = [
    [17, 18, 24, 47],
    [18, 21, 26, 66],
    [24, 26, 56, 99],
    [47, 66, 99, 99],
]
CHROMA_QUANT = CHROMA_QUANT.reshape(64)


def _ac_values(head: str) -> bytes:
    # Annex K lists each AC table's symbols by code length; past its first few dozen,
    # the rest of the 162 symbols (EOB, ZRL, run/size 0-15/1-10) follow in plain order.
    first = bytes.fromhex(head)
    every = {0x00, 0xF0, *(run << 4 | size for run in range(16) for size in range(1, 11))}
    return first + bytes(sorted(every - set(first)))


# (BITS, HUFFVAL) per table: BITS[i] codes of length i + 1, then the symbols in code order.
DC_LUMA = (bytes([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]), bytes(range(12)))
DC_CHROMA = (bytes([0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]), bytes(range(12)))
AC_LUMA = (
    bytes([0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D]),
    _ac_values(
        "01 02 03 00 04 11 05 12 21 31 41 06 13 51 61 07 22 71 14 32 81 91 a1 08 23 42"
        " b1 c1 15 52 d1 f0 24 33 62 72 82 09 0a"
    ),
)
AC_CHROMA = (
    bytes([0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77]),
    _ac_values(
        "00 01 02 03 11 04 05 21 31 06 12 41 51 07 61 71 13 22 32 81 08 14 42 91 a1 b1"
        " c1 09 23 33 52 f0 15 62 72 d1 0a 16 24 34 e1 25 f1 17 18 19 1a 26"
    ),
)

# DCT[u, x] = c(u) / 2 * cos((2x + 1) u pi / 16): the forward 2-D DCT of an 8x8 block
# f is DCT @ f @ DCT.T, the inverse DCT.T @ F @ DCT (A.3.3).
DCT = np.array(
    [
        [
            (math.sqrt(0.5) if u == 0 else 1.0) / 2 * math.cos((2 * x + 1) * u * math.pi / 16)
            for x in range(8)
        ]
        for u in range(8)
    ],
    dtype=np.float32,
)


def quality_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """The luminance and chrominance tables (natural order) for an IJG quality 1-100."""
    return scaled(LUMA_QUANT, quality_scale(quality)), scaled(CHROMA_QUANT, quality_scale(quality))


def quality_scale(quality: int) -> int:
    """IJG's percentage scale factor for a quality (out-of-range qualities clamp)."""
    quality = min(max(quality, 1), 100)
    return 5000 // quality if quality < 50 else 200 - 2 * quality


def scaled(table: np.ndarray, scale: int, baseline: bool = True) -> np.ndarray:
    """A table scaled by ``scale`` percent, rounded, within 1..255 (baseline) or 32767."""
    values = (np.asarray(table, dtype=np.int64) * scale + 50) // 100
    return np.clip(values, 1, 255 if baseline else 32767)


def code_table(bits: bytes, values: bytes) -> tuple[dict[int, tuple[int, int]], int]:
    """Canonical Huffman codes (Annex C): symbol -> (code, length), and the longest length.

    Raises ``ValueError`` for a table whose counts overflow their length (no prefix code).
    """
    codes: dict[int, tuple[int, int]] = {}
    code = 0
    k = 0
    longest = 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            if k >= len(values) or code >= 1 << length:
                raise ValueError("bad Huffman table")
            codes[values[k]] = (code, length)
            code += 1
            k += 1
            longest = length
        code <<= 1
    return codes, longest
