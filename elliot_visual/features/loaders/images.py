"""Raw product images resized to a fixed size (DVBPR's ``images``), as uint8 ``(3, H, W)`` per item.

Files are named by item id (``<item>.jpg``, ``.png``, ...). Each is decoded by extraction's robust
decoder (:func:`elliot_visual.extraction.images.load_rgb`: EXIF orientation, CMYK through its ICC
profile, alpha over white, 16-bit scaled), so DVBPR sees the same pictures a CNN extraction does.
Images are kept as uint8, a quarter of float32 memory (7,000 items at 224x224 take 1 GB); the model
scales them to [-1, 1] per batch, as Elliot's DVBPR does. Decoding runs in a thread pool (Pillow
releases the GIL while decoding).
"""
from __future__ import annotations

import ast
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from PIL import Image
from pydantic import BeforeValidator
from elliot_visual.progress import progress as progress_bar

from elliot_visual.extraction.images import ImageDecodeError, load_rgb
from elliot_visual.features.loaders.base import FeatureLoader, LoaderOptions
from elliot_visual.features.sources import FeatureError, FeatureSource
from elliot_visual.registry import FEATURE_LOADERS

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def _size(value: Any) -> Any:
    """Elliot writes ``output_image_size: (224,224)``, which YAML reads as a string."""
    if isinstance(value, str):
        value = ast.literal_eval(value)
    if isinstance(value, int):
        value = (value, value)
    return tuple(value)


ImageSize = Annotated[tuple[int, int], BeforeValidator(_size)]


class ImageFolderSource(FeatureSource):
    """Images in ``folder`` named ``<item id>.<ext>``, decoded to RGB and resized to ``size`` (height, width)."""

    def __init__(self, folder: Path, size: tuple[int, int], workers: int = 8) -> None:
        if not folder.is_dir():
            raise FeatureError(f"images folder {folder} does not exist")
        self.kind, self.origin, self.folder, self.size, self.workers = "images", str(folder), folder, size, workers
        self.files = {p.stem: p for p in sorted(folder.iterdir())
                      if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")}

    def item_ids(self) -> np.ndarray:
        return np.asarray(list(self.files), dtype=object)

    def load(self, items: np.ndarray, train_mask: np.ndarray) -> np.ndarray:
        self.positions(items, dict.fromkeys(self.files, 0))
        height, width = self.size
        out = np.empty((len(items), 3, height, width), dtype=np.uint8)

        def decode(row: int) -> None:
            path = self.files[str(items[row])]
            try:
                rgb = load_rgb(path).resize((width, height), Image.Resampling.BILINEAR)
            except ImageDecodeError as error:
                raise FeatureError(f"{path}: cannot decode the image of item {items[row]} ({error.reason}); "
                                   "replace the file or drop the item") from None
            out[row] = np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)

        with ThreadPoolExecutor(self.workers) as pool:
            list(progress_bar(pool.map(decode, range(len(items))), total=len(items), desc="decoding images",
                      unit="img", enabled=len(items) >= 500))
        return out


@FEATURE_LOADERS.register("Images")
class Images(FeatureLoader):
    """A folder of item images, resized to ``output_image_size`` (default 224x224 as in DVBPR). YAML::

        - dataloader: Images
          images_src_folder: ../data/{0}/images
          output_image_size: (224, 224)
    """

    class Options(LoaderOptions):
        images_src_folder: Path
        output_image_size: ImageSize = (224, 224)

    def sources(self) -> dict[str, FeatureSource]:
        return {"images": ImageFolderSource(self.options.images_src_folder, self.options.output_image_size)}
