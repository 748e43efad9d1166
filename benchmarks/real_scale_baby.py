"""Amazon Baby 5-core at real scale through the whole pipeline: time per epoch, peak memory, metrics.

    python benchmarks/real_scale_baby.py                          # every model, 2 threads, CPU
    python benchmarks/real_scale_baby.py --epochs 5 --models VBPR BPRMF --workdir /tmp/baby
    python benchmarks/real_scale_baby.py --gpu 0                  # CUDA device 0 when present

Data: the MMRec / LATTICE split of Amazon Baby 5-core in ``../shared/data/amazon_baby_5core``
(19,445 users, 7,050 items, 160,792 interactions: train/val/test.json, random 8:1:1 per user),
read as it is (``data_config.layout: mmrec``, ``strategy: fixed``). Nothing is written into the
repository: the generated features, one YAML config per model and Elliot's result folders go to
``--workdir`` (default ``/tmp/elliot_visual_real_scale_baby``).

Features are synthetic (no real Baby image features exist offline), seeded, and carry a signal:

* ``visual_features`` (n_items, 4096) float32, the width of McAuley's AlexNet fc7 features:
  ReLU(z_i W + noise), with z_i a 64-d item embedding from a truncated SVD of the TRAIN
  item-user matrix (co-interaction structure, no validation or test rows), W a fixed random
  Gaussian projection to 4096-d, and unit Gaussian noise of the same variance as the signal. So
  "visual" similarity here is a noisy collaborative similarity, which favours the visual models
  more than real image features would; read the metrics as a pipeline check, not as a result.
  VNPR reads ``visual_pca_features`` = PCA(128) of these, fitted by the pipeline on train items.
* ``visual_feat_map_features`` (n_items, 49, 256) float16 for ACF: ReLU(g_r z_i W_m + noise) per
  region r of a 7x7 grid, g_r in [0, 1] a random per-region gain (so some regions carry more
  signal than others and the component attention has something to find). Why (49, 256): 49
  regions is the 7x7 grid of the last conv block of ResNet-50 / VGG, the maps ACF was designed
  for; 256 channels instead of ResNet's 2048 keeps the maps at 177 MB (float16) and ACF's
  per-batch projection of the distinct items' maps affordable on a 2-core CPU. With 2048
  channels the maps would take 1.4 GB and each step's (items x 49 x 2048) @ (2048 x 128)
  projection would cost 8x more; on a GPU ``--map-channels 2048`` is the faithful size.

Each model runs alone in a child process (so its peak RSS is its own) through
``elliot_visual.experiment.run_experiment``: read -> align features -> train -> evaluate ->
Elliot's report files, one fixed configuration each (no grid search), validated once, at the last
epoch (``--validation-rate`` to validate more often), on Recall@20. ``s/epoch`` is the time of
the training loop (sampler, loss, backward, Adam step) divided by the epochs trained, with the
validation passes timed apart and subtracted (``cpu s/epoch``: the same in process CPU time, all
threads, the steadier figure on a shared machine); ``s/eval pass`` is the mean wall time of one
full-ranking evaluation (every user against every item, then the metrics); ``RSS at start`` is
the child's RSS after importing torch and the package, ``peak RSS`` its peak resident memory
(``VmHWM``: data, features, model, optimizer state and evaluation together). MostPop has no epochs; its
``s/epoch`` column shows its one fit. The table is printed and written to the workdir as
``real_scale_baby.tsv`` and ``real_scale_baby.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elliot_visual.data.readers import read_mmrec_split  # noqa: E402
from elliot_visual.storage import write_json, write_npy, write_text  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "amazon_baby_5core"
DATASET = "amazon_baby_5core"
CUTOFFS = (20, 100)
METRICS = ["Recall", "nDCG", "AUC", "ItemCoverage", "EFD"]
RESULT_MARK = "REAL_SCALE_RESULT "
EMBEDDING_DIM = 64
REGIONS = 49

# One configuration per model (no grid search): Elliot's parameter names, widths as in the
# CNNs-in-VRSs study's Baby grid (config_files/baby.yml), lr and l_w at its middle values, batch 256.
# VNPR is the exception, sized for a CPU: ranking every item for every user runs its MLP on all
# 19,445 x 7,050 pairs, n_users * n_items * h * (mf_factors + PCA width) multiply-adds per tower and
# evaluation pass; at the study's mf_factors 64 and (128, 64, 1) with Elliot's two towers that is
# 2 x 4.5 T, ~19 min per pass on this 2-core machine (three passes per run: validation in the loop,
# validation and test after it), against ~80 s at mf_factors 32, (32, 1) and one shared tower (the
# demo's choice; see VNPR's docstring on why Elliot's two towers trail BPR-MF).
MODELS: dict[str, dict[str, Any]] = {
    "MostPop": {},
    "BPRMF": {"batch_size": 256, "factors": 64, "lr": 0.001, "l_w": 0.00001, "l_b": 0},
    "VBPR": {"batch_size": 256, "factors": 64, "factors_d": 20, "lr": 0.001, "l_w": 0.00001, "l_b": 0,
             "loader": "visual"},
    "DeepStyle": {"batch_size": 256, "factors": 64, "lr": 0.001, "l_w": 0.00001, "loader": "visual"},
    "VNPR": {"batch_size": 256, "mf_factors": 32, "mlp_hidden_size": "(32, 1)", "dropout": 0.4, "towers": 1,
             "lr": 0.001, "l_w": 0.00001, "l_v": 0.00001, "loader": "visual"},
    "ACF": {"batch_size": 256, "factors": 64, "layers_component": "(64, 1)", "layers_item": "(64, 1)",
            "lr": 0.001, "l_w": 0.00001, "loader": "maps"},
}


def require_data(folder: Path) -> None:
    """Stop with a clear message when the Baby split is not where the benchmark reads it."""
    missing = [name for name in ("train.json", "val.json", "test.json", "item2id.json", "user2id.json")
               if not (folder / name).is_file()]
    if missing:
        sys.exit(f"Amazon Baby 5-core not found: {folder} lacks {', '.join(missing)}. This benchmark reads the "
                 "MMRec/LATTICE split kept in ../shared/data/amazon_baby_5core (see ../shared/data/README.md); "
                 "pass --data FOLDER to read it elsewhere.")


def item_embeddings(train: pd.DataFrame, item_ids: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """(n_items, dim) standardised item factors of the binary TRAIN item-user matrix (truncated SVD).

    Items without train rows get zeros (their features are then pure noise, as an unseen item's
    image tells little about who buys it).
    """
    from sklearn.utils.extmath import randomized_svd

    rows = pd.Index(item_ids).get_indexer(train["item"])
    users = pd.factorize(train["user"])[0]
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, users)), shape=(len(item_ids), users.max() + 1))
    matrix.data[:] = 1.0
    left, singular, _ = randomized_svd(matrix, dim, random_state=seed)
    z = left * np.sqrt(singular)
    z = (z - z.mean(0)) / (z.std(0) + 1e-12)
    z[np.asarray(matrix.sum(1)).ravel() == 0] = 0.0
    return z.astype(np.float32)


def make_features(data: Path, out: Path, dim: int, channels: int, seed: int) -> dict[str, Path]:
    """Write seeded synthetic 4096-d vectors and (49, channels) maps for every item of ``data``.

    Reused when ``out`` already holds features made with the same settings. Returns the two
    feature folders (``features.npy`` + ``item_ids.txt`` each, the layout extraction writes).
    """
    settings = {"data": str(data), "dim": dim, "regions": REGIONS, "channels": channels, "seed": seed,
                "embedding_dim": EMBEDDING_DIM, "version": 1}
    folders = {"visual": out / f"vectors_{dim}", "maps": out / f"maps_{REGIONS}x{channels}"}
    stamp = out / "settings.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == settings:
        return folders
    item_ids = np.asarray(list(json.loads((data / "item2id.json").read_text())), dtype=object)
    train, _, _ = read_mmrec_split(data)
    rng = np.random.default_rng(seed)
    z = item_embeddings(train, item_ids, EMBEDDING_DIM, seed)
    ids_text = "\n".join(str(i) for i in item_ids) + "\n"

    projection = rng.standard_normal((EMBEDDING_DIM, dim), dtype=np.float32) / np.sqrt(EMBEDDING_DIM)
    vectors = np.empty((len(item_ids), dim), dtype=np.float32)
    map_projection = rng.standard_normal((EMBEDDING_DIM, channels), dtype=np.float32) / np.sqrt(EMBEDDING_DIM)
    gains = rng.uniform(0.0, 1.0, REGIONS).astype(np.float32)
    maps = np.empty((len(item_ids), REGIONS, channels), dtype=np.float16)
    for start in range(0, len(item_ids), 500):  # blocks keep the float32 temporaries small
        stop = min(start + 500, len(item_ids))
        signal = z[start:stop] @ projection
        vectors[start:stop] = np.maximum(signal + rng.standard_normal(signal.shape, dtype=np.float32), 0)
        base = (z[start:stop] @ map_projection)[:, None, :] * gains[None, :, None]
        maps[start:stop] = np.maximum(base + rng.standard_normal(base.shape, dtype=np.float32), 0)
    for name, values in (("visual", vectors), ("maps", maps)):
        folders[name].mkdir(parents=True, exist_ok=True)
        write_npy(folders[name] / "features.npy", values)
        write_text(folders[name] / "item_ids.txt", ids_text)
    for stale in out.glob("**/*_pca*.npz"):  # a PCA cached for older features must not be reused
        stale.unlink()
    write_json(stamp, settings)
    return folders


def experiment_config(model: str, data: Path, features: dict[str, Path], workdir: Path, epochs: int,
                      validation_rate: int, gpu: int, threads: int, seed: int) -> dict[str, Any]:
    """The YAML config (as a dict) running ``model`` alone on the fixed MMRec split."""
    results = workdir / "results" / model
    params = dict(MODELS[model])
    entry: dict[str, Any] = {"meta": {"save_recs": False}}
    if model != "MostPop":
        entry["meta"].update(validation_metric=f"Recall@{CUTOFFS[0]}", validation_rate=min(validation_rate, epochs))
        params["epochs"] = epochs
    entry.update(params)
    return {"experiment": {
        "dataset": DATASET,
        "data_config": {
            "strategy": "fixed", "layout": "mmrec", "root_folder": str(data),
            "side_information": [
                {"dataloader": "FeatureVectors", "name": "visual", "path": str(features["visual"]),
                 "n_components": 128},
                {"dataloader": "FeatureMaps", "name": "maps", "path": str(features["maps"]), "layout": "rc"},
            ]},
        "top_k": max(CUTOFFS),
        "evaluation": {"cutoffs": list(CUTOFFS), "simple_metrics": METRICS, "relevance_threshold": 1},
        "gpu": gpu,
        "threads": threads,
        "random_seed": seed,
        "path_output_rec_result": str(results / "recs"),
        "path_output_rec_weight": str(results / "weights"),
        "path_output_rec_performance": str(results / "performance"),
        "path_output_figures": str(results / "figures"),
        "models": {model: entry},
    }}


def timed_train(train: Callable, log: list[dict[str, float]]) -> Callable:
    """``train`` that also records its wall time and the time spent in its validation passes."""

    def wrapper(model: Any, data: Any, config: Any, validate: Callable | None = None) -> Any:
        spent, spent_cpu = [0.0], [0.0]

        def timed_validate(m: Any) -> Any:
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                return validate(m)
            finally:
                spent[0] += time.perf_counter() - start
                spent_cpu[0] += time.process_time() - cpu_start

        start, cpu_start = time.perf_counter(), time.process_time()
        result = train(model, data, config, None if validate is None else timed_validate)
        log.append({"train_s": time.perf_counter() - start, "train_cpu_s": time.process_time() - cpu_start,
                    "validation_s": spent[0], "validation_cpu_s": spent_cpu[0],
                    "epochs": len(result.history) if model.is_gradient_model() else 0})
        return result

    return wrapper


def timed_evaluate(evaluate: Callable, log: list[float]) -> Callable:
    """``evaluate`` that also records the wall time of each full-ranking pass."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return evaluate(*args, **kwargs)
        finally:
            log.append(time.perf_counter() - start)

    return wrapper


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM`` of ``/proc/self/status``.

    Not ``ru_maxrss``: Linux carries it across ``execve``, so a child started by a parent that
    once held more memory (here: while generating the features) would report the parent's peak.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(config_path: Path, model: str) -> dict[str, Any]:
    """Child process: run the experiment of ``config_path`` and return its row of the table."""
    import elliot_visual.tuning.tune as tune
    from elliot_visual.experiment import run_experiment

    log: list[dict[str, float]] = []
    passes: list[float] = []
    tune.train = timed_train(tune.train, log)
    tune.evaluate = timed_evaluate(tune.evaluate, passes)
    import_rss = peak_rss_mb()  # torch alone is ~0.7 GB
    start = time.perf_counter()
    summary = run_experiment(config_path)
    total = time.perf_counter() - start
    outcome = summary.outcomes[0]
    timing = log[-1]
    epochs = int(timing["epochs"])
    loop_s = timing["train_s"] - timing["validation_s"]
    loop_cpu_s = timing["train_cpu_s"] - timing["validation_cpu_s"]
    row: dict[str, Any] = {
        "model": model, "epochs": epochs or "-",
        "s/epoch": round(loop_s / max(epochs, 1), 2), "cpu s/epoch": round(loop_cpu_s / max(epochs, 1), 2),
        "eval passes": len(passes), "s/eval pass": round(float(np.mean(passes)), 1) if passes else "-",
        "total s": round(total, 1),
        "RSS at start MB": round(import_rss),
        "peak RSS MB": round(peak_rss_mb()),
        "best epoch": outcome.best.best_iteration if epochs else "-",
    }
    values = outcome.best.test.values
    for k in CUTOFFS:
        for metric in METRICS:
            if metric == "AUC" and k != CUTOFFS[0]:
                continue  # cutoff-independent
            row[metric if metric == "AUC" else f"{metric}@{k}"] = round(float(values[k][metric]), 5)
    return row


def markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``table`` (no extra dependency)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the MMRec split folder (train/val/test.json)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/elliot_visual_real_scale_baby"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--validation-rate", type=int, default=0, help="validate every N epochs (0: last epoch only)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (BLAS threads too)")
    parser.add_argument("--gpu", type=int, default=-1, help="the config's gpu key: -1 CPU, n CUDA device n")
    parser.add_argument("--dim", type=int, default=4096, help="width of the synthetic feature vectors")
    parser.add_argument("--map-channels", type=int, default=256, help="channels of ACF's (49, C) feature maps")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model", choices=list(MODELS), help=argparse.SUPPRESS)  # child: run one model
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.model:
        print(RESULT_MARK + json.dumps(run_one(args.config, args.model)), flush=True)
        return

    require_data(args.data)
    args.workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    features = make_features(args.data, args.workdir / "features", args.dim, args.map_channels, args.seed)
    print(f"features ready in {time.perf_counter() - start:.1f} s: {features['visual']}, {features['maps']}", flush=True)
    env = {**os.environ, **{name: str(args.threads) for name in
                            ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
    rows = []
    for model in args.models:
        config = experiment_config(model, args.data, features, args.workdir, args.epochs,
                                   args.validation_rate or args.epochs, args.gpu, args.threads, args.seed)
        config_path = args.workdir / "configs" / f"{model}.yml"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        write_text(config_path, yaml.safe_dump(config, sort_keys=False))
        print(f"\n== {model} ({config_path})", flush=True)
        command = [sys.executable, str(Path(__file__).resolve()), "--model", model, "--config", str(config_path),
                   "--threads", str(args.threads)]
        child = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=env)
        lines = child.stdout.splitlines()
        print("\n".join(line for line in lines if not line.startswith(RESULT_MARK)), flush=True)
        if child.returncode != 0:
            print(f"{model} failed (exit {child.returncode}); see the messages above", flush=True)
            rows.append({"model": model, "epochs": "failed"})
            continue
        rows.append(json.loads(next(line for line in reversed(lines) if line.startswith(RESULT_MARK))
                               [len(RESULT_MARK):]))
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows).fillna("")
    elapsed = time.perf_counter() - start
    title = (f"Amazon Baby 5-core (MMRec split), synthetic {args.dim}-d vectors and (49, {args.map_channels}) maps, "
             f"{args.epochs} epochs, device {'cpu' if args.gpu < 0 else f'cuda:{args.gpu}'}, "
             f"{args.threads} threads, torch {torch.__version__}; whole run {elapsed / 60:.1f} min")
    write_text(args.workdir / "real_scale_baby.tsv", table.to_csv(sep="\t", index=False))
    write_text(args.workdir / "real_scale_baby.md", f"{title}\n\n{markdown(table)}")
    print(f"\n{title}")
    print(table.to_string(index=False))
    print(f"\ntable written to {args.workdir / 'real_scale_baby.tsv'} and .md")


if __name__ == "__main__":
    main()
