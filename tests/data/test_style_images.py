"""Style images: the style is the stripe orientation, recoverable from the pixels; colour is not."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from elliot_visual.data.synthetic import draw_style_images, write_style_images


def stripe_angle(image: np.ndarray) -> float:
    """Orientation (degrees in [0, 180)) of the strongest non-DC frequency of the grey image."""
    grey = image.astype(np.float64).mean(2)
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(grey - grey.mean())))
    y, x = np.unravel_index(spectrum.argmax(), spectrum.shape)
    centre = image.shape[0] // 2
    return float(np.degrees(np.arctan2(y - centre, x - centre)) % 180)


def test_each_style_has_its_stripe_orientation_and_colours_carry_no_style() -> None:
    styles = np.repeat(np.arange(6), 10)
    images = draw_style_images(styles, 6, size=64, seed=3, jitter=6.0)
    assert images.shape == (60, 64, 64, 3) and images.dtype == np.uint8
    for style, image in zip(styles, images):
        error = abs((stripe_angle(image) - 30.0 * style + 90) % 180 - 90)
        assert error <= 6.0 + 6.0, (style, stripe_angle(image))  # jitter + frequency-grid resolution
    mean_colour = images.reshape(60, -1, 3).mean(1)
    per_style = np.stack([mean_colour[styles == s].mean(0) for s in range(6)])
    assert (np.ptp(per_style, axis=0) < 1.5 * mean_colour.std(0)).all()  # no style owns a colour (measured 0.9)
    assert (draw_style_images(styles, 6, size=64, seed=3) == images).all()  # seeded


def test_written_images_are_named_by_item_id(tmp_path: Path) -> None:
    images = draw_style_images(np.array([0, 1]), 2, size=16, seed=0)
    folder = write_style_images(tmp_path / "images", np.array(["a", "b"], dtype=object), images)
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.png"]
    assert (np.asarray(Image.open(folder / "b.png")) == images[1]).all()
