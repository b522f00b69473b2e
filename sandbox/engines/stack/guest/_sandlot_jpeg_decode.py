"""A baseline JPEG decoder (ITU T.81 sequential DCT, Huffman, 8-bit) in Python and numpy.

:func:`decode` reads what libjpeg reads for Pillow in that class: 1, 3 or 4 components,
any integral sampling factors, interleaved or one scan per component, restart intervals,
JFIF/Adobe markers for the colour space (as libjpeg guesses it); and gives libjpeg's
pixels within 3 levels, 0.02 on average (a float IDCT against libjpeg's integer one; the
same "fancy" chroma upsampling and fixed-point YCbCr conversion). Progressive, lossless,
hierarchical, arithmetic-coded and 12-bit JPEGs raise ``OSError`` naming what isn't
supported.

Only the Huffman decoding is a Python loop (one pass over the scan's symbols, with
12-bit lookahead tables that decode a code and its value in one step); dequantisation,
the IDCT (two matrix products over slices of blocks), upsampling and colour conversion
(bands of rows) are whole-array work. Untrusted input: every loop is bounded by the
frame's block count, a bad code or an overrun raises ``OSError``, and memory follows the
frame size, which the caller checks against the size Pillow read (and its
decompression-bomb limit).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from _sandlot_jpeg_tables import AC_CHROMA, AC_LUMA, DC_CHROMA, DC_LUMA, DCT, ZIGZAG

LOOKAHEAD = 12
BAND_ROWS = 256  # output rows upsampled and colour-converted at once
# Where the k-th zigzag coefficient goes in a transposed block (the IDCT below takes
# blocks transposed), padded for runs past the end: those land on a spare slot and the
# block is refused (see _decode_scan).
_NATURAL_T = [int((z % 8) * 8 + z // 8) for z in ZIGZAG] + [64] * 17
_EOB_STEP = 100  # k jumps past 64: the block's loop ends
_UNSUPPORTED = {
    0xC2: "progressive",
    0xC3: "lossless",
    0xC5: "hierarchical (differential sequential)",
    0xC6: "hierarchical progressive",
    0xC7: "hierarchical lossless",
    0xC9: "arithmetic-coded",
    0xCA: "arithmetic-coded progressive",
    0xCB: "arithmetic-coded lossless",
    0xCD: "arithmetic-coded hierarchical",
    0xCE: "arithmetic-coded hierarchical progressive",
    0xCF: "arithmetic-coded hierarchical lossless",
}


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


class Frame:
    def __init__(self, segment: bytes) -> None:
        if len(segment) < 6:
            raise OSError("corrupt JPEG data: short frame header")
        self.precision = segment[0]
        self.height = segment[1] << 8 | segment[2]
        self.width = segment[3] << 8 | segment[4]
        count = segment[5]
        if self.precision != 8:
            raise OSError(f"{self.precision}-bit JPEGs are not supported (8-bit only)")
        if count not in (1, 3, 4) or len(segment) < 6 + 3 * count:
            raise OSError(f"JPEG with {count} components is not supported")
        if self.width == 0 or self.height == 0:
            raise OSError("JPEG without a size in its frame header (DNL) is not supported")
        self.ids: list[int] = []
        self.sampling: list[tuple[int, int]] = []
        self.tables: list[int] = []
        for i in range(count):
            ident, hv, table = segment[6 + 3 * i : 9 + 3 * i]
            if not (1 <= hv >> 4 <= 4 and 1 <= hv & 15 <= 4) or table > 3:
                raise OSError("corrupt JPEG data: bad component in frame header")
            self.ids.append(ident)
            self.sampling.append((hv >> 4, hv & 15))
            self.tables.append(table)
        self.hmax = max(h for h, _ in self.sampling)
        self.vmax = max(v for _, v in self.sampling)
        self.mcus_x = -(-self.width // (8 * self.hmax))
        self.mcus_y = -(-self.height // (8 * self.vmax))
        # Each component's block grid, padded to whole MCUs, and where it starts.
        self.grids = [(self.mcus_y * v, self.mcus_x * h) for h, v in self.sampling]
        self.offsets = []
        total = 0
        for rows, cols in self.grids:
            self.offsets.append(total)
            total += rows * cols * 64
        self.coefficients = total
        self.smallest_blocks = min(
            _ceil(_ceil(self.width * h, self.hmax), 8) * _ceil(_ceil(self.height * v, self.vmax), 8)
            for h, v in self.sampling
        )


class HuffmanTable:
    """A DHT table as lookahead tables: DC (bits, value), AC (bits, step, value)."""

    def __init__(self, bits: bytes, values: bytes) -> None:
        self.maxcode = [-1] * 17
        self.first = [0] * 17  # index in values of the first code of each length
        self.mincode = [0] * 17
        codes, lengths = [], []
        code = k = 0
        for length in range(1, 17):
            self.first[length], self.mincode[length] = k, code
            for _ in range(bits[length - 1]):
                if code >= 1 << length:
                    raise OSError("corrupt JPEG data: bad Huffman table")
                codes.append(code)
                lengths.append(length)
                code += 1
                k += 1
            self.maxcode[length] = code - 1 if bits[length - 1] else -1
            code <<= 1
        self.values = values
        self.codes, self.lengths = codes, lengths
        self._dc: list[tuple[int, int]] | None = None
        self._ac: list[tuple[int, int, int]] | None = None

    def slow(self, look16: int) -> tuple[int, int]:
        """(code length, symbol) for a code longer than the lookahead (F.2.2.3)."""
        for length in range(LOOKAHEAD + 1, 17):
            code = look16 >> (16 - length)
            if code <= self.maxcode[length]:
                return length, self.values[self.first[length] + code - self.mincode[length]]
        raise OSError("corrupt JPEG data: bad Huffman code")

    def _lookahead(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # For every LOOKAHEAD-bit window: the length and symbol of the code it starts
        # with (length 0: longer than the window, or no code), and the bits after it.
        length = np.zeros(1 << LOOKAHEAD, np.int64)
        symbol = np.zeros(1 << LOOKAHEAD, np.int64)
        for code, size, value in zip(self.codes, self.lengths, self.values, strict=False):
            if size <= LOOKAHEAD:
                start = code << (LOOKAHEAD - size)
                end = (code + 1) << (LOOKAHEAD - size)
                length[start:end] = size
                symbol[start:end] = value
        return length, symbol, np.arange(1 << LOOKAHEAD, dtype=np.int64)

    @staticmethod
    def _extend(window: np.ndarray, used: np.ndarray, size: np.ndarray) -> np.ndarray:
        # The value of the `size` bits after the code (F.2.2.1 EXTEND).
        raw = (window >> np.maximum(LOOKAHEAD - used - size, 0)) & ((1 << size) - 1)
        return np.where(raw < (1 << size) >> 1, raw - (1 << size) + 1, raw) * (size > 0)

    def dc(self) -> list[tuple[int, int]]:
        """Per window: (bits taken, value) when code and value fit; (-code length,
        size) when only the code does; (0, 0) when neither."""
        if self._dc is None:
            length, size, window = self._lookahead()
            size = np.minimum(size, 16)  # a corrupt table's sizes fail in the decoder
            fits = (length > 0) & (length + size <= LOOKAHEAD)
            value = self._extend(window, length, size)
            taken = np.where(fits, length + size, -length)
            second = np.where(fits, value, size)
            self._dc = list(zip(taken.tolist(), second.tolist(), strict=True))
        return self._dc

    def ac(self) -> list[tuple[int, int, int]]:
        """Per window: (bits taken, zigzag step, value) for a coefficient, ZRL or EOB
        whose code and value fit; (code length, 0, run/size) when only the code does;
        (0, 0, 0) when neither."""
        if self._ac is None:
            length, rs, window = self._lookahead()
            run, size = rs >> 4, rs & 15
            fits = (length > 0) & (length + size <= LOOKAHEAD)
            value = self._extend(window, length, size)
            # Size 0: ZRL for run 15, else EOB (libjpeg reads other runs as EOB too).
            step = np.where(size > 0, run + 1, np.where(run == 15, 16, _EOB_STEP))
            taken = np.where(fits, length + size, length)
            step = np.where(fits, step, 0)
            third = np.where(fits, value, rs)
            self._ac = list(zip(taken.tolist(), step.tolist(), third.tolist(), strict=True))
        return self._ac


def decode(
    data: bytes,
    mode: str,
    *,
    size: tuple[int, int] | None = None,
    scale: int = 1,
    truncated_ok: bool = False,
) -> np.ndarray:
    """The pixels of the JPEG ``data`` as height x width x channels uint8, in Pillow's
    ``mode`` ("L", "RGB", "YCbCr" or "CMYK", the latter as stored: Adobe's inverted
    values, Pillow's "CMYK;I"). ``scale`` 1, 2, 4 or 8 divides the size (Pillow's
    draft mode); ``size``: the (width, height) the result must have (the caller's: the
    frame is checked against it before any pixel memory is taken). A truncated scan
    raises ``OSError`` unless ``truncated_ok``, which leaves the missing blocks grey, as
    libjpeg does.
    """
    view = memoryview(data)
    if bytes(view[:2]) != b"\xff\xd8":
        raise OSError("not a JPEG file")
    quant: dict[int, np.ndarray] = {}
    huffman: dict[int, HuffmanTable] = {}
    frame: Frame | None = None
    coefficients: np.ndarray | None = None
    restart = 0
    adobe: int | None = None
    jfif = False
    scans = 0
    pos = 2
    end = len(data)
    while True:
        # Markers may be preceded by any number of 0xFF fill bytes (B.1.1.2).
        pos = data.find(b"\xff", pos)  # junk between segments, as libjpeg skips it
        if pos < 0:
            break
        while pos < end and data[pos] == 0xFF:
            pos += 1
        if pos >= end:
            break
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            break
        if 0xD0 <= marker <= 0xD7 or marker in (0x01, 0x00):
            continue
        if pos + 2 > end:
            break
        length = data[pos] << 8 | data[pos + 1]
        segment = bytes(view[pos + 2 : pos + length])
        if length < 2 or len(segment) < length - 2:
            break
        pos += length
        if marker in (0xC0, 0xC1):
            if frame is not None:
                raise OSError("JPEG with more than one frame is not supported")
            frame = Frame(segment)
            scaled = (_ceil(frame.width, scale), _ceil(frame.height, scale))
            if size is not None and scaled != size:
                raise OSError("corrupt JPEG data: frame size differs from the header read")
        elif marker in _UNSUPPORTED:
            raise OSError(
                f"{_UNSUPPORTED[marker]} JPEGs are not supported by this guest's JPEG "
                "decoder (baseline and extended sequential Huffman only)"
            )
        elif marker == 0xC4:
            _define_huffman(segment, huffman)
        elif marker == 0xDB:
            _define_quantisation(segment, quant)
        elif marker == 0xDD:
            if len(segment) < 2:
                raise OSError("corrupt JPEG data: short DRI segment")
            restart = segment[0] << 8 | segment[1]
        elif marker == 0xE0 and segment.startswith(b"JFIF\0"):
            jfif = True
        elif marker == 0xEE and segment.startswith(b"Adobe") and len(segment) >= 12:
            adobe = segment[11]
        elif marker == 0xDA:
            if frame is None:
                raise OSError("corrupt JPEG data: scan before frame header")
            if coefficients is None:
                # Every block takes 2 bits at least (a DC and an EOB code): a file far
                # too short for the size it claims is refused before the memory it
                # would take is taken (the bigger claims, Pillow's bomb check refuses).
                if (end - pos) * 4 < frame.smallest_blocks and not truncated_ok:
                    raise OSError("image file is truncated (too little data for its size)")
                coefficients = np.zeros(frame.coefficients + 64, np.int16)
            pos, complete = _decode_scan(data, pos, segment, frame, huffman, restart, coefficients)
            scans += 1
            if not complete:
                if not truncated_ok:
                    raise OSError("image file is truncated")
                break
    if frame is None or coefficients is None or scans == 0:
        if not truncated_ok:
            raise OSError("image file is truncated (no image data)")
        if frame is None or coefficients is None:
            raise OSError("cannot decode JPEG: no frame header")
    planes = _planes(frame, coefficients, quant)
    return _convert(frame, planes, mode, adobe, jfif, scale)


# Tables already turned into lookups: Annex K's, which nearly every file carries, made
# once with the module (in the snapshot), and those of files read in this run.
_TABLES: dict[bytes, HuffmanTable] = {}


def _table(bits: bytes, values: bytes) -> HuffmanTable:
    key = bits + values
    table = _TABLES.get(key)
    if table is None:
        table = HuffmanTable(bits, values)
        if len(_TABLES) < 64:
            _TABLES[key] = table
    return table


for _spec in (DC_LUMA, DC_CHROMA):
    _table(*_spec).dc()
for _spec in (AC_LUMA, AC_CHROMA):
    _table(*_spec).ac()


def _define_huffman(segment: bytes, huffman: dict[int, HuffmanTable]) -> None:
    at = 0
    while at < len(segment):
        if at + 17 > len(segment):
            raise OSError("corrupt JPEG data: short DHT segment")
        klass_index = segment[at]
        bits = segment[at + 1 : at + 17]
        count = sum(bits)
        if klass_index & 0xEC or count > 256 or at + 17 + count > len(segment):
            raise OSError("corrupt JPEG data: bad DHT segment")
        huffman[klass_index] = _table(bits, segment[at + 17 : at + 17 + count])
        at += 17 + count


def _define_quantisation(segment: bytes, quant: dict[int, np.ndarray]) -> None:
    at = 0
    while at < len(segment):
        precision, index = segment[at] >> 4, segment[at] & 15
        width = 2 if precision else 1
        if index > 3 or at + 1 + 64 * width > len(segment):
            raise OSError("corrupt JPEG data: bad DQT segment")
        raw = np.frombuffer(segment, ">u2" if width == 2 else np.uint8, 64, at + 1)
        table = np.zeros(64, np.float32)
        table[[int((z % 8) * 8 + z // 8) for z in ZIGZAG]] = raw  # transposed, natural
        quant[index] = table
        at += 1 + 64 * width


def _entropy_segment(data: bytes, pos: int) -> tuple[np.ndarray, list[int], int, bool]:
    """The scan's entropy-coded bytes from ``pos``: unstuffed, RST markers taken out;
    the byte offset where each restart interval after the first begins; where the next
    marker is; whether one was found (else the file ends inside the scan)."""
    raw = np.frombuffer(data, np.uint8, offset=pos)
    ff = np.flatnonzero(raw[:-1] == 0xFF)
    following = raw[ff + 1]
    is_marker = (following != 0) & ((following < 0xD0) | (following > 0xD7)) & (following != 0xFF)
    stops = ff[is_marker]
    found = len(stops) > 0
    stop = int(stops[0]) if found else len(raw)
    keep = ff < stop
    ff, following = ff[keep], following[keep]
    rst = ff[(following >= 0xD0) & (following <= 0xD7)]
    # Drop the 0x00 after each stuffed 0xFF and each RST marker's two bytes.
    drop = np.concatenate((ff[following == 0] + 1, rst, rst + 1))
    clean = np.delete(raw[:stop], drop)
    # An interval begins where its RST marker was, less the bytes dropped before it.
    starts = (rst - np.searchsorted(np.sort(drop), rst)).tolist()
    return clean, starts, pos + stop, found


def _decode_scan(
    data: bytes,
    pos: int,
    header: bytes,
    frame: Frame,
    huffman: dict[int, HuffmanTable],
    restart: int,
    coefficients: np.ndarray,
) -> tuple[int, bool]:
    """Decode one scan into ``coefficients``; (position after it, whether complete)."""
    count = header[0] if header else 0
    if not 1 <= count <= 4 or len(header) < 4 + 2 * count:
        raise OSError("corrupt JPEG data: bad scan header")
    slots: list[tuple[int, Any, Any, int]] = []
    members = []
    for i in range(count):
        ident, tables = header[1 + 2 * i], header[2 + 2 * i]
        if ident not in frame.ids:
            raise OSError("corrupt JPEG data: scan names an unknown component")
        c = frame.ids.index(ident)
        dc, ac = huffman.get(tables >> 4), huffman.get(0x10 | (tables & 15))
        if dc is None or ac is None:
            raise OSError("corrupt JPEG data: scan uses an undefined Huffman table")
        members.append((c, dc, ac))
    start, stop, approx = header[1 + 2 * count : 4 + 2 * count]
    if start != 0 or stop != 63 or approx != 0:
        raise OSError("corrupt JPEG data: sequential scan with spectral selection")

    # Each block of an MCU: its scan member, Huffman lookups and place in an MCU row.
    slots = []
    places = []  # (component offset, block row within the MCU row, its cols, x step, x)
    if count == 1:  # non-interleaved: one block an MCU, over the component's own size
        c, dc, ac = members[0]
        h, v = frame.sampling[c]
        across = _ceil(_ceil(frame.width * h, frame.hmax), 8)
        rows = _ceil(_ceil(frame.height * v, frame.vmax), 8)
        slots.append((0, dc.dc(), ac.ac()))
        places.append((frame.offsets[c], 1, 0, frame.grids[c][1], 1, 0))
    else:
        if sum(frame.sampling[c][0] * frame.sampling[c][1] for c, _, _ in members) > 10:
            raise OSError("corrupt JPEG data: more than 10 blocks in an MCU")
        across, rows = frame.mcus_x, frame.mcus_y
        for slot, (c, dc, ac) in enumerate(members):
            h, v = frame.sampling[c]
            for by in range(v):
                for bx in range(h):
                    slots.append((slot, dc.dc(), ac.ac()))
                    places.append((frame.offsets[c], v, by, frame.grids[c][1], h, bx))
    steps = np.arange(across, dtype=np.int64)

    def row_bases(row: int) -> list[list[int]]:
        # Where each block of each MCU in the row starts in ``coefficients``.
        return np.stack(
            [
                offset + ((row * v + by) * cols + steps * h + bx) * 64
                for offset, v, by, cols, h, bx in places
            ],
            axis=1,
        ).tolist()

    clean, restarts, after, found = _entropy_segment(data, pos)
    nbits = len(clean) * 8
    # 32-bit windows from each byte; zeros past the end (a block reads at most 64
    # codes of 27 bits: an MCU of 10 blocks stays inside the padding).
    padded = np.concatenate((clean, np.zeros(4096, np.uint8))).astype(np.uint32)
    windows = padded[:-3] << 24 | padded[1:-2] << 16 | padded[2:-1] << 8 | padded[3:]
    w = memoryview(windows)
    out = memoryview(coefficients)
    natural = _NATURAL_T
    shift_small = 32 - LOOKAHEAD
    mask_small = (1 << LOOKAHEAD) - 1
    pred = [0] * len(members)
    p = 0
    limit = restarts[0] * 8 if restarts else nbits
    interval = 0
    left = restart or rows * across + 1
    try:
        for row in range(rows):
            for bases in row_bases(row):
                if left == 0:
                    # The next interval begins at its marker's place, DC predictions at 0.
                    if interval >= len(restarts):
                        raise OSError("corrupt JPEG data: restart marker missing")
                    p = restarts[interval] * 8
                    interval += 1
                    limit = restarts[interval] * 8 if interval < len(restarts) else nbits
                    pred = [0] * len(members)
                    left = restart
                left -= 1
                for (slot, dcl, acl), base in zip(slots, bases, strict=True):
                    n, v = dcl[(w[p >> 3] >> (shift_small - (p & 7))) & mask_small]
                    if n > 0:  # code and value in the lookahead
                        p += n
                    else:
                        if n < 0:  # the code in it, v its value's size
                            p -= n
                        else:
                            n, v = members[slot][1].slow((w[p >> 3] >> (16 - (p & 7))) & 0xFFFF)
                            p += n
                        if v:
                            x = ((w[p >> 3] >> (16 - (p & 7))) & 0xFFFF) >> (16 - v)
                            p += v
                            v = x if x >= 1 << (v - 1) else x - (1 << v) + 1
                    pred[slot] += v
                    out[base] = pred[slot]
                    k = 1
                    while k < 64:
                        n, step, v = acl[(w[p >> 3] >> (shift_small - (p & 7))) & mask_small]
                        if step:
                            p += n
                            k += step
                            if v:
                                out[base + natural[k - 1]] = v
                            continue
                        if n == 0:
                            n, v = members[slot][2].slow((w[p >> 3] >> (16 - (p & 7))) & 0xFFFF)
                        p += n
                        k += v >> 4
                        s = v & 15
                        if s:
                            x = ((w[p >> 3] >> (16 - (p & 7))) & 0xFFFF) >> (16 - s)
                            p += s
                            out[base + natural[k]] = x if x >= 1 << (s - 1) else x - (1 << s) + 1
                            k += 1
                        elif v >> 4 == 15:
                            k += 1
                        else:
                            k = _EOB_STEP
                    if 64 < k < _EOB_STEP:
                        raise OSError("corrupt JPEG data: coefficients past the end of a block")
                if p > limit:
                    if p > nbits and interval >= len(restarts) and not found:
                        return after, False
                    raise OSError("corrupt JPEG data: a restart interval overruns its data")
    except (
        ValueError,
        OverflowError,
        IndexError,
    ) as exc:  # int16 overflow, bad indices
        raise OSError("corrupt JPEG data") from exc
    return after, True


def _planes(
    frame: Frame, coefficients: np.ndarray, quant: dict[int, np.ndarray]
) -> list[np.ndarray]:
    """Each component's samples (uint8), cropped to its size (A.1.1)."""
    planes = []
    for c, ((_, cols), offset) in enumerate(zip(frame.grids, frame.offsets, strict=True)):
        table = quant.get(frame.tables[c])
        if table is None:
            raise OSError("corrupt JPEG data: undefined quantisation table")
        h, v = frame.sampling[c]
        width = -(-frame.width * h // frame.hmax)
        height = -(-frame.height * v // frame.vmax)
        used_rows = -(-height // 8)
        plane = np.empty((used_rows * 8, cols * 8), np.uint8)
        step = max(1, (1 << 14) // cols)  # block rows at once: 4 MB float arrays
        for top in range(0, used_rows, step):
            bottom = min(top + step, used_rows)
            blocks = coefficients[offset + top * cols * 64 : offset + bottom * cols * 64]
            spectra = (blocks.reshape(-1, 64).astype(np.float32) * table).reshape(-1, 8)
            # Blocks are stored transposed: F.T @ DCT, then the same on its transpose,
            # is DCT.T @ F @ DCT, the sample block (A.3.3).
            half = (spectra @ DCT).reshape(-1, 8, 8).swapaxes(1, 2)
            samples = (half.reshape(-1, 8) @ DCT).reshape(bottom - top, cols, 8, 8)
            samples = np.clip(np.rint(samples + 128.0), 0, 255).astype(np.uint8)
            plane[top * 8 : bottom * 8] = samples.swapaxes(1, 2).reshape(-1, cols * 8)
        planes.append(plane[:height, :width])
    return planes


def _upsample(plane: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """libjpeg's upsampling: the triangle ("fancy") filter for factors of 2, repeats
    otherwise; integer arithmetic with its rounding, so the same samples give the same
    pixels."""
    x = plane.astype(np.int32)
    if fy == 2 and fx == 2:
        above = np.concatenate((x[:1], x[:-1]))
        below = np.concatenate((x[1:], x[-1:]))
        near = np.empty((2 * x.shape[0], x.shape[1]), np.int32)
        near[0::2] = 3 * x + above
        near[1::2] = 3 * x + below
        left = np.concatenate((near[:, :1], near[:, :-1]), axis=1)
        right = np.concatenate((near[:, 1:], near[:, -1:]), axis=1)
        out = np.empty((near.shape[0], 2 * near.shape[1]), np.int32)
        out[:, 0::2] = (3 * near + left + 8) >> 4
        out[:, 1::2] = (3 * near + right + 7) >> 4
        return out.astype(np.uint8)
    if fx == 2 and fy == 1:
        left = np.concatenate((x[:, :1], x[:, :-1]), axis=1)
        right = np.concatenate((x[:, 1:], x[:, -1:]), axis=1)
        out = np.empty((x.shape[0], 2 * x.shape[1]), np.int32)
        out[:, 0::2] = (3 * x + left + 1) >> 2
        out[:, 1::2] = (3 * x + right + 2) >> 2
        return out.astype(np.uint8)
    if fy == 2 and fx == 1:
        above = np.concatenate((x[:1], x[:-1]))
        below = np.concatenate((x[1:], x[-1:]))
        out = np.empty((2 * x.shape[0], x.shape[1]), np.int32)
        out[0::2] = (3 * x + above + 1) >> 2
        out[1::2] = (3 * x + below + 2) >> 2
        return out.astype(np.uint8)
    return np.repeat(np.repeat(plane, fy, axis=0), fx, axis=1)


def _convert(
    frame: Frame,
    planes: list[np.ndarray],
    mode: str,
    adobe: int | None,
    jfif: bool,
    scale: int,
) -> np.ndarray:
    """The pixels in ``mode``: components upsampled and converted a band of rows at a time
    (their int32 temporaries stay small for large images)."""
    for h, v in frame.sampling:
        if frame.hmax % h or frame.vmax % v:
            raise OSError("JPEG with fractional sampling ratios is not supported")
    # The colour space as libjpeg guesses it (jdapimin.c): JFIF or Adobe first, then
    # the component ids.
    count = len(planes)
    if count == 3:
        if jfif:
            space = "YCbCr"
        elif adobe is not None:
            space = "RGB" if adobe == 0 else "YCbCr"
        else:
            space = "RGB" if frame.ids == [ord("R"), ord("G"), ord("B")] else "YCbCr"
    elif count == 4:
        space = "YCCK" if adobe == 2 else "CMYK"
    else:
        space = "L"
    convert = _CONVERSIONS.get((space, mode))
    if convert is None:
        raise OSError(f"cannot decode a {space} JPEG as {mode}")
    channels = {"L": 1, "RGB": 3, "YCbCr": 3, "CMYK": 4}[mode]
    out = np.empty((frame.height, frame.width, channels), np.uint8)
    band = BAND_ROWS // frame.vmax * frame.vmax
    for top in range(0, frame.height, band):
        bottom = min(top + band, frame.height)
        full = [_band(frame, c, plane, top, bottom) for c, plane in enumerate(planes)]
        out[top:bottom] = convert(full)
    return _reduced(out, scale) if scale > 1 else out


def _band(frame: Frame, c: int, plane: np.ndarray, top: int, bottom: int) -> np.ndarray:
    """Rows ``top`` to ``bottom`` of component ``c`` at full size (``top`` a multiple of
    the largest vertical sampling factor)."""
    h, v = frame.sampling[c]
    fy, fx = frame.vmax // v, frame.hmax // h
    first, last = top // fy, -(-bottom // fy)
    if fy == 1 and fx == 1:
        return plane[first:last, : frame.width]
    # One more row each side where there is one: the filter's neighbours.
    above, below = max(first - 1, 0), min(last + 1, plane.shape[0])
    up = _upsample(plane[above:below], fy, fx)
    skip = (first - above) * fy
    return up[skip : skip + bottom - top, : frame.width]


# libjpeg's YCbCr -> RGB (jdcolor.c): JFIF's factors in 16-bit fixed point, per-value
# tables, so the same samples give the same pixels.
_CHROMA = np.arange(256, dtype=np.int32) - 128
_CR_R = (91881 * _CHROMA + 32768) >> 16  # 1.40200
_CB_B = (116130 * _CHROMA + 32768) >> 16  # 1.77200
_CR_G = -46802 * _CHROMA  # -0.71414
_CB_G = -22554 * _CHROMA + 32768  # -0.34414, with the rounding half


def _rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    luma = y.astype(np.int32)
    out = np.empty((*y.shape, 3), np.uint8)
    out[:, :, 0] = np.clip(luma + _CR_R[cr], 0, 255)
    out[:, :, 1] = np.clip(luma + ((_CB_G[cb] + _CR_G[cr]) >> 16), 0, 255)
    out[:, :, 2] = np.clip(luma + _CB_B[cb], 0, 255)
    return out


def _from_rgb(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float32)
    r, g, b = x[:, :, 0], x[:, :, 1], x[:, :, 2]
    ycc = np.stack(
        (
            0.299 * r + 0.587 * g + 0.114 * b,
            -0.168735892 * r - 0.331264108 * g + 0.5 * b + 128.0,
            0.5 * r - 0.418687589 * g - 0.081312411 * b + 128.0,
        ),
        axis=2,
    )
    return np.clip(np.rint(ycc), 0, 255).astype(np.uint8)


def _gray(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float32)
    gray = 0.299 * x[:, :, 0] + 0.587 * x[:, :, 1] + 0.114 * x[:, :, 2]
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)


def _reduced(pixels: np.ndarray, scale: int) -> np.ndarray:
    # Draft mode: libjpeg decodes at 1/scale with a reduced IDCT; the mean of each
    # scale x scale cell is what that approximates.
    height, width = pixels.shape[:2]
    rows, cols = -(-height // scale), -(-width // scale)
    padded = np.pad(
        pixels,
        ((0, rows * scale - height), (0, cols * scale - width), (0, 0)),
        mode="edge",
    )
    cells = padded.reshape(rows, scale, cols, scale, -1).astype(np.float32)
    return np.rint(cells.mean(axis=(1, 3))).astype(np.uint8)


def _stacked(full: list[np.ndarray]) -> np.ndarray:
    return np.stack(full, axis=2)


_CONVERSIONS = {
    ("L", "L"): _stacked,
    ("YCbCr", "L"): lambda full: full[0][:, :, None],
    ("RGB", "L"): lambda full: _gray(np.stack(full, axis=2))[:, :, None],
    ("L", "RGB"): lambda full: np.repeat(full[0][:, :, None], 3, axis=2),
    ("L", "YCbCr"): lambda full: np.repeat(full[0][:, :, None], 3, axis=2),
    ("RGB", "RGB"): _stacked,
    ("YCbCr", "YCbCr"): _stacked,
    ("YCbCr", "RGB"): lambda full: _rgb(full[0], full[1], full[2]),
    ("RGB", "YCbCr"): lambda full: _from_rgb(np.stack(full, axis=2)),
    ("CMYK", "CMYK"): _stacked,
    # libjpeg: CMY = 255 - RGB of the YCC part, K as it is.
    ("YCCK", "CMYK"): lambda full: np.concatenate(
        (255 - _rgb(full[0], full[1], full[2]), full[3][:, :, None]), axis=2
    ),
}
