"""The trained run on the planted attribute data (attribute_project.py), built once per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from attribute_project import write_attribute_project

from elliot_visual.cli import main


@pytest.fixture(scope="session")
def attribute_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The results folder of a finished run on the planted attribute data (VBPR weights saved)."""
    root = write_attribute_project(tmp_path_factory.mktemp("attrs"))
    cwd = Path.cwd()
    try:
        os.chdir(root)
        assert main(["run", "config_files/attrs.yml"]) == 0
    finally:
        os.chdir(cwd)
    return root / "results" / "attrs"
