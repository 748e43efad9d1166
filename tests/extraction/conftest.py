"""Fixtures for the extraction tests: real photos on disk, the Amazon sample, no network."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
from extraction_helpers import PHOTOS, photo

REPO_ROOT = Path(__file__).resolve().parents[2]
AMAZON_IMAGES = (REPO_ROOT / ".." / "shared" / "data" / "amazon_images_sample" / "images").resolve()


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every extraction test fails loudly if anything tries to open a network connection."""

    connect = socket.socket.connect

    def guarded_connect(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access attempted: {address}")
        connect(sock, address)  # local (Unix) sockets: loader workers share tensors this way

    def refuse(address: object, *args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {address}")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(autouse=True)
def one_torch_thread() -> None:
    """One intra-op thread per test process: CI runs two pytest workers on two cores, and
    oversubscribed OpenMP threads spin-wait (a 1 s forward pass becomes 20 s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def photos_dir(tmp_path: Path) -> Path:
    """A folder of four real photos named by item id (``<name>.jpg``)."""
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for name in PHOTOS:
        Image.fromarray(photo(name)).save(folder / f"{name}.jpg", quality=92)
    return folder


@pytest.fixture
def amazon_images() -> Path:
    if not AMAZON_IMAGES.is_dir():
        pytest.skip(f"{AMAZON_IMAGES} is absent (only the project's shared checkout has it)")
    return AMAZON_IMAGES
