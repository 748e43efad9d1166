"""``elliot-visual affinity`` and ``elliot-visual serve``: argument parsing, then the interactive layer."""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from elliot_visual.interactive.affinity import DEFAULT_PHI, DEFAULT_SAMPLE, Step
from elliot_visual.interactive.trained_run import load_trained_run


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="the run's results folder, e.g. results/clothing")
    parser.add_argument("--model", default=None,
                        help="family, entry key or full name of the model (default: the run's first VBPR-family model)")
    parser.add_argument("--sample-size", type=int, default=DEFAULT_SAMPLE,
                        help="items in the random sample R(I) of eq. 5 (default %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="seed of that sample (default %(default)s)")


def main_affinity(argv: Sequence[str]) -> int:
    """Print a user's top features (eq. 5) and her list, refined toward an item (eq. 6) or a feature (eq. 7)."""
    parser = argparse.ArgumentParser(prog="elliot-visual affinity", description=main_affinity.__doc__)
    _common(parser)
    parser.add_argument("--user", required=True, help="public user id")
    parser.add_argument("--toward-item", action="append", default=[], metavar="ITEM",
                        help="refine toward this item's features (eq. 6); repeatable, applied in order")
    parser.add_argument("--toward-feature", action="append", default=[], metavar="NAME",
                        help="refine toward this named feature (eq. 7); repeatable, applied after the items")
    parser.add_argument("--phi", type=float, default=DEFAULT_PHI, help="scale φ of eq. 6 (default %(default)s)")
    parser.add_argument("--phi-feature", type=float, default=DEFAULT_PHI, help="scale φ′ of eq. 7 (default %(default)s)")
    parser.add_argument("-k", type=int, default=10, help="length of the list (default %(default)s)")
    parser.add_argument("--top-features", type=int, default=5, help="features to print (default %(default)s)")
    args = parser.parse_args(argv)
    run = load_trained_run(args.run, args.model)
    explorer = run.explorer(args.sample_size, args.seed)
    steps = [Step("item", i, args.phi) for i in args.toward_item] + \
            [Step("feature", f, args.phi_feature) for f in args.toward_feature]
    initial = explorer.affinity(args.user)
    p = explorer.refined(args.user, steps)
    print(f"{run.name}: user {args.user}")
    print("top features (affinity, eq. 5):")
    for name, value in explorer.top_features(initial, args.top_features):
        print(f"  {name}\t{value:.4f}")
    if steps:
        print("after " + " -> ".join(f"toward {s.kind} {s.target} (phi={s.phi:g})" for s in steps) + ":")
        for name, value in explorer.top_features(p, args.top_features):
            print(f"  {name}\t{value:.4f}")
    print("recommendations" + (" (refined)" if steps else "") + ":")
    for rank, item in enumerate(explorer.recommend(p, args.k, user=args.user), start=1):
        print(f"  {rank}\t{item.item_id}\t{item.distance:.4f}")
    return 0


def serve_parser() -> argparse.ArgumentParser:
    """The arguments of ``elliot-visual serve`` (bound to 127.0.0.1 unless ``--host`` says otherwise)."""
    parser = argparse.ArgumentParser(prog="elliot-visual serve", description=main_serve.__doc__)
    _common(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    return parser


def main_serve(argv: Sequence[str]) -> int:
    """Serve the interactive refinement page for a run's trained VBPR-family model (local only by default)."""
    args = serve_parser().parse_args(argv)
    try:
        import uvicorn

        from elliot_visual.interactive.server import create_app
    except ImportError as error:
        raise ImportError(f"elliot-visual serve needs the 'serve' extra ({error.name} is missing): "
                          "pip install 'elliot_visual[serve]'") from None
    run = load_trained_run(args.run, args.model)
    app = create_app(run, run.explorer(args.sample_size, args.seed))
    print(f"serving {run.name} on http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
