"""Item images: listing them by item id and decoding them robustly to RGB.

Real catalogues hold grayscale, CMYK, palette, 16-bit and transparent images, photos whose EXIF
says "rotate me", huge scans, truncated downloads and HTML error pages saved as ``.jpg``.
:func:`load_rgb` turns every decodable one into the RGB picture a person would see (alpha
composited on **white**, the background of product photos, not black; EXIF orientation applied;
16-bit scaled, not clipped) and raises :class:`ImageDecodeError` with the reason for the rest, so
extraction lists them in its report and goes on. Nothing here can hang on a bad file: the
decoders reject truncated data (``LOAD_TRUNCATED_IMAGES`` stays off) and the pixel count is
checked from the header before any pixel is decoded.
"""
from __future__ import annotations

import csv
import io
import re
import struct
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from elliot_visual.config.extraction import DEFAULT_MAX_PIXELS

TSV_HEADER_NAMES = {"path", "image", "image_path", "file", "filename", "img"}


class ImageDecodeError(ValueError):
    """An image that cannot be turned into RGB pixels; ``reason`` says why."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class ImageRecord:
    """One item's image: its public item id and the file holding the picture."""

    item_id: str
    path: Path


def _natural_key(text: str) -> list[Any]:
    """``'img2' < 'img10'``: digits compare as numbers, so numeric ids keep their order."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def list_images(source: str | Path) -> list[ImageRecord]:
    """The images of ``source``: a folder of ``<item_id>.<any extension>`` files or a TSV.

    A folder gives one record per non-hidden file, the item id being the file name without its
    last extension, in natural id order. A TSV holds ``item_id <TAB> path`` rows (relative paths
    are relative to the TSV's folder; a first row whose path column is a header word such as
    ``path`` or ``image`` is skipped) and keeps its row order. Duplicated ids are an error.
    """
    source = Path(source)
    if source.is_dir():
        records = [ImageRecord(p.name.rsplit(".", 1)[0] if "." in p.name[1:] else p.name, p)
                   for p in source.iterdir() if p.is_file() and not p.name.startswith(".")]
        records.sort(key=lambda r: (_natural_key(r.item_id), r.path.name))
    elif source.is_file():
        records = []
        with open(source, newline="", encoding="utf-8") as handle:
            for line_no, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
                if not row or not "".join(row).strip():
                    continue
                if len(row) < 2:
                    raise ValueError(f"{source}, line {line_no}: expected 'item_id<TAB>path', "
                                     f"got {row!r}")
                if line_no == 1 and row[1].strip().lower() in TSV_HEADER_NAMES:
                    continue
                path = Path(row[1].strip()).expanduser()
                records.append(ImageRecord(row[0].strip(),
                                           path if path.is_absolute() else source.parent / path))
    else:
        raise FileNotFoundError(f"images source {source} is neither a folder of item images nor "
                                f"a TSV of 'item_id<TAB>path' rows; fix the 'images' key")
    seen: dict[str, Path] = {}
    for record in records:
        if record.item_id in seen:
            raise ValueError(f"item '{record.item_id}' has two images in {source}: "
                             f"{seen[record.item_id]} and {record.path}; keep one")
        seen[record.item_id] = record.path
    if not records:
        raise ValueError(f"no images found in {source}")
    return records


def _sixteen_bit_to_l(image: Any) -> Any:
    """A 16/32-bit integer or float grayscale image -> 8-bit ``L``, scaled rather than clipped."""
    from PIL import Image

    array = np.asarray(image)
    if image.mode == "F":
        scale = 255.0 if float(np.nanmax(array, initial=0.0)) <= 1.0 else 1.0
        array = np.nan_to_num(array) * scale
    else:
        # 16-bit containers (PNG, TIFF): the full range is 0..65535; 65535 / 257 == 255 exactly.
        array = array.astype(np.float64) / 257.0
    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), mode="L")


def to_rgb(image: Any) -> Any:
    """Any Pillow image -> ``RGB``: transparency over white, CMYK through its ICC profile if any."""
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = _sixteen_bit_to_l(image)
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    if image.mode == "CMYK" and image.info.get("icc_profile"):
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
            return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"),
                                             outputMode="RGB")
        except (ImportError, OSError, ValueError, ImageCms.PyCMSError):
            pass  # a broken profile: fall back to Pillow's plain conversion below
    return image.convert("RGB")


def load_rgb(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS,
             draft: Callable[[int, int], tuple[int, int]] | None = None) -> Any:
    """Decode ``path`` to an upright RGB Pillow image, or raise :class:`ImageDecodeError`.

    ``draft(width, height)`` may return the smallest size the caller needs: JPEGs are then
    decoded at a reduced DCT scale (up to 8x faster on large photos, never below that size).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # The pixel budget is checked below against max_pixels; Pillow's own warning is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageDecodeError(path, f"{width}x{height} pixels exceed max_pixels="
                                                 f"{max_pixels}")
                if width == 0 or height == 0:
                    raise ImageDecodeError(path, "empty image (0 pixels)")
                if draft is not None and image.format == "JPEG":
                    image.draft(None, draft(width, height))
                image.load()
                upright = ImageOps.exif_transpose(image)
                return to_rgb(upright)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError(path, "not an image Pillow can identify") from None
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(path, f"too many pixels ({error})") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, struct.error) as error:
        raise ImageDecodeError(path, f"{type(error).__name__}: {error}") from None


@dataclass
class ImageBatch:
    """A collated batch: positions of the decoded images, their pixels, and the failures."""

    indices: list[int]
    images: Any  # torch.Tensor uint8 (len(indices), 3, H, W), or None when all failed
    failures: list[tuple[int, str]]

    def pin_memory(self) -> "ImageBatch":
        """Called by ``DataLoader(pin_memory=True)``: page-locked pixels copy to the GPU async."""
        if self.images is not None:
            self.images = self.images.pin_memory()
        return self


class ImageDataset:
    """``records[i]`` -> ``(i, uint8 tensor (3, crop, crop) | None, failure reason | None)``.

    A map-style dataset for ``torch.utils.data.DataLoader``; failures are returned, not raised,
    so one bad file never stops a batch.
    """

    def __init__(self, records: Sequence[ImageRecord], transform: Callable[[Any], Any],
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 draft: Callable[[int, int], tuple[int, int]] | None = None) -> None:
        self.records, self.transform = list(records), transform
        self.max_pixels, self.draft = max_pixels, draft

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[int, Any, str | None]:
        try:
            image = load_rgb(self.records[index].path, self.max_pixels, self.draft)
            return index, self.transform(image), None
        except ImageDecodeError as error:
            return index, None, error.reason
        except Exception as error:  # a transform failure on a decoded image must not stop the run
            return index, None, f"{type(error).__name__}: {error}"


def collate_images(samples: Sequence[tuple[int, Any, str | None]]) -> ImageBatch:
    """Stack the decoded images of a batch; keep the failures aside."""
    import torch

    good = [(i, tensor) for i, tensor, reason in samples if reason is None]
    failures = [(i, reason) for i, _, reason in samples if reason is not None]
    images = torch.stack([t for _, t in good]) if good else None
    return ImageBatch([i for i, _ in good], images, failures)
