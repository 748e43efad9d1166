"""The Python API (a path or a mapping in, a typed summary out), the CLI's help, and keys that must not deceive."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from elliot_visual import run_experiment
from elliot_visual.cli import main
from elliot_visual.config import ConfigError, load_experiment
from elliot_visual.storage import verify_manifest, write_text

ROOT = Path(__file__).resolve().parents[1]


def _write_data(root: Path) -> None:
    rng = np.random.default_rng(2)
    lines = [f"u{u}\ti{i}\t{1 + n % 5}\t{100 * u + n}" for u in range(16)
             for n, i in enumerate(rng.choice(np.arange(u % 2, 24, 2), size=7, replace=False))]
    write_text(root / "data" / "ds.tsv", "\n".join(lines) + "\n")


def _config(**models: dict) -> dict:
    return {"dataset": "api", "data_config": {"strategy": "dataset", "dataset_path": "data/ds.tsv"},
            "splitting": {"test_splitting": {"strategy": "temporal_hold_out", "leave_n_out": 1},
                          "validation_splitting": {"strategy": "temporal_hold_out", "leave_n_out": 1}},
            "top_k": 5, "evaluation": {"cutoffs": [5], "simple_metrics": ["Recall", "nDCG", "ARP"]}, "threads": 1,
            "path_output_rec_result": "out/recs", "path_output_rec_weight": "out/weights",
            "path_output_rec_performance": "out/performance", "path_output_figures": "out/figures",
            "models": models or {"MostPop": {}}}


def test_run_experiment_takes_a_mapping_and_returns_a_typed_summary(tmp_path: Path) -> None:
    _write_data(tmp_path)
    bprmf = {"meta": {"save_weights": True, "optimize_internal_loss": True}, "epochs": 3, "batch_size": 8,
             "factors": 4, "lr": [0.001, 0.05], "seed": 1}
    summary = run_experiment(_config(MostPop={}, BPRMF=bprmf), base_dir=tmp_path)
    assert {o.spec.key for o in summary.outcomes} == {"MostPop", "BPRMF"}
    metrics = summary.metrics("BPRMF")
    assert set(metrics) == {"Recall", "nDCG", "ARP"} and 0.0 <= metrics["Recall"] <= 1.0
    # optimize_internal_loss: a trial's loss is its lowest epoch loss, and the lowest loss wins (lr 0.05)
    outcome = summary.outcome("BPRMF")
    for trial in outcome.trials:
        assert trial.loss == min(r.loss for r in trial.training[0].history)
    assert outcome.best.params.lr == 0.05 and outcome.best.loss < outcome.trials[0].loss
    # the selected model, rebuilt with its saved best weights, scores users as in the run
    model = summary.load_model("BPRMF")
    scores = model.score(torch.arange(3))
    assert scores.shape == (3, summary.folds[0][0].n_items)
    top, data = outcome.best.recommendations, summary.folds[0][0]
    for row in range(3):
        user = data.user_index[str(top.user_ids[row])]
        values = model.score(torch.tensor([user]))[0].detach().numpy().copy()
        values[data.user_positives(user)] = -np.inf            # train items are never recommended
        assert data.item_ids[int(values.argmax())] == top.item_ids[row][0]
    assert verify_manifest(summary.manifest) == []
    assert summary.log_file == tmp_path / "out" / "log" / "elliot.log"
    log = summary.log_file.read_text()
    assert "api: 1 test fold(s) x 1 validation fold(s)" in log and "finished" in log
    with pytest.raises(KeyError, match="no model entry 'VBPR'"):
        summary.outcome("VBPR")


def test_the_best_marked_in_the_summary_follows_each_metrics_direction(tmp_path: Path) -> None:
    _write_data(tmp_path)
    summary = run_experiment(_config(MostPop={}, Random={}), base_dir=tmp_path)
    [table] = [p for p in summary.files if p.name.startswith("summary_") and p.suffix == ".md"]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[3:-1]]
            for line in table.read_text().splitlines()[2:]}
    arp = {model: float(cells[2].strip("*")) for model, cells in rows.items()}
    lowest = min(arp, key=arp.get)   # MostPop recommends the most popular items: the highest ARP
    assert rows[lowest][2].startswith("**") and not rows[max(arp, key=arp.get)][2].startswith("**")


def test_config_test_checks_everything_and_trains_nothing(tmp_path: Path) -> None:
    _write_data(tmp_path)
    config = {**_config(BPRMF={"epochs": 2, "factors": 4}), "config_test": True}
    summary = run_experiment(config, base_dir=tmp_path)
    assert summary.outcomes == [] and not list((tmp_path / "out" / "performance").glob("*"))
    with pytest.raises(ConfigError, match=r"top_k 500 exceeds the catalogue of \d+ items at experiment.top_k"):
        run_experiment({**config, "top_k": 500, "evaluation": {"cutoffs": [5], "simple_metrics": ["Recall"]}},
                       base_dir=tmp_path)


def test_deceiving_keys_are_rejected_with_what_to_do(tmp_path: Path) -> None:
    _write_data(tmp_path)
    with pytest.raises(ConfigError, match=r"restore_epoch.*use -1 \(train from scratch\).*meta.restore: True"):
        load_experiment(_config(BPRMF={"meta": {"restore_epoch": 100}}), tmp_path)
    assert load_experiment(_config(BPRMF={"meta": {"restore_epoch": -1}}), tmp_path).models[0].meta.restore_epoch == -1
    assert load_experiment({**_config(), "data_config": {**_config()["data_config"], "cold_items": "none"}},
                           tmp_path).data_config.cold_items == "none"
    with pytest.raises(ConfigError, match="cold_items"):
        load_experiment({**_config(), "data_config": {**_config()["data_config"], "cold_items": "some"}}, tmp_path)
    with pytest.raises(ConfigError, match="align_side_with_train: False is not supported"):
        load_experiment({**_config(), "align_side_with_train": False}, tmp_path)


def _cli(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "elliot_visual", *args], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=60)
    return done, time.perf_counter() - start


def test_help_lists_every_command_and_answers_without_importing_the_engine() -> None:
    done, _ = _cli("--help")
    assert done.returncode == 0
    for command in ("run", "visdiv", "extract", "finetune", "prepare"):
        assert f"\n  {command} " in done.stdout
    assert "``" not in done.stdout and "::" not in done.stdout
    from elliot_visual import __version__

    version, _ = _cli("--version")
    assert version.stdout.strip() == f"elliot-visual {__version__}"
    for command in ("run", "visdiv", "prepare amazon"):
        shown, _ = _cli(*command.split(), "--help")
        assert shown.returncode == 0 and "usage: elliot-visual" in shown.stdout
        assert "``" not in shown.stdout and ":mod:" not in shown.stdout
    # imports happen after parsing: --help loads neither torch nor pandas
    probe = subprocess.run([sys.executable, "-c", "import sys\nfrom elliot_visual.cli import main\n"
                            "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
                            "print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))"],
                           capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)}, timeout=60)
    assert probe.stdout.strip().endswith("[]")


def test_quiet_prints_warnings_only_and_the_log_file_keeps_the_rest(tmp_path: Path, capsys) -> None:
    _write_data(tmp_path)
    write_text(tmp_path / "c.yml", json.dumps({"experiment": _config()}))
    assert main(["--quiet", "run", str(tmp_path / "c.yml")]) == 0
    err = capsys.readouterr().err
    assert " INFO " not in err
    assert "1 test fold(s)" in (tmp_path / "out" / "log" / "elliot.log").read_text()
    assert main(["run", str(tmp_path / "c.yml"), "--no-progress"]) == 0
    assert " INFO " in capsys.readouterr().err


def test_extraction_exports_functions_even_after_its_modules_are_imported() -> None:
    import elliot_visual.extraction as extraction
    import elliot_visual.extraction.extract  # noqa: F401  binds the package attribute to the module
    import elliot_visual.extraction.finetune  # noqa: F401
    from elliot_visual.extraction.extract import extract as extract_function

    calls = []
    original = elliot_visual.extraction.extract.extract
    try:
        elliot_visual.extraction.extract.extract = lambda config: calls.append(config) or "done"
        assert extraction.extract("cfg") == "done" and calls == ["cfg"]
    finally:
        elliot_visual.extraction.extract.extract = original
    assert extraction.extract.extract is extract_function and callable(extraction.finetune)
