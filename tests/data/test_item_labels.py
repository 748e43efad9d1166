"""The item label file as written: one line per item, separator-safe label names, optional header."""
from __future__ import annotations

from elliot_visual.data.item_labels import write_item_labels


def test_lines_with_cleaned_names_and_unlabelled_items(tmp_path):
    path = tmp_path / "labels.tsv"
    assert write_item_labels(path, [("a", ["Pans", "Bake|ware", " Pots  and\tlids "]), ("b", [])]) == 2
    assert path.read_text() == "a\tPans|Bake/ware|Pots and lids\nb\t\n"


def test_header_for_fine_tuning_metadata(tmp_path):
    path = tmp_path / "items.tsv"
    write_item_labels(path, [("a", ["Pans"])], header=("item", "categories"))
    assert path.read_text() == "item\tcategories\na\tPans\n"
