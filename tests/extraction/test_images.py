"""Robust decoding: every odd-but-valid image becomes the RGB a person sees; bad files are reported."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from extraction_helpers import photo, png_rgb16
from elliot_visual.extraction.images import ImageDecodeError, list_images, load_rgb


def test_cmyk_jpeg_decodes_to_the_same_colours_as_its_rgb_source(tmp_path: Path) -> None:
    rgb = Image.new("RGB", (32, 32), (200, 30, 40))
    rgb.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    decoded = load_rgb(tmp_path / "cmyk.jpg")
    assert decoded.mode == "RGB"
    assert np.abs(np.asarray(decoded, dtype=int).mean(axis=(0, 1)) - [200, 30, 40]).max() < 8


def test_transparent_background_is_composited_on_white_not_black(tmp_path: Path) -> None:
    pixels = np.zeros((20, 20, 4), np.uint8)  # fully transparent black...
    pixels[5:15, 5:15] = (255, 0, 0, 255)    # ...around an opaque red square
    Image.fromarray(pixels, "RGBA").save(tmp_path / "alpha.png")
    decoded = np.asarray(load_rgb(tmp_path / "alpha.png"))
    assert decoded[0, 0].tolist() == [255, 255, 255]
    assert decoded[10, 10].tolist() == [255, 0, 0]


def test_palette_image_with_transparency_is_composited_on_white(tmp_path: Path) -> None:
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((4, 4), 1)
    image.save(tmp_path / "palette.png", transparency=0)
    decoded = np.asarray(load_rgb(tmp_path / "palette.png"))
    assert decoded[0, 0].tolist() == [255, 255, 255]
    assert decoded[4, 4].tolist() == [0, 0, 255]


def test_sixteen_bit_grayscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    gray = np.array([[0, 32768, 65535]], dtype=np.uint16)  # black, mid grey, white
    Image.fromarray(gray).save(tmp_path / "gray16.png")
    decoded = np.asarray(load_rgb(tmp_path / "gray16.png"))
    assert decoded[0, :, 0].tolist() == [0, 128, 255]  # 32768 / 257 = 127.5 -> 128
    assert (decoded[..., 0] == decoded[..., 2]).all()


def test_sixteen_bit_rgb_png_keeps_its_colours(tmp_path: Path) -> None:
    pixels = np.zeros((4, 4, 3), np.uint16)
    pixels[..., 0], pixels[..., 2] = 65535, 257 * 100
    png_rgb16(tmp_path / "rgb16.png", pixels)
    decoded = np.asarray(load_rgb(tmp_path / "rgb16.png"))
    assert decoded[0, 0].tolist() == [255, 0, 100]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((20, 40, 3), np.uint8)  # stored landscape: left half red, right half blue
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    decoded = np.asarray(load_rgb(tmp_path / "rotated.jpg"), dtype=int)
    assert decoded.shape == (40, 20, 3)  # displayed portrait
    assert decoded[5, 10, 0] > 200 and decoded[5, 10, 2] < 60    # red on top after rotation
    assert decoded[35, 10, 2] > 200 and decoded[35, 10, 0] < 60  # blue at the bottom


def test_grayscale_image_becomes_three_equal_channels(tmp_path: Path) -> None:
    Image.fromarray(np.full((6, 6), 77, np.uint8), "L").save(tmp_path / "gray.png")
    decoded = np.asarray(load_rgb(tmp_path / "gray.png"))
    assert decoded.shape == (6, 6, 3) and (decoded == 77).all()


def test_truncated_jpeg_is_rejected_with_a_reason(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(photo("coffee")).save(buffer, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageDecodeError, match="truncated"):
        load_rgb(tmp_path / "cut.jpg")


def test_non_image_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "page.jpg").write_text("<html>404 Not Found</html>")
    with pytest.raises(ImageDecodeError, match="not an image"):
        load_rgb(tmp_path / "page.jpg")


def test_huge_image_is_rejected_from_its_header_before_decoding(tmp_path: Path) -> None:
    Image.new("RGB", (400, 300)).save(tmp_path / "big.png")
    with pytest.raises(ImageDecodeError, match="400x300 pixels exceed max_pixels=100000"):
        load_rgb(tmp_path / "big.png", max_pixels=100_000)


def test_draft_decoding_never_goes_below_the_requested_size(tmp_path: Path) -> None:
    Image.fromarray(photo("astronaut")).save(tmp_path / "a.jpg")  # 512 x 512
    assert load_rgb(tmp_path / "a.jpg", draft=lambda w, h: (100, 100)).size == (128, 128)
    assert load_rgb(tmp_path / "a.jpg", draft=lambda w, h: (300, 300)).size == (512, 512)


def test_folder_listing_uses_file_stems_as_item_ids_in_natural_order(tmp_path: Path) -> None:
    for name in ("10.jpg", "2.png", "1.jpeg", "B00X.1.webp", ".DS_Store"):
        (tmp_path / name).write_bytes(b"x")
    assert [r.item_id for r in list_images(tmp_path)] == ["1", "2", "10", "B00X.1"]


def test_tsv_listing_keeps_row_order_and_resolves_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    (tmp_path / "items.tsv").write_text("item\tpath\nb\tpics/b.jpg\na\t/abs/a.png\n")
    records = list_images(tmp_path / "items.tsv")
    assert [(r.item_id, r.path) for r in records] == [("b", tmp_path / "pics" / "b.jpg"),
                                                      ("a", Path("/abs/a.png"))]


def test_two_images_for_one_item_is_an_error_naming_both(tmp_path: Path) -> None:
    (tmp_path / "7.jpg").write_bytes(b"x")
    (tmp_path / "7.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="item '7' has two images.*7.jpg.*7.png"):
        list_images(tmp_path)
