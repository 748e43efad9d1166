"""The transfer study's two tables: exact TSV and Markdown layouts."""
from __future__ import annotations

from elliot_visual.reports.transfer_tables import (BackboneRow, FinetuneRow, RankCorrelation, backbone_markdown,
                                                   backbone_tsv, finetune_markdown, finetune_tsv)

ROWS = [BackboneRow("Random", "-", None, None, "", {"Recall": 0.01, "nDCG": 0.005}),
        BackboneRow("VisRank", "resnet50", 80.858, 95.434, "torchvision ResNet50_Weights.IMAGENET1K_V2.meta",
                    {"Recall": 0.125, "nDCG": 0.0625})]
TUNED = [FinetuneRow("VisRank", "resnet50", "frozen", "-", {"Recall": 0.125}),
         FinetuneRow("VisRank", "resnet50", "deep", "style (CE, w=1) + price (MAE, w=0.5)", {"Recall": 0.25})]


def test_backbone_table_markdown_puts_accuracy_beside_metrics_and_correlations_under_it() -> None:
    correlations = [RankCorrelation("top-1 (VisRank)", "Recall", -0.5, 0.667, 3),
                    RankCorrelation("top-1 (VisRank)", "nDCG", 1.0, 0.0, 3)]
    assert backbone_markdown(ROWS, ["Recall", "nDCG"], 20, correlations) == (
        "| model | backbone | ImageNet top-1 | ImageNet top-5 | Recall@20 | nDCG@20 | accuracy from |\n"
        "|---|---|---|---|---|---|---|\n"
        "| Random | - |  |  | 0.0100 | 0.0050 | - |\n"
        "| VisRank | resnet50 | 80.86 | 95.43 | 0.1250 | 0.0625 | torchvision ResNet50_Weights.IMAGENET1K_V2.meta |\n"
        "\n"
        "Spearman rank correlation of ImageNet top-1 (VisRank) with the metrics over 3 backbones: "
        "Recall@20 -0.500 (p = 0.667), nDCG@20 1.000 (p = 0)\n")


def test_backbone_table_says_when_too_few_backbones_have_an_accuracy() -> None:
    assert backbone_markdown(ROWS[:1], ["Recall"], 5, []).endswith(
        "\nSpearman rank correlation: fewer than 3 backbones with a known ImageNet accuracy\n")


def test_backbone_tsv_has_raw_values_and_empty_fields_for_unknowns() -> None:
    assert backbone_tsv(ROWS, ["Recall"]) == (
        "model\tbackbone\timagenet_top1\timagenet_top5\taccuracy_source\tRecall\n"
        "Random\t-\t\t\t\t0.01\n"
        "VisRank\tresnet50\t80.858\t95.434\ttorchvision ResNet50_Weights.IMAGENET1K_V2.meta\t0.125\n")


def test_finetuning_table_layouts() -> None:
    assert finetune_markdown(TUNED, ["Recall"], 20) == (
        "| model | backbone | fine-tuning | tasks (loss, weight) | Recall@20 |\n"
        "|---|---|---|---|---|\n"
        "| VisRank | resnet50 | frozen | - | 0.1250 |\n"
        "| VisRank | resnet50 | deep | style (CE, w=1) + price (MAE, w=0.5) | 0.2500 |\n")
    assert finetune_tsv(TUNED, ["Recall"]) == (
        "model\tbackbone\tvariant\ttasks\tRecall\n"
        "VisRank\tresnet50\tfrozen\t-\t0.125\n"
        "VisRank\tresnet50\tdeep\tstyle (CE, w=1) + price (MAE, w=0.5)\t0.25\n")
