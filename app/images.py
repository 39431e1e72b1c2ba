"""Image files read with bounds, torch-free (the launch side may use them too): ``open_image``
opens one only once it is a regular file of a size, pixel count and shape the app decodes;
``unreadable`` and ``screened`` are the scan before training and before prediction."""

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from app.configs import Corrupt
from app.errors import CorruptImages, FileRefused, UnreadableImage
from app.files import regular_file, shown

log = logging.getLogger("app.data")  # the scan's warnings, under "app": in the run's train.log

# The most pixels a picture may declare: 2**26, an 8192 x 8192 square (192 MiB decoded as RGB).
# Refused from the header, before a byte of pixels is decoded: a 100 kB PNG can declare
# 50,000 x 50,000 (7.5 GB decoded). Below PIL's own bound (Image.MAX_IMAGE_PIXELS, 89.5 M, where
# it only warns; it refuses at twice that), so the app's is the one that holds.
MAX_PIXELS = 2**26
# The most elongated picture: 32 to 1. Its shorter side is resized to about the model's input
# (256 px for a 224 px crop): a 1 x 100,000 strip would become 256 x 25.6 M pixels (79 GB as
# floats); at 32:1 it is 256 x 8192. Real panoramas are seldom past 12:1.
MAX_ASPECT = 32
# The largest image file: 1 GiB, more than any picture within MAX_PIXELS takes uncompressed
# (16-bit RGBA: 512 MiB); verify() reads a file whole, so a larger one is refused unread.
MAX_IMAGE_BYTES = 2**30


@contextlib.contextmanager
def open_image(path: str) -> Iterator[Any]:
    """``path`` opened by PIL (a ``PIL.Image.Image``, its header read, no pixels yet), once it is
    known to be a regular file of at most ``MAX_IMAGE_BYTES`` declaring at most ``MAX_PIXELS``
    pixels, at most ``MAX_ASPECT`` to 1: else ``UnreadableImage`` saying why."""
    from PIL import Image

    def refused(why: str) -> UnreadableImage:
        return UnreadableImage(f"{shown(path)}: {why}", reason=why)

    try:
        with regular_file(path) as f:
            if os.fstat(f.fileno()).st_size > MAX_IMAGE_BYTES:
                raise refused(f"larger than {MAX_IMAGE_BYTES:,} bytes, more than any picture the app reads")
            with warnings.catch_warnings():  # PIL's own warning, for a header past its bound: a refusal
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                opened = Image.open(f)
            with opened:
                width, height = opened.size
                if width * height > MAX_PIXELS:
                    raise refused(f"declares {width} x {height} pixels, more than the {MAX_PIXELS:,} the app decodes")
                if max(width, height) > MAX_ASPECT * max(min(width, height), 1):
                    raise refused(f"{width} x {height} pixels: more elongated than {MAX_ASPECT} to 1")
                yield opened
    except UnreadableImage:
        raise
    except (
        FileRefused,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ) as error:
        # PIL's refusals of a file it does not read, and the OS's (no such file, a dangling link)
        why = (
            str(error).removeprefix(f"{shown(path)}: ")
            if isinstance(error, FileRefused)
            else f"{type(error).__name__}: {error}"
        )
        raise refused(" ".join(why.split())) from None


def unreadable(files: Sequence[str]) -> dict[str, str]:
    """The files of ``files`` that PIL cannot decode, or that the app refuses to (``open_image``:
    not a regular file, too large, too many pixels, too elongated), each with why.

    ``verify()`` reads the container: for PNG every chunk's CRC and the end marker (a truncated
    or bit-flipped file), for others little more than the header; ``load()`` then decodes the
    pixels, which catches a truncated JPEG or a broken deflate stream (JPEGs decode at 1/8 scale,
    ``draft``, still reading the whole stream). What neither catches: a file that decodes to
    the wrong picture. Measured on this project's 2-core CPU: 2,000 PNGs of 32x32 random pixels
    in 0.49 s (``verify()`` alone: 0.18 s), 2,000 JPEGs of 256x256 in 1.95 s; once per run.
    """
    bad = {}
    for path in files:
        try:
            with open_image(path) as opened:
                opened.verify()
            with open_image(path) as opened:
                opened.draft(opened.mode, (1, 1))
                opened.load()
        except UnreadableImage as error:
            bad[path] = error.reason
        except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, struct.error... as it decodes
            bad[path] = " ".join(f"{type(error).__name__}: {error}".split())
    return bad


def screened(files: list[str], labels: list[int], corrupt: Corrupt) -> tuple[list[str], list[int]]:
    """``files`` and their labels without those PIL cannot decode (``skip``, with a warning), or
    ``CorruptImages`` naming them (``fail``)."""
    bad = unreadable(files)
    if not bad:
        return files, labels
    first = "; ".join(f"{shown(path)} ({why})" for path, why in list(bad.items())[:5])
    listing = first + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
    if corrupt is Corrupt.fail:
        raise CorruptImages(f"{len(bad)} of {len(files)} image files cannot be read: {listing}")
    log.warning(
        "dataset.corrupt=skip: %d of %d image files cannot be read and are left out: %s", len(bad), len(files), listing
    )
    kept = [i for i, path in enumerate(files) if path not in bad]
    return [files[i] for i in kept], [labels[i] for i in kept]
