"""``prepare amazon`` end to end: raw McAuley files -> dataset.tsv, items.tsv, image_features.b,
card.json, with the papers' filters checked against hand-computed expectations."""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from elliot_visual.config.errors import ConfigError
from elliot_visual.config.prepare import PrepareConfig, load_prepare_config
from elliot_visual.data.amazon import MalformedLineError, iter_amazon_binary_features, prepare_amazon
from elliot_visual.data.prepare_command import main_prepare
from elliot_visual.data.readers import DataError

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
A, B, C, D = "B00000000A", "B00000000B", "B00000000C", "B00000000D"


def day(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp())


# (user, item, rating, day); r11 repeats (u1, A) earlier in time, so de-duplication keeps r1.
ROWS = [("u1", A, 5.0, "2014-01-01"), ("u1", B, 4.0, "2014-01-02"), ("u1", C, 2.0, "2014-01-03"),
        ("u2", A, 4.0, "2014-01-04"), ("u2", B, 5.0, "2014-01-05"), ("u2", D, 3.0, "2014-01-06"),
        ("u3", A, 1.0, "2014-01-07"), ("u3", C, 5.0, "2014-01-08"), ("u3", B, 4.0, "2013-12-31"),
        ("u4", D, 5.0, "2014-02-01"), ("u1", A, 3.0, "2013-06-01")]
META = [
    {"asin": A, "title": "Bottle", "price": 9.99, "imUrl": "http://img.example/a.jpg",
     "categories": [["Baby", "Feeding", "Bottles"]]},
    {"asin": B, "title": "Rattle", "imUrl": "http://img.example/b.jpg", "categories": [["Baby", "Toys"]]},
    {"asin": C, "title": "Dress", "price": 20.0, "categories": [["Clothing", "Girls"]]},
    {"asin": D, "title": "Bib", "imUrl": "http://img.example/d.jpg",
     "categories": [["Baby", "Feeding", "Bibs"], ["Clothing", "Boys"]]},
]


@pytest.fixture()
def raw(tmp_path: Path) -> Path:
    """Strict-JSON gzipped reviews with two malformed lines (3 and 7), Python-literal metadata, features."""
    folder = tmp_path / "raw"
    folder.mkdir()
    lines = [json.dumps({"reviewerID": u, "asin": i, "overall": r, "unixReviewTime": day(d)}) for u, i, r, d in ROWS]
    lines.insert(2, '{"reviewerID": "u9", "asin": ')
    lines.insert(6, json.dumps({"reviewerID": "u9", "asin": A, "overall": 4.0}))
    (folder / "reviews_Baby.json.gz").write_bytes(gzip.compress("\n".join(lines).encode()))
    (folder / "meta_Baby.json").write_text("\n".join(repr(m) for m in META) + "\n", encoding="utf-8")
    with (folder / "image_features_Baby.b").open("wb") as handle:
        for k, asin in enumerate(["B00000000Z", A, B, C]):  # D has no features
            handle.write(asin.encode())
            handle.write(np.full(4096, k, dtype="<f4").tobytes())
    return folder


def config(raw: Path, out: Path, **filters) -> PrepareConfig:
    return PrepareConfig.model_validate({
        "name": "baby", "output_folder": out, "progress": False, "images": {"download": False},
        "sources": {"reviews": raw / "reviews_Baby.json.gz", "meta": raw / "meta_Baby.json"},
        "filters": filters})


def dataset(folder: Path) -> list[tuple]:
    frame = pd.read_csv(folder / "dataset.tsv", sep="\t", header=None, dtype={0: str, 1: str})
    return [(u, i, r, dt.datetime.fromtimestamp(t, dt.timezone.utc).date().isoformat())
            for u, i, r, t in frame.itertuples(index=False, name=None)]


def test_rating_threshold_then_iterative_k_core(raw: Path, tmp_path: Path) -> None:
    prepared = prepare_amazon(config(raw, tmp_path / "data", min_rating=4, k_core=2))
    folder = tmp_path / "data" / "baby"
    # rating >= 4 leaves u1:{A,B} u2:{A,B} u3:{C,B} u4:{D}; round 1 drops u4 and C (1 row);
    # round 2 drops u3, now down to B alone: a single pass would have kept u3.
    assert dataset(folder) == [("u1", A, 5.0, "2014-01-01"), ("u1", B, 4.0, "2014-01-02"),
                               ("u2", A, 4.0, "2014-01-04"), ("u2", B, 5.0, "2014-01-05")]
    card = json.loads((folder / "card.json").read_text())
    assert card == json.loads(json.dumps(prepared.card.to_dict()))
    assert (card["users"], card["items"], card["interactions"], card["density"]) == (2, 2, 4, 1.0)
    assert (card["first_day"], card["last_day"], card["span_days"]) == ("2014-01-01", "2014-01-05", 5)
    assert card["ratings"] == {"4": 2, "5": 2}
    assert card["top_categories"] == {"Baby": {"items": 2, "interactions": 4}}
    assert card["leaf_categories"] == {"Bottles": {"items": 1, "interactions": 2},
                                       "Toys": {"items": 1, "interactions": 2}}
    assert card["duplicates_removed"] == 1
    assert card["malformed_lines"] == {str(raw / "reviews_Baby.json.gz"): 2}
    assert [(s["step"], s["interactions"], s["users"], s["items"]) for s in card["steps"]] == [
        ("read", 11, 4, 4), ("deduplicate", 10, 4, 4), ("rating>=4", 7, 4, 4), ("2-core", 4, 2, 2)]
    with (folder / "malformed_lines.tsv").open() as handle:
        assert [(r["line"], r["reason"]) for r in csv.DictReader(handle, delimiter="\t")] == [
            ("3", "neither JSON nor a Python literal (SyntaxError)"), ("7", "missing key 'unixReviewTime'")]


def test_items_table_has_metadata_and_category_columns(raw: Path, tmp_path: Path) -> None:
    prepare_amazon(config(raw, tmp_path / "data"))
    items = pd.read_csv(tmp_path / "data" / "baby" / "items.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert list(items.columns) == ["item", "title", "price", "categories", "top_category", "sub_category",
                                   "leaf_category", "image_url"]
    by_item = items.set_index("item").to_dict("index")
    assert list(by_item) == [A, B, C, D]  # order of first appearance in dataset.tsv
    assert by_item[A] == {"title": "Bottle", "price": "9.99", "categories": "Baby > Feeding > Bottles",
                          "top_category": "Baby", "sub_category": "Feeding", "leaf_category": "Bottles",
                          "image_url": "http://img.example/a.jpg"}
    assert by_item[D]["categories"] == "Baby > Feeding > Bibs | Clothing > Boys"
    assert (by_item[B]["sub_category"], by_item[B]["leaf_category"], by_item[B]["price"]) == ("Toys", "Toys", "")
    assert by_item[C]["image_url"] == ""


@pytest.mark.parametrize(("filters", "expected_rows"), [
    ({"start_date": "2014-01-01", "end_date": "2014-01-06"}, [0, 1, 2, 3, 4, 5]),  # both ends inclusive
    ({"categories": ["Girls"]}, [2, 7]),
    ({"categories": ["baby > feeding"]}, [0, 3, 5, 6, 9]),
    ({"drop_items_without_image": True}, [0, 1, 3, 4, 5, 6, 8, 9]),  # C has no imUrl
])
def test_each_filter_keeps_the_hand_computed_rows(raw: Path, tmp_path: Path, filters: dict,
                                                  expected_rows: list[int]) -> None:
    prepare_amazon(config(raw, tmp_path / "data", **filters))
    assert dataset(tmp_path / "data" / "baby") == [ROWS[k] for k in expected_rows]


def test_binary_features_restrict_images_and_are_copied_for_dataset_items(raw: Path, tmp_path: Path) -> None:
    cfg = config(raw, tmp_path / "data", drop_items_without_image=True)
    cfg.sources.image_features = raw / "image_features_Baby.b"
    card = prepare_amazon(cfg).card
    folder = tmp_path / "data" / "baby"
    # an image needs a URL (A, B, D) and features (Z, A, B, C): A and B remain
    assert dataset(folder) == [ROWS[k] for k in (0, 1, 3, 4, 6, 8)]
    copied = [(asin, float(v[0])) for asin, v in iter_amazon_binary_features(folder / "image_features.b")]
    assert copied == [(A, 1.0), (B, 2.0)]
    assert (card.items_with_features, card.items_with_image_url) == (2, 2)


def test_malformed_line_is_fatal_with_on_error_fail(raw: Path, tmp_path: Path) -> None:
    cfg = config(raw, tmp_path / "data").model_copy(update={"on_error": "fail"})
    with pytest.raises(MalformedLineError, match=r"reviews_Baby.json.gz, line 3:"):
        prepare_amazon(cfg)
    assert not (tmp_path / "data" / "baby" / "dataset.tsv").exists()


def test_filters_that_need_missing_inputs_fail_clearly(raw: Path, tmp_path: Path) -> None:
    cfg = config(raw, tmp_path / "data", categories=["Baby"])
    cfg.sources.meta = None
    with pytest.raises(DataError, match="categories needs the metadata file"):
        prepare_amazon(cfg)
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("u1,A,5\nu2,A,4\n", encoding="utf-8")
    untimed = PrepareConfig.model_validate({"name": "x", "output_folder": tmp_path, "progress": False,
                                            "sources": {"ratings": ratings}, "images": {"download": False},
                                            "filters": {"start_date": "2014-01-01"}})
    with pytest.raises(DataError, match="need timestamps"):
        prepare_amazon(untimed)
    with pytest.raises(DataError, match="no interactions left"):
        prepare_amazon(config(raw, tmp_path / "data", k_core=4))


def test_missing_raw_files_are_all_named_with_where_to_get_them(raw: Path, tmp_path: Path) -> None:
    cfg = config(raw, tmp_path / "data")
    cfg.sources.reviews = tmp_path / "absent" / "reviews_Baby.json.gz"
    cfg.sources.meta = tmp_path / "absent" / "meta_Baby.json.gz"
    with pytest.raises(DataError) as caught:
        prepare_amazon(cfg)
    message = str(caught.value)
    assert "sources.reviews: " + str(cfg.sources.reviews) in message
    assert "sources.meta: " + str(cfg.sources.meta) in message
    assert "jmcauley.ucsd.edu/data/amazon" in message
    assert not (tmp_path / "data").exists()                  # nothing written


# ------------------------------------------------------------------ command line and YAML

def test_command_reads_yaml_with_paths_beside_it_and_flags_override(raw: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    (raw / "prepare.yml").write_text(
        "name: baby\noutput_folder: ../out\n"
        "sources: {reviews: reviews_Baby.json.gz, meta: meta_Baby.json}\n"
        "filters: {min_rating: 4, k_core: 3}\nimages: {download: false}\n", encoding="utf-8")
    status = main_prepare(["amazon", "--config", str(raw / "prepare.yml"), "--k-core", "2", "--no-progress"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "users 2  items 2  interactions 4  density 1.000000" in printed
    assert len(dataset(tmp_path / "out" / "baby")) == 4  # k_core 2 from the flag, not 3 from the file


def test_command_reports_config_mistakes_by_key(raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (raw / "bad.yml").write_text("name: baby\nsources: {reviews: x.json}\nfilter: {k_core: 5}\n", encoding="utf-8")
    assert main_prepare(["amazon", "--config", str(raw / "bad.yml")]) == 2
    assert "Extra inputs are not permitted at filter" in capsys.readouterr().err
    assert main_prepare(["amazon", "--name", "x", "--reviews", "a.json", "--ratings", "b.tsv"]) == 2
    assert "exactly one of reviews" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"greater than or equal to 1 at filters.k_core"):
        load_prepare_config(None, {"name": "x", "sources": {"ratings": "r.tsv"}, "filters": {"k_core": 0}})
    assert main_prepare(["amazon", "--name", "x", "--out", str(tmp_path), "--reviews",
                         str(raw / "reviews_Baby.json.gz"), "--on-error", "fail", "--no-download",
                         "--no-progress"]) == 2
    assert "line 3" in capsys.readouterr().err


# ------------------------------------------------------------------ images through the local server

@pytest.fixture()
def image_server() -> Iterator[str]:
    """127.0.0.1 server: /ok/<name> answers a PNG, anything else 404."""
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (0, 0, 255)).save(buffer, format="PNG")
    png = buffer.getvalue()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            status, body = (200, png) if self.path.startswith("/ok/") else (404, b"gone")
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_failed_downloads_drop_items_and_the_k_core_is_restored(image_server: str, tmp_path: Path) -> None:
    ratings = tmp_path / "ratings.tsv"
    ratings.write_text("u1\tA\t5\nu1\tB\t5\nu2\tA\t4\nu2\tB\t4\nu3\tC\t5\nu3\tE\t5\nu4\tC\t3\nu4\tE\t3\n",
                       encoding="utf-8")
    urls = tmp_path / "urls.csv"
    urls.write_text(f"asin,imUrl\nA,{image_server}/ok/a.jpg\nB,{image_server}/ok/b.jpg\n"
                    f"C,{image_server}/gone/c.jpg\nE,{image_server}/ok/e.jpg\n", encoding="utf-8")
    cfg = PrepareConfig.model_validate({
        "name": "toy", "output_folder": tmp_path / "data", "progress": False,
        "sources": {"ratings": ratings, "image_urls": urls},
        "filters": {"drop_items_without_image": True, "k_core": 2},
        "images": {"workers": 2, "timeout": 2, "retries": 1, "backoff": 0.01}})
    card = prepare_amazon(cfg).card
    folder = tmp_path / "data" / "toy"
    # C's image is missing: u3 and u4 fall below 2 rows, then E does; E's image is removed too
    assert dataset_rows(folder) == [("u1", "A"), ("u1", "B"), ("u2", "A"), ("u2", "B")]
    assert sorted(p.name for p in (folder / "images").iterdir()) == ["A.png", "B.png"]
    assert (card.items_with_image_file, card.images_failed) == (2, 1)
    assert [s.step for s in card.steps][-1] == "image downloaded"
    report = (folder / "download_report.tsv").read_text().splitlines()
    assert report[0] == "item\turl\tattempts\terror" and report[1].startswith("C\t")


def dataset_rows(folder: Path) -> list[tuple[str, str]]:
    frame = pd.read_csv(folder / "dataset.tsv", sep="\t", header=None, dtype=str)
    return list(zip(frame[0], frame[1]))


# ------------------------------------------------------------------ real data (skipped when absent)

def test_ducho_baby_ratings_with_mmrec_urls(tmp_path: Path) -> None:
    reviews = SHARED_DATA / "amazon_ducho_benchmark" / "baby" / "reviews.tsv"
    url_table = SHARED_DATA / "amazon_baby_5core" / "baby_url.csv"
    if not reviews.is_file() or not url_table.is_file():
        pytest.skip(f"real Amazon data not found under {SHARED_DATA}")
    cfg = PrepareConfig.model_validate({
        "name": "baby", "output_folder": tmp_path, "progress": False, "images": {"download": False},
        "sources": {"ratings": reviews, "image_urls": url_table},
        "filters": {"drop_items_without_image": True, "k_core": 5}})
    card = prepare_amazon(cfg).card
    # shared/data/README.md: 138,821 rows, 19,440 users, 6,386 items, every item in the URL table
    assert [(s.step, s.interactions, s.users, s.items) for s in card.steps[:3]] == [
        ("read", 138_821, 19_440, 6_386), ("deduplicate", 138_821, 19_440, 6_386),
        ("with image", 138_821, 19_440, 6_386)]
    frame = pd.read_csv(tmp_path / "baby" / "dataset.tsv", sep="\t", header=None, dtype={0: str, 1: str})
    assert frame.shape == (card.interactions, 3)
    assert frame[0].value_counts().min() >= 5 and frame[1].value_counts().min() >= 5
    assert (card.users, card.items) == (frame[0].nunique(), frame[1].nunique())
    assert card.density == pytest.approx(card.interactions / (card.users * card.items))
    assert card.items_with_image_url == card.items and card.malformed_lines == {}


def with_labels(raw: Path, out: Path, **labels) -> PrepareConfig:
    return PrepareConfig.model_validate({**config(raw, out).model_dump(), "labels": labels})


def label_lines(path: Path) -> dict[str, str]:
    return dict(line.split("\t") for line in path.read_text().splitlines())


def test_item_labels_are_category_nodes_held_by_enough_items(raw: Path, tmp_path: Path) -> None:
    cfg = with_labels(raw, tmp_path / "data", min_items=2)
    card = prepare_amazon(cfg).card
    # below the top level, only "Baby > Feeding" is held by two items (A via Bottles, D via Bibs)
    assert label_lines(tmp_path / "data" / "baby" / "item_labels.tsv") == {
        A: "Baby > Feeding", B: "", C: "", D: "Baby > Feeding"}
    assert (card.labels["n_labels"], card.labels["items_with_labels"]) == (1, 2)
    assert json.loads((tmp_path / "data" / "baby" / "card.json").read_text())["labels"]["label_items"] == {
        "Baby > Feeding": 2}


def test_item_labels_with_the_top_level(raw: Path, tmp_path: Path) -> None:
    cfg = with_labels(raw, tmp_path / "data", min_items=2, skip_top_level=False)
    prepare_amazon(cfg)
    assert label_lines(tmp_path / "data" / "baby" / "item_labels.tsv") == {
        A: "Baby|Baby > Feeding", B: "Baby", C: "Clothing", D: "Baby|Baby > Feeding|Clothing"}


def test_finetune_user_cut_writes_disjoint_user_files(raw: Path, tmp_path: Path) -> None:
    cfg = with_labels(raw, tmp_path / "data", min_items=1, finetune_users=0.5, seed=3)
    card = prepare_amazon(cfg).card
    folder = tmp_path / "data" / "baby"
    full = pd.read_csv(folder / "dataset.tsv", sep="\t", header=None, dtype=str)
    rest = pd.read_csv(folder / "dataset_aggregation.tsv", sep="\t", header=None, dtype=str)
    tuning_users = set(full[0]) - set(rest[0])
    assert (len(tuning_users), rest[0].nunique()) == (2, 2) == (card.labels["finetune_users"],
                                                                card.labels["aggregation_users"])
    assert rest.equals(full[full[0].isin(set(rest[0]))].reset_index(drop=True))   # every row of those users
    labelled = label_lines(folder / "item_labels.tsv")
    expected = {i for i in full.loc[full[0].isin(tuning_users), 1] if labelled[i]}
    tuning = label_lines(folder / "finetune_items.tsv")
    assert tuning.pop("item") == "categories" and set(tuning) == expected     # a header for fine-tuning


def test_labels_without_any_category_are_an_error_naming_the_key(raw: Path, tmp_path: Path) -> None:
    cfg = with_labels(raw, tmp_path / "data", min_items=5)
    with pytest.raises(DataError, match="labels.min_items"):
        prepare_amazon(cfg)


def test_label_flags_enable_labels_and_no_flag_leaves_them_off(raw: Path, tmp_path: Path) -> None:
    base = ["amazon", "--name", "baby", "--out", str(tmp_path / "out"), "--reviews", str(raw / "reviews_Baby.json.gz"),
            "--meta", str(raw / "meta_Baby.json"), "--no-download", "--no-progress"]
    assert main_prepare(base) == 0
    assert not (tmp_path / "out" / "baby" / "item_labels.tsv").exists()
    assert main_prepare(base + ["--label-min-items", "2", "--finetune-users", "0.5"]) == 0
    assert (tmp_path / "out" / "baby" / "finetune_items.tsv").is_file()
