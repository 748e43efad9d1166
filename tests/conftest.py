"""Fixtures shared by every test area: a seeded Generator, the real data folder, tiny hand-made frames."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """One intra-op thread per test process: the suite runs one process per core (pytest -n 2),
    and more OpenMP threads than cores makes tiny models spin-wait two orders of magnitude slower."""
    import torch

    torch.set_num_threads(1)

SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh Generator with a fixed seed, so tests are deterministic without global seeding."""
    return np.random.default_rng(20240601)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``<repo>/../shared/data`` (real Amazon splits, see its README); skips the test when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (only the project's shared checkout has it)")
    return SHARED_DATA


def _frame(rows: list[tuple[str, str, float, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    frame["user"] = frame["user"].astype(object)
    frame["item"] = frame["item"].astype(object)
    frame["rating"] = frame["rating"].astype(np.float64)
    frame["timestamp"] = frame["timestamp"].astype(np.int64)
    return frame


@pytest.fixture
def tiny_frames() -> dict[str, pd.DataFrame]:
    """Three users, five items, with timestamps; ``dataset`` is the whole, and ``train``/``validation``/
    ``test`` are its temporal leave-one-out split applied twice (each user's latest row is test, the
    next latest validation), derived by hand:

    ====  ==========================================  ==========  ==========
    user  train (item, rating, ts)                    validation  test
    ====  ==========================================  ==========  ==========
    u1    (i1, 5, 100), (i2, 3, 200)                  (i3, 4, 300) (i4, 1, 400)
    u2    (i1, 4, 150)                                (i3, 2, 250) (i5, 5, 350)
    u3    --                                          (i2, 5, 120) (i4, 4, 220)
    ====  ==========================================  ==========  ==========
    """
    dataset = _frame([("u1", "i1", 5, 100), ("u1", "i2", 3, 200), ("u1", "i3", 4, 300), ("u1", "i4", 1, 400),
                      ("u2", "i1", 4, 150), ("u2", "i3", 2, 250), ("u2", "i5", 5, 350),
                      ("u3", "i2", 5, 120), ("u3", "i4", 4, 220)])
    return {
        "dataset": dataset,
        "train": _frame([("u1", "i1", 5, 100), ("u1", "i2", 3, 200), ("u2", "i1", 4, 150)]),
        "validation": _frame([("u1", "i3", 4, 300), ("u2", "i3", 2, 250), ("u3", "i2", 5, 120)]),
        "test": _frame([("u1", "i4", 1, 400), ("u2", "i5", 5, 350), ("u3", "i4", 4, 220)]),
    }


@pytest.fixture(scope="session")
def attribute_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The results folder of the bundled interpretable demo run in a temporary project (attribute_project.py):
    MostPop, a BPRMF grid and VBPR (weights saved) over AttributeFeatures with item images."""
    import os

    from attribute_project import DATASET, write_attribute_project

    from elliot_visual.cli import main

    root = write_attribute_project(tmp_path_factory.mktemp("attrs"))
    cwd = Path.cwd()
    try:
        os.chdir(root)
        assert main(["run", DATASET]) == 0
    finally:
        os.chdir(cwd)
    return root / "results" / DATASET


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One local Ray instance per test module (2 CPUs, no dashboard, no usage stats, no memory
    monitor), shut down after; yields a folder under the test's temporary directory for Tune's storage. Ray's own
    session files go to a short temporary folder (its socket paths must stay under 108 bytes)."""
    import ray

    storage = tmp_path_factory.mktemp("ray_storage")
    session = tempfile.mkdtemp(prefix="ray-")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        # Ray's memory monitor kills workers when the whole machine nears its memory limit; on a
        # shared test machine that is other processes' memory, not these tiny trials'.
        patch.setenv("RAY_memory_monitor_refresh_ms", "0")
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir=session, log_to_driver=False,
                 configure_logging=False)
        try:
            yield storage
        finally:
            ray.shutdown()
            shutil.rmtree(session, ignore_errors=True)
