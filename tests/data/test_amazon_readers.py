"""McAuley's raw files as published: review lines (JSON and Python literals, plain and gzipped),
metadata, image-URL tables, ratings-only tables and the binary image-feature file."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from elliot_visual.data.amazon import (
    LineIssues,
    MalformedLineError,
    amazon_binary_asins,
    item_in_categories,
    iter_amazon_binary_features,
    read_image_urls,
    read_metadata,
    read_ratings,
    read_reviews,
    write_amazon_binary_features,
)
from elliot_visual.data.readers import DataError

REVIEWS = [
    {"reviewerID": "U1", "asin": "B000000001", "reviewerName": "Ann", "helpful": [0, 0],
     "reviewText": "Nice\tbottle", "overall": 5.0, "summary": "ok", "unixReviewTime": 1388534400,
     "reviewTime": "01 1, 2014"},
    {"reviewerID": "U2", "asin": "B000000002", "overall": 3.0, "unixReviewTime": 1388620800},
    {"reviewerID": "U1", "asin": "B000000002", "overall": 1, "unixReviewTime": 1388707200},
]
EXPECTED = [("U1", "B000000001", 5.0, 1388534400), ("U2", "B000000002", 3.0, 1388620800),
            ("U1", "B000000002", 1.0, 1388707200)]


def write_lines(path: Path, lines: list[str], gz: bool) -> Path:
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if gz:
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def rows(frame) -> list[tuple]:
    return list(frame.itertuples(index=False, name=None))


@pytest.mark.parametrize("variant", ["json", "python"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
def test_reviews_read_in_both_dump_variants_plain_or_gzipped(tmp_path: Path, variant: str, gz: bool) -> None:
    encode = json.dumps if variant == "json" else repr  # repr(dict) is the older dumps' Python-literal line
    path = write_lines(tmp_path / "reviews_Baby.json.gz", [encode(r) for r in REVIEWS], gz)
    frame = read_reviews(path)
    assert list(frame.columns) == ["user", "item", "rating", "timestamp"]
    assert rows(frame) == EXPECTED
    assert frame["timestamp"].dtype == np.int64 and frame["rating"].dtype == np.float64


BAD_REVIEW_LINES = [
    json.dumps(REVIEWS[0]),
    "",
    "{'reviewerID': 'U9', 'asin': 'B000000009', 'overall': 5.0,",   # line 3: cut short
    json.dumps(REVIEWS[1]),
    "__import__('os').system('echo owned')",                          # line 5: code, never run
    json.dumps({"reviewerID": "U9", "asin": "B000000009", "unixReviewTime": 1}),  # line 6: no rating
    json.dumps({**REVIEWS[2], "overall": "five"}),                    # line 7: rating not a number
    "[1, 2, 3]",                                                      # line 8: not a record
    json.dumps(REVIEWS[2]),
]


def test_malformed_review_lines_are_skipped_and_reported_with_line_numbers(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "reviews.json", BAD_REVIEW_LINES, gz=False)
    issues = LineIssues("skip")
    frame = read_reviews(path, issues)
    assert rows(frame) == EXPECTED
    assert [m.line for m in issues.lines] == [3, 5, 6, 7, 8]
    assert "missing key 'overall'" in issues.lines[2].reason
    assert "'five'" in issues.lines[3].reason
    assert issues.counts() == {str(path): 5}


def test_malformed_review_line_is_fatal_when_configured(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "reviews.json", BAD_REVIEW_LINES, gz=True)
    with pytest.raises(MalformedLineError, match=r"reviews.json, line 3: neither JSON nor a Python literal"):
        read_reviews(path, LineIssues("fail"))


def test_invalid_utf8_line_is_malformed_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "reviews.json"
    path.write_bytes(json.dumps(REVIEWS[0]).encode() + b"\n\xff\xfe broken\n" + json.dumps(REVIEWS[1]).encode() + b"\n")
    issues = LineIssues("skip")
    assert len(read_reviews(path, issues)) == 2
    assert [(m.line, m.reason.startswith("not UTF-8")) for m in issues.lines] == [(2, True)]


META_2014 = [
    {"asin": "B000000001", "title": "Bottle\tset", "price": 12.5, "imUrl": "http://img/1.jpg",
     "categories": [["Baby", "Feeding", "Bottles"], ["Baby", "Gifts"]], "salesRank": {"Baby": 10}},
    {"asin": "B000000002", "title": "Bib", "categories": [["Baby"]]},
    {"asin": "B000000003", "title": "Not in the dataset", "imUrl": "http://img/3.jpg"},
]


def test_metadata_python_literals_keep_only_wanted_items(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "meta_Baby.json.gz", [repr(m) for m in META_2014], gz=True)
    meta = read_metadata(path, keep={"B000000001", "B000000002"})
    assert set(meta) == {"B000000001", "B000000002"}
    first = meta["B000000001"]
    assert first.title == "Bottle set" and first.price == 12.5 and first.image_url == "http://img/1.jpg"
    assert first.categories == (("Baby", "Feeding", "Bottles"), ("Baby", "Gifts"))
    assert meta["B000000002"].price is None and meta["B000000002"].image_url == ""


def test_metadata_2018_field_names_are_understood(tmp_path: Path) -> None:
    record = {"asin": "B000000004", "title": "Shoe", "price": "$1,024.50", "category": ["Clothing", "Girls"],
              "imageURL": ["http://small.jpg"], "imageURLHighRes": ["http://large.jpg"]}
    path = write_lines(tmp_path / "meta.json", [json.dumps(record)], gz=False)
    meta = read_metadata(path)["B000000004"]
    assert (meta.price, meta.image_url, meta.categories) == (1024.5, "http://large.jpg", (("Clothing", "Girls"),))


def test_category_matching_by_level_name_or_path_prefix() -> None:
    paths = (("Clothing, Shoes & Jewelry", "Girls", "Dresses"), ("Baby", "Gifts"))
    assert item_in_categories(paths, ["girls"])
    assert item_in_categories(paths, ["Clothing, Shoes & Jewelry > Girls"])
    assert not item_in_categories(paths, ["Boys", "Clothing, Shoes & Jewelry > Dresses"])
    assert not item_in_categories((), ["Baby"])


def test_image_url_table_with_mmrec_header_or_plain_rows(tmp_path: Path) -> None:
    with_header = tmp_path / "baby_url.csv"
    with_header.write_text("itemID,asin,imUrl\n0,B000000001,http://a.jpg\n1,B000000002,\n"
                           "2\n3,B000000003,\"http://c.jpg\"\n", encoding="utf-8")
    issues = LineIssues("skip")
    assert read_image_urls(with_header, issues) == {"B000000001": "http://a.jpg", "B000000003": "http://c.jpg"}
    assert [m.line for m in issues.lines] == [4]
    plain = tmp_path / "urls.tsv"
    plain.write_text("B000000001\thttp://a.jpg\nB000000002\thttps://b.png\n", encoding="utf-8")
    assert read_image_urls(plain) == {"B000000001": "http://a.jpg", "B000000002": "https://b.png"}
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id,link\n1,http://a.jpg\n", encoding="utf-8")
    with pytest.raises(DataError, match="has none of the columns asin"):
        read_image_urls(wrong)


def test_ratings_only_tables_with_and_without_time_and_header(tmp_path: Path) -> None:
    mcauley = write_lines(tmp_path / "ratings_Baby.csv", ["U1,B1,5.0,1388534400", "U2,B2,3,1388620800"], gz=True)
    assert rows(read_ratings(mcauley)) == [("U1", "B1", 5.0, 1388534400), ("U2", "B2", 3.0, 1388620800)]
    ducho = write_lines(tmp_path / "reviews.tsv", ["user\titem\trating", "U1\tB1\t4.0", "U2\tB1\t2.0"], gz=False)
    frame = read_ratings(ducho)
    assert list(frame.columns) == ["user", "item", "rating"]
    assert rows(frame) == [("U1", "B1", 4.0), ("U2", "B1", 2.0)]


def test_ratings_only_malformed_lines_name_their_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "r.tsv", ["U1\tB1\t4.0\t10", "U2\tB1\t2.0", "U3\tB2\tgood\t11", "U4\tB2\t1\t12"],
                       gz=False)
    issues = LineIssues("skip")
    assert rows(read_ratings(path, issues)) == [("U1", "B1", 4.0, 10), ("U4", "B2", 1.0, 12)]
    assert [(m.line, m.reason) for m in issues.lines] == [
        (2, "expected 4 fields like the first data line, found 3"), (3, "rating 'good' is not a number")]
    with pytest.raises(MalformedLineError, match=r"r.tsv, line 2: expected 4 fields"):
        read_ratings(path, LineIssues("fail"))


def feature_file(path: Path, asins: list[str], dim: int = 4096) -> dict[str, np.ndarray]:
    vectors = {a: (np.arange(dim, dtype=np.float32) * (k + 1)).astype(np.float32) for k, a in enumerate(asins)}
    with path.open("wb") as handle:
        for asin in asins:
            handle.write(asin.encode("ascii"))
            handle.write(vectors[asin].astype("<f4").tobytes())
    return vectors


def test_binary_features_stream_only_kept_items_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "image_features_Baby.b"
    vectors = feature_file(path, ["B000000001", "B000000002", "B000000003", "B000000004"])
    kept = list(iter_amazon_binary_features(path, keep={"B000000003", "B000000001", "B00000000X"}))
    assert [asin for asin, _ in kept] == ["B000000001", "B000000003"]
    assert kept[1][1].dtype == np.float32 and kept[1][1].shape == (4096,)
    np.testing.assert_array_equal(kept[1][1], vectors["B000000003"])
    assert kept[1][1][2] == pytest.approx(6.0)  # 2 * (index 2 + 1)
    assert [a for a, _ in iter_amazon_binary_features(path)] == list(vectors)
    assert amazon_binary_asins(path) == set(vectors)


def test_binary_features_round_trip_and_truncation_is_an_error(tmp_path: Path) -> None:
    source = tmp_path / "in.b"
    vectors = feature_file(source, ["B000000001", "B000000002"], dim=4)
    copy = tmp_path / "out.b"
    assert write_amazon_binary_features(copy, iter_amazon_binary_features(source, dim=4)) == 2
    assert copy.read_bytes() == source.read_bytes()
    truncated = tmp_path / "cut.b"
    truncated.write_bytes(source.read_bytes()[:-3])
    with pytest.raises(DataError, match=r"cut.b: the record at byte 26 is truncated"):
        list(iter_amazon_binary_features(truncated, dim=4))
    with pytest.raises(DataError, match="not a multiple"):
        amazon_binary_asins(truncated, dim=4)
    assert list(vectors) == ["B000000001", "B000000002"]
