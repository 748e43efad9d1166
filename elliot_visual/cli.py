"""``elliot-visual run | extract | finetune | visdiv | prepare | report | affinity | serve``: argument parsing only.

Each subcommand hands its arguments to the layer that does the work, imported only after the
arguments are parsed, so ``--help`` answers at once. A bad config or bad input ends with its
message on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

# subcommand -> (module, function taking argv, one-line description) for the commands owned by other layers
DELEGATED = {
    "extract": ("elliot_visual.extraction.commands", "main_extract",
                "extract CNN features of item images (a config's extraction: blocks, or flags)"),
    "finetune": ("elliot_visual.extraction.commands", "main_finetune",
                 "fine-tune a backbone on item metadata, then extract its features"),
    "prepare": ("elliot_visual.data.prepare_command", "main_prepare",
                "turn raw Amazon review files into a dataset folder the configs read"),
    "report": ("elliot_visual.reports.html_report", "main_report",
               "rebuild a results folder's report.html from its files"),
    "affinity": ("elliot_visual.interactive.commands", "main_affinity",
                 "a user's affinity to named features, and her list refined toward an item or a feature"),
    "serve": ("elliot_visual.interactive.commands", "main_serve",
              "the interactive refinement page of a trained model with named features (127.0.0.1)"),
}
COMMANDS = {"run": "run an Elliot-style experiment: data, features, tuning, evaluation, reports",
            "visdiv": "VisDiv and visual-profile pictures from a run's saved recommendation files",
            **{name: entry[2] for name, entry in DELEGATED.items()}}
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, KeyError, ImportError,
                                                NotADirectoryError, IsADirectoryError, PermissionError)


def _version() -> str:
    from elliot_visual import __version__

    return __version__


def _top_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<9} {text}" for name, text in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="elliot-visual", formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="elliot-visual [-h] [--version] [-q] [--no-progress] COMMAND [ARGS ...]",
        description="Visually-aware recommendation, the Elliot way.",
        epilog=f"commands:\n{lines}\n\n'elliot-visual COMMAND --help' describes a command's options.")
    parser.add_argument("--version", action="version", version=f"elliot-visual {_version()}")
    _output_flags(parser)
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print warnings and errors only, no progress bars (the run's log file keeps everything)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (progress is still logged as plain lines)")


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="elliot-visual run", description=COMMANDS["run"] + ".")
    parser.add_argument("config", help="a YAML path, or a name under config_files/ (Elliot's form: 'baby')")
    parser.add_argument("--engine", choices=("native", "elliot"), default="native",
                        help="native: this package's engine; elliot: an installed Elliot with our plugins")
    _output_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> int:
    from elliot_visual.config import resolve_config_path

    path = resolve_config_path(args.config)
    if args.engine == "elliot":
        from elliot_visual.elliot_launcher import run_with_elliot

        run_with_elliot(path)
        return 0
    from elliot_visual.experiment import run_experiment

    summary = run_experiment(path)
    performance = [p for p in summary.files if p.name.startswith("rec_cutoff_")]
    print("Wrote", len(summary.files), "files; performance tables:")
    for table in performance:
        print(" ", table)
    for page in (p for p in summary.files if p.name == "report.html"):
        print("Report:", page)
    if summary.log_file is not None:
        print("Log:", summary.log_file)
    return 0


def _visdiv_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="elliot-visual visdiv",
                                     description="VisDiv and visual-profile pictures from saved recommendation "
                                                 "files (no retraining). Tables go to the performance folder, "
                                                 "pictures to figures/offline_<time>/, beside the run's own.")
    parser.add_argument("--config", required=True, help="the experiment's YAML config")
    parser.add_argument("--recs", nargs="+", type=Path, default=None,
                        help="recommendation TSVs (default: every .tsv in the config's recs folder)")
    _output_flags(parser)
    return parser


def _visdiv(args: argparse.Namespace) -> int:
    from elliot_visual.config import resolve_config_path
    from elliot_visual.offline import run_visdiv

    table = run_visdiv(resolve_config_path(args.config), args.recs)
    print(table.read_text(encoding="utf-8"), end="")
    print("Wrote", table)
    return 0


class _ConsoleHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests and notebooks swap it)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


OWN = {"run": (_run_parser, _run), "visdiv": (_visdiv_parser, _visdiv)}


def _configure_output(quiet: bool, no_progress: bool) -> None:
    """Console logging at INFO (WARNING with ``--quiet``); bars off with either flag."""
    from elliot_visual.progress import configure

    configure(bars=not (quiet or no_progress))
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _ConsoleHandler)), None)
    if handler is None:
        handler = _ConsoleHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``elliot-visual`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    if not argv:
        top.print_help(sys.stderr)
        return 2
    try:
        head = top.parse_args(argv[:_command_position(argv) + 1])
    except SystemExit as stop:
        return int(stop.code or 0)
    rest = argv[_command_position(argv) + 1:]
    try:
        if head.command in OWN:
            build, handler = OWN[head.command]
            args = build().parse_args(rest)
            _configure_output(head.quiet or args.quiet, head.no_progress or args.no_progress)
            return handler(args)
        module, function, _ = DELEGATED[head.command]
        if "-h" not in rest and "--help" not in rest:
            _configure_output(head.quiet, head.no_progress)
        return int(getattr(importlib.import_module(module), function)(rest) or 0)
    except SystemExit as stop:
        return int(stop.code or 0) if not isinstance(stop.code, str) else 2
    except USER_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2


def _command_position(argv: Sequence[str]) -> int:
    """Index of the first argument that is not a top-level flag (the command), or the last one."""
    for i, arg in enumerate(argv):
        if not arg.startswith("-"):
            return i
    return len(argv) - 1
