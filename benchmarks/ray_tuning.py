"""Wall time of an 8-trial grid on the demo data: the local serial backend against Ray Tune.

    python benchmarks/ray_tuning.py                # local serial, then Ray with 2 concurrent trials
    python benchmarks/ray_tuning.py --ray-serial   # also Ray with 1 trial at a time (its overhead)

The grid is BPR-MF on ``data/demo`` (lr x factors x l_w = 2 x 2 x 2, 20 epochs, validation every
5), one CPU thread per trial (the demo's ``threads: 1``). Each backend runs the same config in its
own process, so each pays its own imports; the Ray rows include starting a local Ray instance
(``num_cpus: 2``). ``cpu s`` is the CPU time of the run's whole process tree (Ray's workers and
daemons included, as far as they are reaped), the figure that the neighbours' load moves least. The table also says whether every backend selected the same configuration with
the same metric values (it must). Read the ratio, measured in one run, with the machine's load
(``uptime``) printed beside it: on a shared machine the absolute seconds move with the neighbours.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CONFIG = """\
experiment:
  dataset: demo
  data_config:
    strategy: dataset
    dataset_path: {repo}/data/demo/dataset.tsv
  prefiltering:
    - {{strategy: user_k_core, core: 5}}
  splitting:
    test_splitting: {{strategy: temporal_hold_out, test_ratio: 0.2}}
    validation_splitting: {{strategy: temporal_hold_out, leave_n_out: 1}}
  top_k: 20
  evaluation:
    cutoffs: [10, 20]
    simple_metrics: [Recall, nDCG, AUC]
  gpu: -1
  threads: 1
  path_output_rec_result: {out}/recs
  path_output_rec_weight: {out}/weights
  path_output_rec_performance: {out}/performance
  path_output_figures: {out}/figures
{ray}
  models:
    BPRMF:
      meta: {{hyper_opt_alg: grid, validation_metric: Recall@20, validation_rate: 5}}
      epochs: 20
      batch_size: 256
      factors: [16, 32]
      lr: [0.01, 0.05]
      l_w: [0.001, 0.01]
      l_b: 0.001
      seed: 42
"""

RUN = """\
import json, sys, time
sys.path.insert(0, {repo!r})
start = time.perf_counter()
from elliot_visual.experiment import run_experiment
summary = run_experiment({config!r})
best = summary.outcomes[0].best
print("RESULT", json.dumps({{"seconds": time.perf_counter() - start, "best": best.name,
                             "test": best.test.values[20], "trials": len(summary.outcomes[0].trials)}}))
"""


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1].strip()


def run(label: str, ray_block: str, folder: Path) -> dict:
    out = folder / label
    config = folder / f"{label}.yml"
    config.write_text(CONFIG.format(repo=REPO, out=out, ray=ray_block))
    before = load()
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", RUN.format(repo=str(REPO), config=str(config))],
                          capture_output=True, text=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    if done.returncode != 0:
        raise SystemExit(f"{label} failed:\n{done.stderr[-4000:]}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    return {"label": label, "load_before": before, "load_after": load(), "cpu_s": cpu_s, **result}


def ray_block(folder: Path, label: str, concurrent: int) -> str:
    return (f"  ray:\n    address: local\n    num_cpus: 2\n    max_concurrent_trials: {concurrent}\n"
            f"    cpus: 1\n    storage_path: {folder / label / 'tune'}\n    temp_dir: {folder / 'r'}\n"
            "    resume: false\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ray-serial", action="store_true", help="also time Ray with one trial at a time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="evray-", dir="/tmp") as tmp:
        folder = Path(tmp)
        rows = [run("local serial", "", folder)]
        if args.ray_serial:
            rows.append(run("ray, 1 concurrent", ray_block(folder, "ray1", 1), folder))
        rows.append(run("ray, 2 concurrent", ray_block(folder, "ray2", 2), folder))
    base = rows[0]
    print(f"8-trial BPR-MF grid on data/demo, {os.cpu_count()} CPUs")
    print(f"{'backend':<20} {'trials':>6} {'wall s':>8} {'cpu s':>7} {'vs serial':>9}  {'same best & metrics':<20} "
          f"load before -> after")
    for row in rows:
        same = row["best"] == base["best"] and json.dumps(row["test"]) == json.dumps(base["test"])
        print(f"{row['label']:<20} {row['trials']:>6} {row['seconds']:>8.1f} {row['cpu_s']:>7.1f} "
              f"{base['seconds'] / row['seconds']:>8.2f}x  {'yes' if same else 'NO':<20} "
              f"{row['load_before']} -> {row['load_after']}")
    print(f"selected: {base['best']}")


if __name__ == "__main__":
    main()
