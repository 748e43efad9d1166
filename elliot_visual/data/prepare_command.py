"""``elliot-visual prepare amazon``: raw McAuley files in, a dataset folder and its card out.

Examples::

    elliot-visual prepare amazon --name amazon_baby --reviews reviews_Baby.json.gz \\
        --meta meta_Baby.json.gz --image-features image_features_Baby.b --k-core 5
    elliot-visual prepare amazon --name baby --ratings reviews.tsv --image-urls baby_url.csv --no-download
    elliot-visual prepare amazon --config prepare_baby.yml --out ../data

Flags override the YAML file given with ``--config`` (its keys: see
:mod:`elliot_visual.config.prepare`). The card is printed and written as ``card.json``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any


log = logging.getLogger(__name__)

HELP = """Raw McAuley files in, a dataset folder and its card (card.json) out.

examples:
  elliot-visual prepare amazon --name amazon_baby --reviews reviews_Baby.json.gz \\
      --meta meta_Baby.json.gz --image-features image_features_Baby.b --k-core 5
  elliot-visual prepare amazon --name baby --ratings reviews.tsv --image-urls baby_url.csv --no-download
  elliot-visual prepare amazon --config prepare_baby.yml --out ../data

Flags override the YAML file given with --config (its keys: see the README, "Preparing Amazon data")."""


def build_parser() -> argparse.ArgumentParser:
    """The ``prepare`` parser: ``amazon`` (McAuley's raw files) and ``dvbpr`` (DVBPR's .npy)."""
    parser = argparse.ArgumentParser(prog="elliot-visual prepare",
                                     description="Prepare a raw dataset as the folder the configs read.")
    sources = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    amazon = sources.add_parser("amazon", help="McAuley's Amazon review data (2014 / 2018 dumps)",
                                description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    amazon.add_argument("--config", help="YAML file with the options below (flags override it)")
    amazon.add_argument("--name", help="dataset name: the folder <out>/<name> is written")
    amazon.add_argument("--out", dest="output_folder", help="folder holding the datasets (default: data)")
    files = amazon.add_argument_group("raw files (plain or gzipped)")
    files.add_argument("--reviews", help="McAuley reviews: JSON or Python-literal lines")
    files.add_argument("--ratings", help="ratings-only table user, item, rating[, timestamp] (TSV or CSV)")
    files.add_argument("--meta", help="McAuley metadata lines (asin, imUrl, categories, title, price)")
    files.add_argument("--image-urls", help="image-URL table: header itemID,asin,imUrl, or rows asin,url")
    files.add_argument("--image-features", help="binary features image_features_<Category>.b")
    filters = amazon.add_argument_group("filters (applied in this order)")
    filters.add_argument("--keep-duplicates", action="store_true", default=None,
                         help="keep repeated (user, item) rows (default: keep the latest one)")
    filters.add_argument("--min-rating", type=float, help="keep ratings >= this value")
    filters.add_argument("--start-date", help="keep reviews from this day on (YYYY-MM-DD, UTC)")
    filters.add_argument("--end-date", help="keep reviews up to this day (YYYY-MM-DD, inclusive)")
    filters.add_argument("--category", action="append", dest="categories",
                         help="keep items in this category (any level, or a path 'A > B'); repeatable")
    filters.add_argument("--drop-items-without-image", action="store_true", default=None,
                         help="drop items with no image URL / features / downloaded image")
    filters.add_argument("--k-core", type=int, help="iterative k-core on users and items")
    images = amazon.add_argument_group("images")
    images.add_argument("--no-download", action="store_true", help="do not fetch images")
    images.add_argument("--workers", type=int, help="concurrent downloads (default 8)")
    images.add_argument("--timeout", type=float, help="seconds per request (default 10)")
    images.add_argument("--retries", type=int, help="retries after a transient failure (default 3)")
    images.add_argument("--backoff", type=float, help="first retry delay in seconds, doubled each time")
    labels = amazon.add_argument_group("category labels (multi-label task; written when a flag is given)")
    labels.add_argument("--label-min-items", type=int,
                        help="item_labels.tsv: categories held by at least this many items")
    labels.add_argument("--finetune-users", type=float,
                        help="share of users set apart to fine-tune the CNN (the aggregation paper: 0.7)")
    labels.add_argument("--label-seed", type=int, help="seed of the user cut (default 42)")
    amazon.add_argument("--on-error", choices=("skip", "fail"),
                        help="malformed lines: skip them (counted, listed) or stop (default: skip)")
    amazon.add_argument("--no-progress", action="store_true", help="no progress bars")
    dvbpr = sources.add_parser("dvbpr", help="DVBPR's pickled .npy (AmazonFashion6ImgPartitioned.npy, ...)",
                               description="Write a DVBPR .npy as Elliot TSVs (train/val/test.tsv) and "
                                           "images/<item>.jpg. The file is unpickled: read only the authors' files.")
    dvbpr.add_argument("--npy", required=True, help="the DVBPR .npy file")
    dvbpr.add_argument("--out", required=True, help="folder to write (e.g. data/amazon_fashion)")
    dvbpr.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def prepare_dvbpr(npy: str, out: str, progress: bool = True) -> str:
    """``prepare dvbpr``: the split and the images of a DVBPR file, written under ``out``; a summary line."""
    from elliot_visual.data.dvbpr import read_dvbpr, write_dvbpr_dataset

    data = read_dvbpr(npy)
    written = write_dvbpr_dataset(data, out, progress=progress)
    return (f"{data.n_users} users, {data.n_items} items, {len(data.train)} train / {len(data.validation)} "
            f"validation / {len(data.test)} test rows, {len(data.images)} images; written to {written['train'].parent}")


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The flags the user gave, nested like the YAML file (absent flags are None and ignored)."""
    return {
        "name": args.name,
        "output_folder": args.output_folder,
        "sources": {"reviews": args.reviews, "ratings": args.ratings, "meta": args.meta,
                    "image_urls": args.image_urls, "image_features": args.image_features},
        "filters": {"deduplicate": False if args.keep_duplicates else None, "min_rating": args.min_rating,
                    "start_date": args.start_date, "end_date": args.end_date, "categories": args.categories,
                    "drop_items_without_image": args.drop_items_without_image, "k_core": args.k_core},
        "images": {"download": False if args.no_download else None, "workers": args.workers,
                   "timeout": args.timeout, "retries": args.retries, "backoff": args.backoff},
        # only when a label flag is given: an empty section would switch the labels on
        "labels": {"min_items": args.label_min_items, "finetune_users": args.finetune_users,
                   "seed": args.label_seed}
        if (args.label_min_items, args.finetune_users, args.label_seed) != (None, None, None) else None,
        "on_error": args.on_error,
        "progress": False if args.no_progress else None,
    }


def main_prepare(argv: Sequence[str] | None = None) -> int:
    """Run ``prepare <source> ...``; returns the exit status (0 done, 2 bad options or data)."""
    args = build_parser().parse_args(argv)
    # Imported after parsing so that ``--help`` answers at once (pandas and the readers are slow to load).
    from elliot_visual.config.errors import ConfigError
    from elliot_visual.config.prepare import load_prepare_config
    from elliot_visual.data.amazon import prepare_amazon
    from elliot_visual.data.readers import DataError

    if args.source == "dvbpr":
        try:
            print(prepare_dvbpr(args.npy, args.out, progress=not args.no_progress))
        except (DataError, FileNotFoundError) as err:
            print(f"prepare dvbpr: {err}", file=sys.stderr)
            return 2
        return 0
    try:
        config = load_prepare_config(args.config, overrides_from_args(args))
        prepared = prepare_amazon(config)
    except (ConfigError, DataError) as err:
        print(f"prepare {args.source}: {err}", file=sys.stderr)
        return 2
    print(prepared.card.to_text())
    print(f"written to {prepared.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_prepare())
