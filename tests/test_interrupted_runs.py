"""kill -9 in the middle of training a grid, and in the middle of writing reports, then rerun.

The killed process is a real one, ended by SIGKILL at a chosen point (right after a chosen
checkpoint or report file is written), so nothing gets to clean up. The rerun must resume: no
finished trial or epoch trained again, and every report file byte-identical to an uninterrupted
run's (time stamps in names aside). (Extraction's kill -9 test lives in tests/extraction.)
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from elliot_visual.experiment import run_experiment
from elliot_visual.storage import verify_manifest, write_text

ROOT = Path(__file__).resolve().parents[1]
EPOCHS, KILL_AT = 4, 2

KILLER = """
import os, signal, sys
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads(1)
import elliot_visual.training.loop as loop
import elliot_visual.reports.elliot_format as reports
config, where, target, epoch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if where == "training":
    save = loop._save
    def killing_save(path, obj):
        save(path, obj)
        if path.name == "last.pt" and target in str(path) and obj["epoch"] == epoch:
            os.kill(os.getpid(), signal.SIGKILL)
    loop._save = killing_save
else:
    write = reports.write_recommendations
    def killing_write(*args, **kwargs):
        written = write(*args, **kwargs)
        if target in written.name:
            os.kill(os.getpid(), signal.SIGKILL)
        return written
    reports.write_recommendations = killing_write
from elliot_visual.experiment import run_experiment
run_experiment(config)
"""


def _project(root: Path) -> Path:
    rng = np.random.default_rng(1)
    lines = [f"u{u}\ti{i}\t1\t{100 * u + n}" for u in range(16)
             for n, i in enumerate(rng.choice(np.arange(u % 2, 24, 2), size=7, replace=False))]
    write_text(root / "data" / "ds.tsv", "\n".join(lines) + "\n")
    config = {"experiment": {
        "dataset": "kill", "data_config": {"strategy": "dataset", "dataset_path": "data/ds.tsv"},
        "splitting": {"test_splitting": {"strategy": "temporal_hold_out", "leave_n_out": 1},
                      "validation_splitting": {"strategy": "temporal_hold_out", "leave_n_out": 1}},
        "top_k": 5, "evaluation": {"cutoffs": [5], "simple_metrics": ["Recall", "nDCG"]}, "threads": 1,
        "path_output_rec_result": "results/recs", "path_output_rec_weight": "results/weights",
        "path_output_rec_performance": "results/performance", "path_output_figures": "results/figures",
        "models": {"MostPop": {"meta": {"save_recs": True}},
                   "BPRMF": {"meta": {"restore": True, "save_weights": True, "save_recs": True, "verbose": True},
                             "epochs": EPOCHS, "batch_size": 8, "factors": [2, 3], "lr": 0.05, "seed": 3}}}}
    path = root / "config.yml"
    write_text(path, yaml.safe_dump(config))
    return path


def _kill(config: Path, where: str, target: str, epoch: int = 0) -> None:
    script = KILLER.format(root=str(ROOT))
    process = subprocess.run([sys.executable, "-c", script, str(config), where, target, str(epoch)],
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, timeout=300)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]


def _reports(root: Path) -> dict[str, bytes]:
    """Every report file by name with its time stamp removed (the manifest, which names them, aside)."""
    stamp = re.compile(r"_\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}")
    files = [p for folder in ("performance", "recs") for p in (root / "results" / folder).glob("*")
             if p.is_file() and not p.name.startswith("manifest_")]
    return {stamp.sub("", p.name): p.read_bytes() for p in files}


def _runs(log: Path) -> list[str]:
    return log.read_text().split(" started\n")[1:]


def test_a_grid_killed_mid_trial_resumes_without_redoing_a_trial_or_an_epoch(tmp_path: Path) -> None:
    reference = run_experiment(_project(tmp_path / "clean"))
    assert verify_manifest(reference.manifest) == []

    config = _project(tmp_path / "killed")
    _kill(config, "training", "factors=3", KILL_AT)           # trial 2 of 2, right after epoch 2's checkpoint
    performance = tmp_path / "killed" / "results" / "performance"
    assert not list(performance.glob("manifest_*"))            # nothing marks the killed run as finished
    resumed = run_experiment(config)

    [killed_run, rerun] = _runs(resumed.log_file)
    assert "factors=3" in killed_run and "epoch 2/4" in killed_run and "epoch 3/4" not in killed_run.split(
        "factors=3")[-1]
    trained = re.findall(r"(BPRMF\S*factors=(\d)\S*): epoch (\d)/4", rerun)
    assert [(f, int(e)) for _, f, e in trained] == [("3", 3), ("3", 4)]   # only the unfinished epochs
    assert re.search(r"factors=2\S*: resumed from epoch 4", rerun)        # the finished trial: restored
    assert re.search(r"factors=3\S*: resumed from epoch 2", rerun)
    assert _reports(tmp_path / "killed") == _reports(tmp_path / "clean")
    assert verify_manifest(resumed.manifest) == []


def test_a_run_killed_while_writing_reports_is_marked_incomplete(tmp_path: Path) -> None:
    config = _project(tmp_path)
    _kill(config, "reports", "MostPop")                       # after the tables, during the recommendation files
    performance = tmp_path / "results" / "performance"
    assert list(performance.glob("rec_cutoff_5_*.tsv"))       # a complete-looking table...
    assert not list(performance.glob("manifest_*"))           # ...but no manifest: the run did not finish
    summary = run_experiment(config)
    assert summary.manifest is not None and verify_manifest(summary.manifest) == []
    recs = {p.name for p in (tmp_path / "results" / "recs").glob("*.tsv")}
    assert len(recs) == 3 and {e["path"] for e in __import__("json").loads(summary.manifest.read_text())["files"]} >= {
        f"../recs/{name}" for name in recs}
