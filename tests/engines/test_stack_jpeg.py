"""JPEG on the data-stack guest: our numpy codecs behind Pillow's usual API.

The guest's Pillow has no libjpeg; sandbox/engines/stack/guest/_sandlot_jpeg*.py fill in.
The reference is native Pillow in this process (libjpeg-turbo): what the guest writes
must decode here about as well as libjpeg's own file does, and what libjpeg writes must
decode in the guest to libjpeg's pixels within a few levels. Untrusted files end in an
image or an exception, quickly, never a trap or a hang.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from sandbox.engines.stack import StackArtifacts, build
from sandbox.engines.stack.host import StackRuntime
from sandbox.events import RunReport, Status
from sandbox.jobs import Job
from sandbox.limits import Limits
from tests.conftest import ARTIFACT_DIR

pytestmark = pytest.mark.slow

# A photo-like RGB image made in the guest (smooth shapes and seeded noise) and a helper
# that hands back what Pillow saved, in base64.
GUEST_PHOTO = """\
import base64, io
import numpy as np
from PIL import Image

def photo(width, height):
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([
        128 + 100 * np.sin(x / 37) * np.cos(y / 23),
        128 + 90 * np.sin((x + y) / 51),
        128 + 80 * np.cos(np.hypot(x - width / 2, y - height / 2) / 19),
    ], axis=-1)
    noisy = rgb + rng.normal(0, 6, rgb.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))

def saved(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, **options)
    return base64.b64encode(buffer.getvalue()).decode()
"""


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackRuntime]:
    artifacts: StackArtifacts = build(ARTIFACT_DIR)
    rt = StackRuntime(artifacts, tmp_path_factory.mktemp("stack-jpeg"))
    yield rt
    rt.close()


def run(runtime: StackRuntime, code: str, files: dict[str, bytes] | None = None) -> Any:
    """Run ``code`` in the guest; its trailing value (JSON), or fail with its error."""
    job = Job(
        code=code,
        limits=Limits(cpu_ms=60_000, wall_ms=120_000),
        files=files or {},
        result_bytes=8 * 1024 * 1024,
    )
    report: RunReport = runtime.run(job, _Sink())
    runtime.prepare()
    assert report.status is Status.OK, report.error
    assert report.result is not None
    return report.result.json


class _Sink:
    def output(self, stream: str, text: str) -> None:
        pass

    def subrequest(self, record: object) -> None:
        pass

    def display(self, output: object) -> None:
        pass

    def flush(self) -> None:
        pass


def scene(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A test picture made natively: gradients, shapes, text and noise."""
    width, height = size
    red = Image.linear_gradient("L").resize(size)
    green = Image.radial_gradient("L").resize(size)
    blue = Image.linear_gradient("L").rotate(90).resize(size)
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 5, height // 5, width * 3 // 4, height * 4 // 5), fill=(200, 40, 90))
    draw.line((0, height - 1, width - 1, 0), fill=(250, 250, 20), width=max(1, width // 40))
    draw.text((2, 2), "Sandlot 42", fill=(0, 0, 0))
    noise = Image.effect_noise(size, 30).convert("RGB")
    return Image.blend(image, noise, 0.15).convert(mode)


def difference(a: Image.Image, b: Image.Image) -> tuple[int, float]:
    """Largest and mean absolute difference over all samples."""
    diff = ImageChops.difference(a, b)
    extrema = diff.getextrema()
    bands = extrema if len(diff.getbands()) > 1 else (extrema,)
    largest = max(high for _, high in bands)  # type: ignore[misc]
    stat = ImageStat.Stat(diff)
    return largest, sum(stat.mean) / len(stat.mean)


def psnr(a: Image.Image, b: Image.Image) -> float:
    stat = ImageStat.Stat(ImageChops.difference(a, b))
    mse = sum(stat.sum2) / sum(stat.count)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def open_native(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_the_codecs_are_ours_only_where_pillows_core_lacks_libjpeg(runtime: StackRuntime) -> None:
    code = (
        "import types, _sandlot_jpeg\n"
        "from PIL import Image\n"
        "registered = []\n"
        "with_libjpeg = types.SimpleNamespace(\n"
        "    core=types.SimpleNamespace(jpeg_encoder=1, jpeg_decoder=1),\n"
        "    register_encoder=lambda *a: registered.append(a),\n"
        "    register_decoder=lambda *a: registered.append(a))\n"
        "_sandlot_jpeg.install(with_libjpeg)\n"
        "[hasattr(Image.core, 'jpeg_encoder'), Image.ENCODERS['jpeg'].__name__,\n"
        " Image.DECODERS['jpeg'].__name__, len(registered)]"
    )
    assert run(runtime, code) == [False, "JpegEncoder", "JpegDecoder", 0]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"quality": 30},
        {"quality": 95},
        {"subsampling": 0},
        {"subsampling": "4:2:2", "quality": 60},
        {"optimize": True},
        {"restart_marker_rows": 1},
        {"dpi": (150, 150), "comment": "chart"},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default",
)
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_what_the_guest_writes_decodes_natively_as_well_as_libjpegs_own(
    runtime: StackRuntime, options: dict[str, Any], mode: str
) -> None:
    code = GUEST_PHOTO + (
        f"image = photo(160, 120).convert({mode!r})\n"
        f"[saved(image, format='PNG'), saved(image, format='JPEG', **{options!r})]"
    )
    png, jpeg = (base64.b64decode(x) for x in run(runtime, code))
    original = open_native(png)
    ours = open_native(jpeg)
    assert (ours.format, ours.mode, ours.size) == ("JPEG", mode, (160, 120))
    reference = io.BytesIO()
    original.save(reference, "JPEG", **options)
    libjpeg = open_native(reference.getvalue())
    # Same tables, same sampling: the same quality, give or take rounding.
    assert psnr(original, ours) > psnr(original, libjpeg) - 0.3
    assert 0.85 < len(jpeg) / len(reference.getvalue()) < 1.1
    if "dpi" in options:
        assert ours.info["dpi"] == options["dpi"]
        assert ours.info["comment"] == options["comment"].encode()


_EXIF = Image.Exif()
_EXIF[0x010E] = "a test picture"  # ImageDescription

NATIVE_FILES = {
    "baseline 4:2:0": (scene((160, 120)), {}),
    "4:4:4": (scene((160, 120)), {"subsampling": 0}),
    "4:2:2": (scene((160, 120)), {"subsampling": 1}),
    "grey": (scene((160, 120), "L"), {}),
    "restart every 2 MCUs": (scene((160, 120)), {"restart_marker_blocks": 2}),
    "restart every MCU row": (scene((160, 120), "L"), {"restart_marker_rows": 1}),
    "odd size 17x13": (scene((17, 13)), {"restart_marker_blocks": 1}),
    "odd size 17x13 4:4:4": (scene((17, 13)), {"subsampling": 0}),
    "1x1": (scene((1, 1)), {}),
    "quality 100 optimized": (scene((96, 64)), {"quality": 100, "optimize": True}),
    "CMYK (Adobe)": (scene((48, 40), "CMYK"), {}),
    "RGB kept (Adobe)": (scene((48, 40)), {"keep_rgb": True}),
    "with EXIF and ICC": (scene((64, 48)), {"exif": _EXIF, "icc_profile": b"p" * 300}),
}


@pytest.mark.parametrize("name", list(NATIVE_FILES))
def test_what_libjpeg_writes_decodes_in_the_guest_as_libjpeg_decodes_it(
    runtime: StackRuntime, name: str
) -> None:
    image, options = NATIVE_FILES[name]
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    native = open_native(buffer.getvalue())
    code = (
        "import base64, numpy as np\n"
        "from PIL import Image\n"
        "image = Image.open('in.jpg')\n"
        "pixels = np.asarray(image)\n"  # loads it, as data code does
        "[image.mode, list(image.size), base64.b64encode(pixels.tobytes()).decode()]"
    )
    mode, size, data = run(runtime, code, {"in.jpg": buffer.getvalue()})
    assert (mode, tuple(size)) == (native.mode, native.size)
    guest = Image.frombytes(mode, native.size, base64.b64decode(data))
    largest, mean = difference(native, guest)
    # A float IDCT against libjpeg's integer one: a level or two here and there.
    assert largest <= 4 and mean < 0.1, (largest, mean)


def test_a_draft_decode_gives_the_reduced_size_and_mode(runtime: StackRuntime) -> None:
    buffer = io.BytesIO()
    scene((640, 480)).save(buffer, "JPEG")
    code = (
        "from PIL import Image\n"
        "thumb = Image.open('in.jpg')\n"
        "thumb.thumbnail((100, 100))\n"
        "grey = Image.open('in.jpg')\n"
        "grey.draft('L', (160, 120))\n"
        "grey.load()\n"
        "[thumb.mode, list(thumb.size), grey.mode, list(grey.size)]"
    )
    assert run(runtime, code, {"in.jpg": buffer.getvalue()}) == [
        "RGB",
        [100, 75],
        "L",
        [160, 120],
    ]


def test_matplotlib_saves_charts_and_arrays_as_jpeg(runtime: StackRuntime) -> None:
    code = (
        "import base64, numpy as np, matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=(4, 3), dpi=50)\n"
        "ax.plot([1, 2, 3], [3, 1, 2])\n"
        "fig.savefig('chart.jpg')\n"
        "plt.close(fig)\n"
        "plt.imsave('array.jpg', np.linspace(0, 1, 64 * 48).reshape(48, 64))\n"
        "[base64.b64encode(open(n, 'rb').read()).decode() for n in ('chart.jpg', 'array.jpg')]"
    )
    chart, array = (open_native(base64.b64decode(x)) for x in run(runtime, code))
    assert (chart.format, chart.mode, chart.size) == ("JPEG", "RGB", (200, 150))
    assert (array.format, array.size) == ("JPEG", (64, 48))
    assert chart.getpixel((5, 5)) == pytest.approx((255, 255, 255), abs=3)  # the background


def test_saving_what_jpeg_cannot_hold_fails_as_in_pillow(runtime: StackRuntime) -> None:
    code = (
        "import io\n"
        "from PIL import Image\n"
        "try:\n"
        "    Image.new('RGBA', (8, 8)).save(io.BytesIO(), 'JPEG')\n"
        "except OSError as exc:\n"
        "    message = str(exc)\n"
        "message"
    )
    assert run(runtime, code) == "cannot write mode RGBA as JPEG"


def _with_frame_marker(marker: bytes) -> bytes:
    # A baseline file whose frame header says another process: Pillow opens it (its
    # parser reads every SOFn alike) and the decoder must refuse it by name.
    buffer = io.BytesIO()
    scene((64, 48)).save(buffer, "JPEG")
    return buffer.getvalue().replace(b"\xff\xc0", marker, 1)


def _progressive() -> bytes:
    buffer = io.BytesIO()
    scene((64, 48)).save(buffer, "JPEG", progressive=True)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (_progressive, "progressive"),
        (lambda: _with_frame_marker(b"\xff\xc9"), "arithmetic-coded"),
        (lambda: _with_frame_marker(b"\xff\xc3"), "lossless"),
    ],
    ids=["progressive", "arithmetic", "lossless"],
)
def test_what_the_decoder_does_not_read_is_refused_by_name(
    runtime: StackRuntime, make: Any, named: str
) -> None:
    code = (
        "from PIL import Image\n"
        "image = Image.open('in.jpg')\n"
        "try:\n"
        "    image.load()\n"
        "except OSError as exc:\n"
        "    message = str(exc)\n"
        "[image.size, message]"
    )
    size, message = run(runtime, code, {"in.jpg": make()})
    assert size == [64, 48]
    assert message.startswith(f"{named} JPEGs are not supported")


def test_a_truncated_jpeg_raises_unless_truncated_images_are_allowed(
    runtime: StackRuntime,
) -> None:
    buffer = io.BytesIO()
    scene((160, 120)).save(buffer, "JPEG")
    data = buffer.getvalue()
    code = (
        "from PIL import Image, ImageFile\n"
        "try:\n"
        "    Image.open('cut.jpg').load()\n"
        "except OSError as exc:\n"
        "    message = str(exc)\n"
        "ImageFile.LOAD_TRUNCATED_IMAGES = True\n"
        "image = Image.open('cut.jpg')\n"
        "image.load()\n"
        "[message, list(image.size), image.getpixel((80, 110))]"
    )
    message, size, bottom = run(runtime, code, {"cut.jpg": data[: len(data) // 2]})
    assert message == "image file is truncated"
    assert size == [160, 120]
    assert bottom == [128, 128, 128]  # the missing blocks: grey, as libjpeg leaves them


def test_corrupt_jpegs_end_quickly_in_an_image_or_an_error(runtime: StackRuntime) -> None:
    files = {}
    for i, options in enumerate(
        [{}, {"restart_marker_blocks": 2}, {"subsampling": 0, "quality": 95}, {"optimize": True}]
    ):
        buffer = io.BytesIO()
        scene((64, 48), "L" if i == 3 else "RGB").save(buffer, "JPEG", **options)
        files[f"seed{i}.jpg"] = buffer.getvalue()
    code = (
        "import io, random, time\n"
        "from PIL import Image\n"
        "seeds = [open(f'seed{i}.jpg', 'rb').read() for i in range(4)]\n"
        "rng = random.Random(5)\n"
        "outcomes, slowest = {}, 0.0\n"
        "for n in range(300):\n"
        "    data = bytearray(seeds[n % 4])\n"
        "    if n % 5 == 0:\n"
        "        data = data[: rng.randrange(2, len(data))]\n"
        "    else:\n"
        "        for _ in range(rng.randint(1, 8)):\n"
        "            data[rng.randrange(len(data))] = rng.randrange(256)\n"
        "    started = time.perf_counter()\n"
        "    try:\n"
        "        Image.open(io.BytesIO(bytes(data))).load()\n"
        "        outcome = 'image'\n"
        "    except Exception as exc:\n"
        "        outcome = type(exc).__name__\n"
        "    slowest = max(slowest, time.perf_counter() - started)\n"
        "    outcomes[outcome] = outcomes.get(outcome, 0) + 1\n"
        "[outcomes, slowest]"
    )
    outcomes, slowest = run(runtime, code, files)
    assert set(outcomes) <= {"image", "OSError", "UnidentifiedImageError"}, outcomes
    assert outcomes.get("image", 0) > 0 and outcomes.get("OSError", 0) > 0
    assert slowest < 2.0


def test_a_header_claiming_a_huge_image_is_refused_before_decoding(runtime: StackRuntime) -> None:
    buffer = io.BytesIO()
    scene((64, 48), "L").save(buffer, "JPEG")
    data = buffer.getvalue()
    sof = data.index(b"\xff\xc0")

    def claiming(width: int, height: int) -> bytes:
        size = height.to_bytes(2, "big") + width.to_bytes(2, "big")
        return data[: sof + 5] + size + data[sof + 9 :]

    code = (
        "from PIL import Image\n"
        "outcomes = []\n"
        "for name in ('huge.jpg', 'large.jpg'):\n"
        "    try:\n"
        "        Image.open(name).load()\n"
        "    except Exception as exc:\n"
        "        outcomes.append([type(exc).__name__, str(exc)])\n"
        "outcomes"
    )
    files = {"huge.jpg": claiming(65535, 65535), "large.jpg": claiming(6000, 4000)}
    huge, large = run(runtime, code, files)
    assert huge[0] == "DecompressionBombError"  # Pillow's own MAX_IMAGE_PIXELS check
    assert large == ["OSError", "image file is truncated (too little data for its size)"]


def test_a_large_photo_saves_and_loads_within_the_default_memory_limit(
    runtime: StackRuntime,
) -> None:
    # 6 megapixels: the whole-image temporaries took 400 MB to encode before the codecs
    # worked in chunks and bands; a run has 256 MB (Limits' default) on top of the heap.
    code = GUEST_PHOTO + (
        "tile = photo(500, 400)\n"  # tiled: making one 6-megapixel photo would take more
        "image = Image.new('RGB', (3000, 2000))\n"
        "for x in range(0, 3000, 500):\n"
        "    for y in range(0, 2000, 400):\n"
        "        image.paste(tile, (x, y))\n"
        "image.save('big.jpg', quality=90)\n"
        "del image\n"
        "loaded = np.asarray(Image.open('big.jpg'))\n"
        "[list(loaded.shape), int(loaded[1000, 1500].sum()) > 0]"
    )
    assert run(runtime, code) == [[2000, 3000, 3], True]
