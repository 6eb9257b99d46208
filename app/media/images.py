"""What an uploaded file really is: decoded by Pillow, never judged by its name or header."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageSequence, UnidentifiedImageError

from app.errors import TooLarge, Unsupported

# Pillow format name -> (content type, extension of the stored key).
ALLOWED = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "GIF": ("image/gif", "gif"),
    "WEBP": ("image/webp", "webp"),
}
EMAIL_WIDTH = 600  # the content column of every layout
MAX_FRAMES = 1000
# Markup that makes a file a polyglot a browser could be tricked into running as a page.
_MARKUP = (b"<script", b"<html", b"<svg", b"<!doctype", b"<iframe", b"<body", b"<?xml")
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ImageInfo:
    format: str
    content_type: str
    extension: str
    width: int
    height: int
    frames: int


def inspect(fp: BinaryIO, *, max_pixels: int) -> ImageInfo:
    """Decode the whole file; raise Unsupported (not an allowed image) or TooLarge (a bomb)."""
    _refuse_markup(fp)
    info = _read_header(fp, max_pixels)
    _decode_fully(fp)
    _refuse_trailing_data(fp, info.format)
    return info


def _read_header(fp: BinaryIO, max_pixels: int) -> ImageInfo:
    fp.seek(0)
    try:
        # Pillow raises its own bomb error past twice its limit; ours is checked below first.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fp, formats=list(ALLOWED)) as img:
                fmt = str(img.format)
                width, height = img.size
                # Only the header is read so far: refuse a bomb before any pixel is decoded.
                if width * height > max_pixels:
                    raise _bomb(width, height, max_pixels)
                frames = int(getattr(img, "n_frames", 1))
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"the image has too many pixels to decode safely ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise _unsupported() from None
    if fmt not in ALLOWED:
        raise _unsupported()
    if frames > MAX_FRAMES or width * height * frames > max_pixels * 4:
        raise TooLarge(f"the animation has too many frames ({frames}) to decode safely")
    content_type, extension = ALLOWED[fmt]
    return ImageInfo(fmt, content_type, extension, width, height, frames)


def _decode_fully(fp: BinaryIO) -> None:
    fp.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp, formats=list(ALLOWED)) as img:
                for frame in ImageSequence.Iterator(img):
                    frame.load()
    except Exception:  # noqa: BLE001 - any decoder failure means "not a usable image"
        raise _unsupported() from None


def _refuse_markup(fp: BinaryIO) -> None:
    fp.seek(0)
    tail = b""
    while chunk := fp.read(_CHUNK):
        window = (tail + chunk).lower()
        if any(marker in window for marker in _MARKUP):
            raise Unsupported("the file holds HTML or SVG markup besides an image (a polyglot)")
        tail = window[-16:]


def _refuse_trailing_data(fp: BinaryIO, fmt: str) -> None:
    """An image followed by anything else is a polyglot (an image and a script or archive)."""
    size = fp.seek(0, io.SEEK_END)
    fp.seek(max(0, size - 12))
    end = fp.read()
    fp.seek(0)
    head = fp.read(12)
    ok = {
        "PNG": end.endswith(b"IEND\xaeB`\x82"),
        "JPEG": end.endswith(b"\xff\xd9"),
        "GIF": end.endswith(b"\x3b"),
        "WEBP": int.from_bytes(head[4:8], "little") + 8 == size,
    }[fmt]
    if not ok:
        raise Unsupported("the file has data after the end of the image (a polyglot)")


def email_copy(fp: BinaryIO, info: ImageInfo) -> tuple[bytes, int, int] | None:
    """The image scaled down to the email column, or None when it already fits."""
    if info.width <= EMAIL_WIDTH:
        return None
    height = max(1, round(info.height * EMAIL_WIDTH / info.width))
    fp.seek(0)
    out = io.BytesIO()
    with Image.open(fp, formats=[info.format]) as img:
        frames = [
            f.convert("RGBA") if f.mode == "P" else f.copy() for f in ImageSequence.Iterator(img)
        ]
        scaled = [f.resize((EMAIL_WIDTH, height), Image.Resampling.LANCZOS) for f in frames]
        options: dict[str, object] = {}
        if info.format == "JPEG":
            scaled = [f.convert("RGB") for f in scaled]
            options["quality"] = 88
        if len(scaled) > 1:
            options.update(save_all=True, append_images=scaled[1:], loop=img.info.get("loop", 0))
            if "duration" in img.info:
                options["duration"] = img.info["duration"]
        scaled[0].save(out, format=info.format, **options)
    return out.getvalue(), EMAIL_WIDTH, height


def _unsupported() -> Unsupported:
    return Unsupported("only PNG, JPEG, GIF and WebP images are accepted")


def _bomb(width: int, height: int, limit: int) -> TooLarge:
    return TooLarge(f"the image is {width}x{height} pixels, over the {limit:,}-pixel limit")
