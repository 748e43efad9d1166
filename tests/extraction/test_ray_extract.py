"""Extraction as a Ray Data pipeline: the local extractor's files, byte for byte, and its resume."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from extraction_helpers import photo
from elliot_visual.config.schema import RayConfig, RayExtraction
from elliot_visual.config.extraction import parse_block
from elliot_visual.extraction.blocks import run_extraction
from elliot_visual.extraction.ray_extract import extract_on_ray

pytestmark = pytest.mark.usefixtures("local_ray")

FAST = {"backbone": "efficientnet_lite0", "preprocessing": {"crop": 96}, "workers": 0,
        "progress": False, "layers": ["pooled", "feature_map"], "shard_size": 2, "batch_size": 2}
RAY = RayConfig(extraction=RayExtraction(actors=2))


@pytest.fixture
def images(photos_dir: Path) -> Path:
    """Four photos, four half-size copies, a web page saved as .jpg and a truncated JPEG (10 files,
    5 shards of 2, two of which hold a failure)."""
    for i, name in enumerate(["astronaut", "chelsea", "coffee", "rocket"]):
        Image.fromarray(photo(name)[::2, ::2]).save(photos_dir / f"half{i}.png")
    (photos_dir / "page.jpg").write_text("<html>404</html>")
    buffer = io.BytesIO()
    Image.fromarray(photo("rocket")).save(buffer, format="JPEG")
    (photos_dir / "cut.jpg").write_bytes(buffer.getvalue()[:4000])
    return photos_dir


def assert_same_files(left: list[Path], right: list[Path]) -> None:
    assert [p.name for p in left] == [p.name for p in right]
    for a, b in zip(left, right):
        names = sorted(p.name for p in a.iterdir())
        assert names == ["failed_images.tsv", "features.npy", "item_ids.txt", "metadata.json"]
        assert sorted(p.name for p in b.iterdir()) == names
        for name in names:
            assert (a / name).read_bytes() == (b / name).read_bytes(), f"{a.name}/{name}"


def test_ray_pipeline_resumes_its_shards_and_writes_the_local_extractors_bytes(
        tmp_path: Path, images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver dies after two of five shards; the rerun extracts only the other three. Every
    shard came from the Ray pipeline (two actors, batches arriving in any order), and the files
    are byte for byte the local extractor's."""
    import elliot_visual.extraction.extract as module

    block = {**FAST, "images": str(images), "output": str(tmp_path / "ray")}
    original, calls = module._write_shard, {"n": 0}

    def fail_on_third(*args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("driver interrupted")
        original(*args, **kwargs)

    monkeypatch.setattr(module, "_write_shard", fail_on_third)
    with pytest.raises(RuntimeError, match="driver interrupted"):
        run_extraction(block, "/", ray=RAY)
    monkeypatch.setattr(module, "_write_shard", original)
    network = tmp_path / "ray" / "efficientnet_lite0"
    assert len(list(network.glob(".partial-*/*.ids.txt"))) == 2
    resumed = extract_on_ray(parse_block(block, "/"), RAY.extraction)
    assert resumed.resumed_shards == 2
    assert not list(network.glob(".partial-*"))  # shards removed once assembled
    local = run_extraction({**FAST, "images": str(images), "output": str(tmp_path / "local")}, "/")
    assert_same_files(list(resumed.folders.values()), local)
    ids = (local[0] / "item_ids.txt").read_text().split()
    assert len(ids) == 8 and "page" not in ids and "cut" not in ids
    failed = (local[0] / "failed_images.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in failed] == ["item_id", "cut", "page"]
    assert run_extraction(block, "/", ray=RAY) == list(resumed.folders.values())  # complete: not recomputed
