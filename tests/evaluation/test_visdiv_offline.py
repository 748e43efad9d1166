"""``elliot-visual visdiv --config ...``: VisDiv and pictures from saved recommendation files, no retraining."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from elliot_visual.cli import main
from elliot_visual.config import load_experiment
from elliot_visual.data.loading import prepare_data
from elliot_visual.data.synthetic import make_planted_dataset, write_planted_dataset

CONFIG = """
experiment:
  dataset: planted
  data_config:
    strategy: dataset
    dataset_path: ../data/dataset.tsv
    side_information:
      - dataloader: VisualAttribute
        visual_features: ../data/visual_features.npy
  splitting:
    test_splitting: {{strategy: temporal_hold_out, test_ratio: 0.2}}
  top_k: 10
  evaluation:
    cutoffs: [5, 10]
    simple_metrics: [Recall]
    paired_ttest: True
    complex_metrics:
      - metric: VisDiv
        n_jobs: 1
        max_iter: 400
        figure_sample: 2
        figure_seed: 3
        cache_folder: ../results/{{0}}/visdiv_cache
{extra}
  models:
    MostPop:
      meta: {{save_recs: True}}
"""


def write_recs(path: Path, lists: dict[str, list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{u}\t{i}\t{10.0 - r}\n" for u, items in lists.items() for r, i in enumerate(items)))
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A planted dataset, its config, and two saved lists: one from each user's own styles, one random."""
    root = tmp_path_factory.mktemp("visdiv")
    planted = make_planted_dataset(n_users=80, n_items=160, n_styles=4, feature_dim=16, seed=5)
    write_planted_dataset(root / "data", planted)
    config = root / "config_files" / "planted.yml"
    config.parent.mkdir()
    config.write_text(CONFIG.format(extra=""))
    data = prepare_data(load_experiment(config).data, verbose=False)[0][0]
    catalogue = set(data.item_ids)
    seen = planted.interactions.groupby("user")["item"].apply(set)
    rng = np.random.default_rng(1)
    own, uniform = {}, {}
    for u, styles in zip(planted.user_ids, planted.user_styles):
        pool = [i for i in planted.item_ids if i in catalogue and i not in seen[u]]
        liked = [i for i in pool if planted.item_styles[int(i)] in styles]
        own[u] = list(rng.choice(liked, 10, replace=False))
        uniform[u] = list(rng.choice(pool, 10, replace=False))
    del own[planted.user_ids[-1]]  # one user without a saved list: skipped, not a NaN mean
    recs = root / "results" / "planted" / "recs"
    write_recs(recs / "StyleRec.tsv", own)
    write_recs(recs / "Random_seed=42.tsv", uniform)
    return config


def test_visdiv_command_writes_values_per_user_values_tests_and_pictures(project: Path, caplog, capsys) -> None:
    assert main(["visdiv", "--config", str(project)]) == 0
    performance = project.parent.parent / "results" / "planted" / "performance"
    [table_file] = performance.glob("visdiv_2*.tsv")
    table = pd.read_csv(table_file, sep="\t")
    assert list(table.columns) == ["model", "cutoff", "VisDiv[global]"]
    assert sorted(zip(table.model, table.cutoff)) == [("Random_seed=42", 5), ("Random_seed=42", 10),
                                                       ("StyleRec", 5), ("StyleRec", 10)]
    value = table.set_index(["model", "cutoff"])["VisDiv[global]"]
    assert value["Random_seed=42", 10] > 2.0 * value["StyleRec", 10]
    assert "skipped 0 users without training positives and 1 without recommendations (of 80)" in caplog.text
    # The run's writer: Elliot's performance table per cutoff, holding the same values.
    [elliot_file] = performance.glob("rec_cutoff_10_relthreshold_*.tsv")
    elliot = pd.read_csv(elliot_file, sep="\t").set_index("model")
    assert list(elliot.columns) == ["VisDiv[global]"]
    assert elliot.loc["StyleRec", "VisDiv[global]"] == value["StyleRec", 10]

    [per_user_file] = performance.glob("visdiv_per_user_*.tsv")
    per_user = pd.read_csv(per_user_file, sep="\t", dtype={"user": str})
    counts = per_user.groupby(["model", "cutoff"]).size()
    assert counts["StyleRec", 10] == 79 and counts["Random_seed=42", 10] == 80
    mean = per_user[(per_user.model == "StyleRec") & (per_user.cutoff == 10)]["value"].mean()
    assert mean == pytest.approx(value["StyleRec", 10])
    [ttest] = performance.glob("stat_paired_ttest_visdiv_cutoff_10_*.tsv")
    rows = [line.split("\t") for line in ttest.read_text().splitlines()]
    assert [r[:3] for r in rows] == [["Random_seed=42", "StyleRec", "VisDiv[global]"],
                                     ["StyleRec", "Random_seed=42", "VisDiv[global]"]]
    assert float(rows[0][3]) < 0.01

    figures_root = project.parent.parent / "results" / "planted" / "figures"
    [figures] = figures_root.glob("offline_*")  # beside the run's own pictures, never over them
    assert not list(figures_root.glob("*.png"))
    singles = sorted(figures.glob("visdiv_VisDiv_global_at10_user*.png"))
    grids = sorted(figures.glob("visdiv_user*_grid.png"))
    assert len(singles) == 4 and len(grids) == 2  # 2 sampled users x 2 models, one grid per user
    assert {p.name.rsplit("_", 1)[1] for p in singles} == {"Random.png", "StyleRec.png"}  # short names
    assert (figures / "models.tsv").read_text().splitlines() == [
        "short\tmodel", "Random\tRandom_seed=42", "StyleRec\tStyleRec"]
    assert all(Image.open(g).size[0] > 1.5 * Image.open(singles[0]).size[0] for g in grids)
    assert list((project.parent.parent / "results" / "planted" / "visdiv_cache").glob("*.npy"))
    assert "StyleRec\t10\t" in capsys.readouterr().out


def test_chosen_users_are_drawn(project: Path, tmp_path: Path) -> None:
    config = tmp_path / "config_files" / "chosen.yml"
    config.parent.mkdir()
    text = project.read_text().replace("figure_sample: 2", "figure_users: ['3']").replace(
        "../data", str(project.parent.parent / "data")).replace("paired_ttest: True", "paired_ttest: False")
    config.write_text(text)
    recs = sorted((project.parent.parent / "results" / "planted" / "recs").glob("*.tsv"))
    assert main(["visdiv", "--config", str(config), "--recs", *map(str, recs)]) == 0
    grids = list((tmp_path / "results" / "planted" / "figures").glob("offline_*/*_grid.png"))
    assert [g.name for g in grids] == ["visdiv_user3_grid.png"]


def test_recommended_items_outside_the_catalogue_are_an_error_naming_them(project: Path, tmp_path: Path,
                                                                           capsys) -> None:
    bad = write_recs(tmp_path / "Bad.tsv", {"0": ["1", "no-such-item"]})
    assert main(["visdiv", "--config", str(project), "--recs", str(bad)]) == 2
    message = capsys.readouterr().err
    assert "Bad.tsv: 1 recommended items are not in the dataset's catalogue" in message
    assert "no-such-item" in message
