"""``elliot-visual run | extract | finetune | visdiv | prepare | report | affinity | serve``: argument parsing only.

Each subcommand hands its arguments to the layer that does the work. A bad config or bad input
ends with its message on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# subcommand -> (module, function taking argv) for the commands owned by other layers
DELEGATED = {
    "extract": ("elliot_visual.extraction.commands", "main_extract"),
    "finetune": ("elliot_visual.extraction.commands", "main_finetune"),
    "visdiv": ("elliot_visual.offline", "main_visdiv"),
    "prepare": ("elliot_visual.data.prepare_command", "main_prepare"),
    "report": ("elliot_visual.reports.html_report", "main_report"),
    "affinity": ("elliot_visual.interactive.commands", "main_affinity"),
    "serve": ("elliot_visual.interactive.commands", "main_serve"),
}
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, KeyError, ImportError)


def _run(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="elliot-visual run", description="Run an Elliot-style experiment")
    parser.add_argument("config", help="a YAML path, or a name under config_files/ (Elliot's form: 'baby')")
    parser.add_argument("--engine", choices=("native", "elliot"), default="native",
                        help="native: this package's engine; elliot: an installed Elliot with our plugins")
    args = parser.parse_args(argv)
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
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``elliot-visual`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = ["run", *DELEGATED]
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print(f"usage: elliot-visual {{{','.join(commands)}}} ...", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    command, rest = argv[0], argv[1:]
    try:
        if command == "run":
            return _run(rest)
        module, function = DELEGATED[command]
        return int(getattr(importlib.import_module(module), function)(rest) or 0)
    except USER_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2
