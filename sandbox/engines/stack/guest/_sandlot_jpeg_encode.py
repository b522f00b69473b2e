"""A baseline JPEG encoder (ITU T.81, sequential DCT, Huffman, 8-bit) in numpy.

:func:`encode` writes what libjpeg writes for Pillow's options: the same markers in the
same order (JFIF or Adobe, Pillow's EXIF/extra/comment, DQT, SOF, DHT, DRI, SOS), IJG
quality tables, Annex K Huffman tables (or optimal ones, K.2, when asked) and libjpeg's
sampling factors. Every stage is whole-array work: colour conversion, downsampling, the
DCT as two matrix products per block, quantisation and zigzag; the entropy coder finds
each block's nonzero runs with ``np.nonzero``, looks up every code at once, and places
each code in the bitstream with a weighted ``np.bincount`` over byte positions (fields
never share a bit, so their sum is their OR). Colour conversion and the DCT go in strips
of MCU rows and the entropy coding in chunks of blocks (carrying the partial byte, the
restart count and the DC predictions), so only the int16 coefficients are held whole: a
6-megapixel photo takes about 66 MB.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from _sandlot_jpeg_tables import (
    AC_CHROMA,
    AC_LUMA,
    DC_CHROMA,
    DC_LUMA,
    DCT,
    ZIGZAG,
    code_table,
    quality_scale,
    quality_tables,
    scaled,
)

CHUNK_BLOCKS = 1 << 14  # blocks entropy-coded at once: bounds the event arrays
MAX_DIMENSION = 65500  # libjpeg's limit, below the format's 65535
# Pixels colour-converted and transformed at once: bounds the float temporaries.
STRIP_PIXELS = 1 << 20
_ZIGZAG_T = (ZIGZAG % 8) * 8 + ZIGZAG // 8  # zigzag order read from a transposed block
_SAMPLING = {0: (1, 1), 1: (2, 1), 2: (2, 2)}  # Pillow's subsampling -> luma (h, v)


class Component:
    """One colour component as the frame header names it."""

    def __init__(self, ident: int, h: int, v: int, table: int) -> None:
        self.ident, self.h, self.v = ident, h, v
        # Quantisation and Huffman tables: libjpeg's choice, luma's for all but chroma.
        self.table = self.huffman = table


def encode(
    pixels: np.ndarray,
    colorspace: str,
    *,
    quality: int = -1,
    subsampling: int = -1,
    qtables: list[list[int]] | None = None,
    dpi: tuple[int, int] = (0, 0),
    restart_blocks: int = 0,
    restart_rows: int = 0,
    optimize: bool = False,
    keep_rgb: bool = False,
    streamtype: int = 0,
    comment: bytes | None = None,
    extra: bytes = b"",
    exif: bytes = b"",
) -> bytes:
    """The JPEG file for ``pixels`` (height x width x components, uint8).

    ``colorspace`` is "L", "RGB", "YCbCr" or "CMYK" (stored as given: Pillow hands over
    CMYK inverted, as Adobe writes it); the options are Pillow's (JpegImagePlugin's
    ``encoderconfig``). Raises ``OSError`` for what libjpeg refuses (too large an image,
    subsampling with ``keep_rgb``).
    """
    height, width = pixels.shape[:2]
    if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
        raise OSError(f"JPEG images are 1 to {MAX_DIMENSION} pixels a side, not {width}x{height}")
    components, transform = _components(colorspace, subsampling, keep_rgb)
    tables = _quant_tables(quality, qtables)
    if qtables is not None:  # Pillow gives the n-th table to the n-th component
        for index, component in enumerate(components):
            component.table = min(index, len(tables) - 1)
    huffman = [c.huffman for c in components]

    out = [b"\xff\xd8"]
    has_dpi = dpi[0] > 0 and dpi[1] > 0
    if transform is None or has_dpi:  # libjpeg: JFIF for YCbCr and grey, Pillow: for dpi
        unit, xd, yd = (1, min(dpi[0], 65535), min(dpi[1], 65535)) if has_dpi else (0, 1, 1)
        out.append(
            _segment(0xE0, b"JFIF\0\x01\x01" + bytes([unit]) + _u16(xd) + _u16(yd) + b"\0\0")
        )
    if transform is not None:
        out.append(_segment(0xEE, b"Adobe" + _u16(100) + _u16(0) + _u16(0) + bytes([transform])))
    if streamtype == 1:  # tables only, as jpeg_write_tables writes them
        out = [b"\xff\xd8", _dqt(dict(enumerate(tables[:2])))]
        out += [
            _dht(0x00, DC_LUMA),
            _dht(0x10, AC_LUMA),
            _dht(0x01, DC_CHROMA),
            _dht(0x11, AC_CHROMA),
        ]
        return b"".join([*out, b"\xff\xd9"])
    if exif:
        out.append(_segment(0xE1, exif))
    if extra and streamtype != 2:
        out.append(extra)
    if comment:
        out.append(_segment(0xFE, comment))

    coefficients, mcus_per_row = _coefficients(pixels, colorspace, keep_rgb, components, tables)
    interval = restart_blocks
    if restart_rows > 0:
        interval = restart_rows * mcus_per_row
    interval = min(max(interval, 0), 65535)
    slots = np.array([i for i, c in enumerate(components) for _ in range(c.h * c.v)])
    coder = _Coder(coefficients, slots, np.array(huffman)[slots], interval)
    specs = [DC_LUMA, DC_CHROMA, AC_LUMA, AC_CHROMA]
    if optimize:  # libjpeg's two passes: the symbols' counts make the tables
        counts = sum(
            np.bincount(table.astype(np.int64) * 256 + symbol, minlength=4 * 256)
            for table, symbol, *_ in coder.chunks()
        )
        for t in set(huffman):
            specs[t] = _optimal(counts[t * 256 : t * 256 + 256])
            specs[2 + t] = _optimal(counts[(2 + t) * 256 : (3 + t) * 256])
    scan = _Bitstream(specs, interval)
    for events in coder.chunks():
        scan.write(*events)

    used_tables = sorted({c.table for c in components})
    if streamtype != 2:
        out.append(_dqt({t: tables[t] for t in used_tables}))
    extended = any(int(tables[t].max()) > 255 for t in used_tables)
    frame = _u16(height) + _u16(width) + bytes([len(components)])
    for c in components:
        frame += bytes([c.ident, c.h << 4 | c.v, c.table])
    out.append(_segment(0xC1 if extended else 0xC0, b"\x08" + frame))
    if streamtype != 2:
        for t in sorted(set(huffman)):
            out.append(_dht(t, specs[t]))
            out.append(_dht(0x10 | t, specs[2 + t]))
    if interval:
        out.append(_segment(0xDD, _u16(interval)))
    header = bytes([len(components)])
    for c, t in zip(components, huffman, strict=True):
        header += bytes([c.ident, t << 4 | t])
    out.append(_segment(0xDA, header + b"\x00\x3f\x00"))
    out.extend(scan.parts)
    out.append(b"\xff\xd9")
    return b"".join(out)


def _components(
    colorspace: str, subsampling: int, keep_rgb: bool
) -> tuple[list[Component], int | None]:
    """The frame's components and the Adobe transform flag (None: no Adobe marker)."""
    if colorspace == "L":
        return [Component(1, 1, 1, 0)], None
    if colorspace == "CMYK":
        components = [Component(ord(n), 1, 1, 0) for n in "CMYK"]
        transform: int | None = 0
    elif colorspace == "RGB" and keep_rgb:
        if subsampling not in (-1, 0):
            raise OSError("subsampling can't be used with keep_rgb")
        return [Component(ord(n), 1, 1, 0) for n in "RGB"], 0
    elif colorspace in ("RGB", "YCbCr"):
        components = [
            Component(1, 2, 2, 0),
            Component(2, 1, 1, 1),
            Component(3, 1, 1, 1),
        ]
        transform = None
    else:
        raise OSError(f"cannot write mode {colorspace} as JPEG")
    if subsampling in _SAMPLING:  # Pillow sets the first three components, as here
        components[0].h, components[0].v = _SAMPLING[subsampling]
        components[1].h = components[1].v = components[2].h = components[2].v = 1
    return components, transform


def _quant_tables(quality: int, qtables: list[list[int]] | None) -> list[np.ndarray]:
    if qtables is not None:
        # Pillow scales given tables by the quality when there is one (baseline limits),
        # else keeps them as they are (up to 16-bit values).
        scale = quality_scale(quality if quality != -1 else 50)
        return [scaled(np.array(t), scale, baseline=quality != -1) for t in qtables]
    return list(quality_tables(75 if quality == -1 else quality))


def _coefficients(
    pixels: np.ndarray,
    colorspace: str,
    keep_rgb: bool,
    components: list[Component],
    tables: list[np.ndarray],
) -> tuple[np.ndarray, int]:
    """Quantised coefficients in coding order (MCUs x blocks per MCU x 64, zigzag, int16),
    and the number of MCUs a row."""
    height, width = pixels.shape[:2]
    hmax = max(c.h for c in components)
    vmax = max(c.v for c in components)
    mcu_w, mcu_h = 8 * hmax, 8 * vmax
    mcus_x = -(-width // mcu_w)
    mcus_y = -(-height // mcu_h)
    padded_w = mcus_x * mcu_w
    rows_per_strip = max(1, STRIP_PIXELS // (padded_w * mcu_h))
    # The DCT below yields each block transposed: the divisors and the zigzag follow.
    divisors = [tables[c.table].reshape(8, 8).T.reshape(64).astype(np.float32) for c in components]
    convert = colorspace == "RGB" and not keep_rgb
    strips = []
    for first in range(0, mcus_y, rows_per_strip):
        last = min(first + rows_per_strip, mcus_y)
        top, bottom = first * mcu_h, last * mcu_h
        strip = pixels[top : min(bottom, height)]
        # Edge pixels repeated to whole MCUs, as libjpeg does (cheaper than zeros).
        strip = np.pad(
            strip,
            ((0, bottom - top - strip.shape[0]), (0, padded_w - width), (0, 0)),
            mode="edge",
        ).astype(np.float32)
        planes = _ycbcr(strip) if convert else [strip[:, :, i] for i in range(strip.shape[2])]
        per_mcu = []
        for c, plane, divisor in zip(components, planes, divisors, strict=True):
            plane = _downsampled(plane, vmax // c.v, hmax // c.h)
            rows, cols = plane.shape
            blocks = (plane - 128.0).reshape(rows // 8, 8, cols // 8, 8).swapaxes(1, 2)
            # DCT @ f @ DCT.T as two plain matrix products over all blocks' rows: f @
            # DCT.T, then the same on the transposed result, which leaves F transposed.
            half = (blocks.reshape(-1, 8) @ DCT.T).reshape(-1, 8, 8).swapaxes(1, 2)
            transformed = (half.reshape(-1, 8) @ DCT.T).reshape(-1, 64)
            quantised = np.rint(transformed / divisor).astype(np.int16)
            zigzag = quantised[:, _ZIGZAG_T].reshape(rows // 8, cols // 8, 64)
            # (MCU rows, v, MCUs, h, 64) -> (MCUs, v * h, 64): each MCU's blocks together.
            mcu_rows = rows // 8 // c.v
            shaped = zigzag.reshape(mcu_rows, c.v, mcus_x, c.h, 64).transpose(0, 2, 1, 3, 4)
            per_mcu.append(shaped.reshape(mcu_rows * mcus_x, c.v * c.h, 64))
        strips.append(np.concatenate(per_mcu, axis=1))
    return np.concatenate(strips), mcus_x


def _downsampled(plane: np.ndarray, fy: int, fx: int) -> np.ndarray:
    # The mean of each fy x fx cell, as sums of strided views (no reduction machinery).
    if fy == 1 and fx == 1:
        return plane
    total = sum(plane[i::fy, j::fx] for i in range(fy) for j in range(fx))
    return total * np.float32(1.0 / (fy * fx))


def _ycbcr(rgb: np.ndarray) -> list[np.ndarray]:
    # JFIF's conversion (T.871), on floats: libjpeg's integer tables round the same way.
    r, g, b = rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168735892 * r - 0.331264108 * g + 0.5 * b + 128.0
    cr = 0.5 * r - 0.418687589 * g - 0.081312411 * b + 128.0
    return [y, cb, cr]


def _bit_lengths(values: np.ndarray) -> np.ndarray:
    """SSSS of each value: the bits of its magnitude (0 for 0)."""
    return np.frexp(np.abs(values).astype(np.float64))[1].astype(np.int64)


class _Coder:
    """The scan's Huffman events, a chunk of MCUs at a time (bounded temporaries)."""

    def __init__(
        self,
        coefficients: np.ndarray,
        slots: np.ndarray,
        huffman: np.ndarray,
        interval: int,
    ) -> None:
        self.coefficients, self.huffman, self.interval = coefficients, huffman, interval
        mcus, per_mcu, _ = coefficients.shape
        # DC: differences from the previous block of the same component, 0 at each
        # restart (whole-scan, one value a block).
        dc = coefficients[:, :, 0].astype(np.int32)
        self.dc = np.empty_like(dc)
        mcu_interval = np.arange(mcus) // interval if interval else np.zeros(mcus, np.int64)
        restarted = np.concatenate(([True], mcu_interval[1:] != mcu_interval[:-1]))
        for component in np.unique(slots):
            columns = np.flatnonzero(slots == component)
            values = dc[:, columns].reshape(-1)  # coding order within the component
            previous = np.concatenate(([0], values[:-1])).reshape(mcus, len(columns))
            previous[restarted, 0] = 0
            self.dc[:, columns] = values.reshape(mcus, len(columns)) - previous
        self.step = max(1, CHUNK_BLOCKS // per_mcu)
        if interval:  # whole intervals a chunk where they are short
            self.step = max(interval, self.step // interval * interval)

    def chunks(self) -> Iterator[tuple[np.ndarray, ...]]:
        """Per chunk, per event: table 0-3 (DC luma/chroma, AC luma/chroma), symbol,
        extra bit count, extra bits, restart interval number; then the chunk's first
        and last MCU (exclusive) and whether it ends the scan."""
        mcus = self.coefficients.shape[0]
        for first in range(0, mcus, self.step):
            last = min(first + self.step, mcus)
            yield (*self._events(first, last), first, last, last == mcus)

    def _events(self, first: int, last: int) -> tuple[np.ndarray, ...]:
        chunk = self.coefficients[first:last]
        mcus, per_mcu, _ = chunk.shape
        count = mcus * per_mcu
        blocks = chunk.reshape(count, 64)
        block_table = np.tile(self.huffman, mcus)
        mcu = first + np.arange(count) // per_mcu
        block_interval = mcu // self.interval if self.interval else np.zeros(count, np.int64)

        diff = self.dc[first:last].reshape(count)
        dc_size = _bit_lengths(diff)
        events = [
            (
                np.arange(count, dtype=np.int64) * 128,
                block_table,
                dc_size,
                dc_size,
                _amplitude(diff, dc_size),
            )
        ]
        # AC: each nonzero coefficient with the zeros before it; ZRL for each 16 of them.
        block, index = np.nonzero(blocks[:, 1:])
        position = index + 1
        values = blocks[block, position].astype(np.int32)
        first_in_block = np.concatenate(([True], block[1:] != block[:-1]))
        previous = np.concatenate(([0], position[:-1]))
        previous[first_in_block] = 0
        run = position - previous - 1
        size = _bit_lengths(values)
        ac_table = 2 + block_table[block]
        events.append(
            (
                block * 128 + 2 * position,
                ac_table,
                (run & 15) << 4 | size,
                size,
                _amplitude(values, size),
            )
        )
        zrl_count = run >> 4
        if zrl_count.any():
            repeat = np.repeat(np.arange(len(run)), zrl_count)
            zeros = np.zeros(len(repeat), np.int64)
            events.append(
                (
                    block[repeat] * 128 + 2 * position[repeat] - 1,
                    ac_table[repeat],
                    zeros + 0xF0,
                    zeros,
                    zeros,
                )
            )
        # EOB after a block's last nonzero coefficient unless that is the 64th.
        last_position = np.zeros(count, np.int64)
        ends = np.concatenate((block[1:] != block[:-1], [True])) if len(block) else block > 0
        last_position[block[ends]] = position[ends]
        eob = np.flatnonzero(last_position < 63)
        zeros = np.zeros(len(eob), np.int64)
        events.append((eob * 128 + 127, 2 + block_table[eob], zeros, zeros, zeros))

        keys = np.concatenate([e[0] for e in events])
        order = np.argsort(keys, kind="stable")
        table, symbol, extra_size, extra = (
            np.concatenate([e[i] for e in events]).astype(np.int32)[order] for i in range(1, 5)
        )
        return table, symbol, extra_size, extra, block_interval[keys[order] // 128]


def _bit_lengths(values: np.ndarray) -> np.ndarray:
    """SSSS of each value: the bits of its magnitude (0 for 0)."""
    return np.frexp(np.abs(values).astype(np.float64))[1].astype(np.int32)


def _amplitude(values: np.ndarray, size: np.ndarray) -> np.ndarray:
    # F.1.2.1: a negative value is sent as its ones' complement in SSSS bits.
    return np.where(values >= 0, values, values + (1 << size) - 1)


class _Bitstream:
    """The entropy-coded segment, chunk by chunk: codes packed MSB first, 1-bit padded at
    the end of each restart interval, 0xFF stuffed, RSTn markers between intervals; the
    bits of a last, partial byte carried to the next chunk."""

    def __init__(self, specs: list[tuple[bytes, bytes]], interval: int) -> None:
        self.codes = np.zeros(4 * 256, np.int64)
        self.lengths = np.zeros(4 * 256, np.int64)
        for t, (bits, values) in enumerate(specs):
            for value, (code, length) in code_table(bits, values)[0].items():
                self.codes[t * 256 + value] = code
                self.lengths[t * 256 + value] = length
        self.interval = interval
        self.carry_value = self.carry_bits = 0
        self.parts: list[bytes] = []

    def write(
        self,
        table: np.ndarray,
        symbol: np.ndarray,
        extra_size: np.ndarray,
        extra: np.ndarray,
        intervals: np.ndarray,
        first_mcu: int,
        last_mcu: int,
        closes: bool,
    ) -> None:
        """Add one chunk's events (MCUs ``first_mcu`` to ``last_mcu``, exclusive)."""
        lookup = table.astype(np.int64) * 256 + symbol
        length = self.lengths[lookup] + extra_size
        value = self.codes[lookup] << extra_size | extra
        # The chunk's intervals, numbered from 0 here: the first may have begun in an
        # earlier chunk, the last may go on in the next.
        base = int(intervals[0])
        local = intervals - base
        count = int(local[-1]) + 1
        raw = np.bincount(local, weights=length, minlength=count).astype(np.int64)
        lead = np.zeros(count, np.int64)
        lead[0] = self.carry_bits
        pad = -(lead + raw) % 8
        if not (closes or (self.interval and last_mcu % self.interval == 0)):
            pad[-1] = 0
        begins = np.concatenate(([0], np.cumsum(raw + pad)[:-1])) + self.carry_bits
        # The carried bits first, each interval's pad after its codes.
        order = np.argsort(np.concatenate((local, np.arange(count))), kind="stable")
        length = np.concatenate(([self.carry_bits], np.concatenate((length, pad))[order]))
        value = np.concatenate(([self.carry_value], np.concatenate((value, (1 << pad) - 1))[order]))

        ends = np.cumsum(length)
        total = int(ends[-1])
        starts = ends - length
        # Each field lies within 5 bytes from its first; place it in that 40-bit window
        # (fields share no bit, so the sum of their bytes is their OR).
        window = value << (40 - (starts & 7) - length)
        first_byte = starts >> 3
        size = -(-total // 8)
        packed = np.zeros(size + 5, np.float64)
        for k in range(5):
            packed += np.bincount(
                first_byte + k,
                weights=(window >> (32 - 8 * k)) & 0xFF,
                minlength=size + 5,
            )[: size + 5]
        data = packed[:size].astype(np.uint8)
        whole = total // 8
        self.carry_bits = total - whole * 8
        self.carry_value = int(data[whole]) >> (8 - self.carry_bits) if self.carry_bits else 0
        data = data[:whole]
        ff = np.flatnonzero(data == 0xFF)
        stuffed = np.insert(data, ff + 1, 0)
        # An RSTn before each interval but the scan's first, where it begins: on a byte,
        # as the interval before was padded.
        if self.interval:
            numbers = base + np.arange(count)
            new = numbers * self.interval >= first_mcu
            new &= numbers > 0
            where = begins[new] // 8
            where = where + np.searchsorted(ff, where)
            markers = np.stack(
                (np.full(len(where), 0xFF), 0xD0 + (numbers[new] - 1) % 8), axis=1
            ).ravel()
            stuffed = np.insert(stuffed, np.repeat(where, 2), markers)
        self.parts.append(stuffed.tobytes())


def _optimal(counts: np.ndarray) -> tuple[bytes, bytes]:
    """The optimal Huffman table (Annex K.2) for one table's symbol counts."""
    freq = [int(f) for f in counts] + [1]  # 256: reserved, so no code is all ones
    size = [0] * 257
    others = [-1] * 257
    alive = {i: f for i, f in enumerate(freq) if f}
    while len(alive) > 1:
        # Merge the two least frequent (among equals, the larger symbol first); every
        # symbol in either chain gets one more bit.
        v1 = min(alive, key=lambda i: (alive[i], -i))
        f1 = alive.pop(v1)
        v2 = min(alive, key=lambda i: (alive[i], -i))
        alive[v1] = f1 + alive.pop(v2)
        tail = -1
        for start in (v2, v1):
            i = start
            while i != -1:
                size[i] += 1
                tail, i = i, others[i]
        others[tail] = v2  # v1's chain now ends in v2's
    bits = [0] * 33
    for s in size:
        if s:
            bits[s] += 1
    # K.3: no code longer than 16 bits.
    for i in range(32, 16, -1):
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
    longest = max(i for i in range(17) if bits[i])
    bits[longest] -= 1  # the reserved all-ones code goes
    values = sorted((s, v) for v, s in enumerate(size[:256]) if s)
    return bytes(bits[1:17]), bytes(v for _, v in values)


def _u16(value: int) -> bytes:
    return int(value).to_bytes(2, "big")


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + _u16(len(payload) + 2) + payload


def _dqt(tables: dict[int, np.ndarray]) -> bytes:
    # One segment a table, as libjpeg writes them; 16-bit entries only when needed.
    segments = []
    for index, table in tables.items():
        zigzag = np.asarray(table)[ZIGZAG]
        if int(zigzag.max()) > 255:
            payload = bytes([0x10 | index]) + zigzag.astype(">u2").tobytes()
        else:
            payload = bytes([index]) + zigzag.astype(np.uint8).tobytes()
        segments.append(_segment(0xDB, payload))
    return b"".join(segments)


def _dht(klass_index: int, spec: tuple[bytes, bytes]) -> bytes:
    return _segment(0xC4, bytes([klass_index]) + spec[0] + spec[1])
