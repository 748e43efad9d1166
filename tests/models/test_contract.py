"""Every registered model honours the Recommender contract (elliot_visual.testing), on the CPU."""
from __future__ import annotations

from pathlib import Path

import pytest

from elliot_visual.registry import MODELS
from elliot_visual.testing import RecommenderContract, tiny_interactions
from elliot_visual.testing.backbones import register_tiny_backbone


def _extra_params(name: str, tmp_path: Path) -> dict:
    """Required hyperparameters without defaults, per model."""
    if name == "ProxyRecommender":
        data = tiny_interactions()
        recs = tmp_path / "recs.tsv"
        recs.write_text("".join(f"{u}\t{i}\t{1.0 / (r + 1)}\n" for u in data.user_ids
                                for r, i in enumerate(data.item_ids[:6])))
        return {"path": recs}
    if name == "ImgRecEtE":  # a tiny CNN: ResNet50 is far too slow here, and its weights may be absent
        return {"backbone": register_tiny_backbone(), "weights": "random", "unfreeze_from": "conv2",
                "finetune_epochs": 1, "ft_units": 4}
    return {}


@pytest.mark.parametrize("check", RecommenderContract.CHECKS)
@pytest.mark.parametrize("name", MODELS.names())
def test_registered_model_honours_the_recommender_contract(name: str, check: str, tmp_path: Path) -> None:
    contract = RecommenderContract(MODELS.get(name), _extra_params(name, tmp_path))
    if not contract.applies(check):
        pytest.skip(f"{check} does not apply to {name} (closed-form model)")
    contract.run(check)
