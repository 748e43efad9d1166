"""The Ray Tune backend: the local backend's selection and report files, failed trials recorded,
and a driver killed mid-study resuming without training its finished trials again."""
from __future__ import annotations

import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from elliot_visual.data.synthetic import write_planted_dataset
from elliot_visual.experiment import run_experiment

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("local_ray")

CONFIG = """\
experiment:
  dataset: mini
  data_config:
    strategy: dataset
    dataset_path: ../data/{{0}}/dataset.tsv
  splitting:
    test_splitting: {{strategy: temporal_hold_out, leave_n_out: 1}}
    validation_splitting: {{strategy: temporal_hold_out, leave_n_out: 1}}
  top_k: 10
  evaluation:
    cutoffs: [5, 10]
    simple_metrics: [Recall, nDCG, AUC]
  gpu: -1
  threads: 1
  path_output_rec_result: ../results/{label}/recs
  path_output_rec_weight: ../results/{label}/weights
  path_output_rec_performance: ../results/{label}/performance
  path_output_figures: ../results/{label}/figures
{ray}
  models:
    MostPop:
      meta: {{save_recs: True}}
    BPRMF:
      meta:
        hyper_opt_alg: {algorithm}
        validation_metric: Recall@10
        validation_rate: 1
        save_recs: True
      epochs: 3
      batch_size: 16
      factors: {factors}
      lr: {lrs}
      seed: 7
"""
GRID = "[0.01, 0.05]"
STAMP = re.compile(r"_\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    write_planted_dataset(root / "data" / "mini", n_users=40, n_items=60, n_styles=4, feature_dim=8,
                          interactions_per_user=8, seed=3)
    (root / "config_files").mkdir()
    return root


def write_config(project: Path, label: str, ray: str = "", lrs: str = GRID, factors: str = "[4, 8]",
                 algorithm: str = "grid") -> Path:
    path = project / "config_files" / f"{label}.yml"
    path.write_text(CONFIG.format(label=label, ray=ray, lrs=lrs, factors=factors, algorithm=algorithm))
    return path


def ray_block(storage: Path, address: str = "local", concurrent: int = 2) -> str:
    return (f"  ray:\n    address: {address}\n    max_concurrent_trials: {concurrent}\n"
            f"    storage_path: {storage}\n")


# The run record, its page, the log and the manifest (checksums of those) say when and how long the
# run took and which config file ran: compared by name only.
RUN_RECORDS = ("run.json", "report.html", "elliot.log")


def without_seconds(history: bytes) -> bytes:
    """A per-epoch history table without its wall-time column."""
    rows = [line.split("\t") for line in history.decode().splitlines()]
    keep = [i for i, name in enumerate(rows[0]) if name != "seconds"]
    return "\n".join("\t".join(row[i] for i in keep) for row in rows).encode()


def report_files(results: Path) -> dict[str, bytes]:
    """Every report file of a run, its time stamp removed from the name (the run record's files
    by name only, the training histories without their wall times)."""
    def content(path: Path) -> bytes:
        if path.name in RUN_RECORDS or path.name.startswith("manifest"):
            return b""
        return without_seconds(path.read_bytes()) if path.name == "history.tsv" else path.read_bytes()

    return {STAMP.sub("", str(p.relative_to(results))): content(p) for p in sorted(results.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def local_run(project: Path) -> dict[str, bytes]:
    run_experiment(write_config(project, "local"))
    return report_files(project / "results" / "local")


def test_ray_backend_writes_the_local_backends_report_files(project: Path, local_run: dict[str, bytes],
                                                            local_ray: Path) -> None:
    summary = run_experiment(write_config(project, "tuned_on_ray", ray_block(local_ray / "same")))
    on_ray = report_files(project / "results" / "tuned_on_ray")
    assert sorted(on_ray) == sorted(local_run)
    assert len([name for name in on_ray if name.startswith("recs/BPRMF")]) == 4  # every trial's lists
    for name, content in local_run.items():
        assert on_ray[name] == content, name
    best = json.loads(local_run["performance/bestmodelparams_cutoff_5_relthreshold_0.json"])
    assert best[2]["recommender"] == summary.outcomes[1].best.name
    # each validation event reached Tune as it happened: 3 epochs, then the trial's end
    progress = sorted((local_ray / "same").glob("BPRMF_fold0_*/*/progress.csv"))
    assert len(progress) == 4
    for table in progress:
        rows = table.read_text().splitlines()
        assert len(rows) == 1 + 3 + 1 and "Recall@10" in rows[0]


def test_failed_and_stopped_trials_are_recorded_and_the_study_goes_on(project: Path, local_ray: Path) -> None:
    """lr 1e30 diverges (NaN loss: recorded as failed inside the trial); lr 1e-6 barely moves from its
    initialisation, so ASHA stops it at its first validation event, behind the lr 0.05 trial."""
    asha = "    scheduler: {name: asha, grace_period: 1, reduction_factor: 2}\n"
    summary = run_experiment(write_config(project, "diverging", ray_block(local_ray / "diverging", concurrent=1)
                                          + asha, lrs="[0.05, 1.0e+30, 1.0e-6]", factors="4"))
    trials = summary.outcomes[1].trials
    assert [t.status for t in trials] == ["ok", "failed", "stopped"]
    assert "training diverged at epoch 1: the loss became nan" in trials[1].error
    assert trials[2].error.startswith("stopped by the scheduler after ")   # 1 or 2 events: ASHA's rung timing
    assert summary.outcomes[1].best.params.lr == 0.05
    table = next((project / "results" / "diverging" / "performance").glob("rec_BPRMF_cutoff_10_*.tsv"))
    header, *rows = table.read_text().splitlines()
    assert header.split("\t") == ["model", "Recall", "nDCG", "AUC", "failed", "stopped"]
    cells = [row.split("\t") for row in rows]
    assert [bool(c[4]) for c in cells] == [False, True, False] and [bool(c[5]) for c in cells] == [False, False, True]
    assert cells[1][1:4] == ["", "", ""] and "training diverged" in cells[1][4]
    assert all(value != "" for value in cells[0][1:4])
    recs = [p.name for p in (project / "results" / "diverging" / "recs").glob("BPRMF*")]
    assert len(recs) == 1 and "_lr=0$05_" in recs[0]  # lists of evaluated trials only


def test_hyperopt_forms_search_the_same_space_through_hyperoptsearch(project: Path, local_ray: Path) -> None:
    summary = run_experiment(write_config(project, "tpe", ray_block(local_ray / "tpe"), factors="4",
                                          lrs="[loguniform, -6, -2]", algorithm="tpe\n        hyper_max_evals: 3"))
    trials = summary.outcomes[1].trials
    assert [t.status for t in trials] == ["ok"] * 3
    rates = [t.params.lr for t in trials]
    assert len(set(rates)) == 3 and all(math.exp(-6) <= r <= math.exp(-2) for r in rates)
    assert summary.outcomes[1].best is min(trials, key=lambda t: t.loss)


DRIVER = """\
import logging, sys
sys.path.insert(0, {repo!r})
logging.basicConfig(level=logging.INFO)
from elliot_visual.experiment import run_experiment
run_experiment({config!r})
"""


def test_killed_driver_resumes_without_training_finished_trials_again(
        project: Path, local_run: dict[str, bytes], local_ray: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    import ray

    storage = local_ray / "killed"
    # the killed driver joins this test's Ray instance, one trial at a time
    address = ray.get_runtime_context().gcs_address
    config = write_config(project, "killed", ray_block(storage, address=address, concurrent=1))
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(repo=str(REPO), config=str(config)))
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    deadline = time.monotonic() + 240
    try:
        while not list(storage.glob("BPRMF_fold0_*/outcomes/*.pkl")):
            assert process.poll() is None, "the study ended before it could be killed"
            assert time.monotonic() < deadline, "no trial finished in 240 s"
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finished = {p: p.stat().st_mtime_ns for p in storage.glob("BPRMF_fold0_*/outcomes/*.pkl")}
    assert 1 <= len(finished) < 4
    assert not list((project / "results" / "killed" / "performance").glob("rec_cutoff_*"))  # killed mid-study

    with caplog.at_level(logging.INFO, logger="elliot_visual.tuning.ray_backend"):
        run_experiment(config)  # the rerun (in this process) restores Tune's experiment state
    assert "BPRMF: resuming the Ray Tune study in" in caplog.text
    outcomes = sorted(storage.glob("BPRMF_fold0_*/outcomes/*.pkl"))
    assert len(outcomes) == 4
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # not trained (nor written) again
    resumed = report_files(project / "results" / "killed")
    assert resumed == local_run
