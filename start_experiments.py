"""Elliot's entry point: ``python start_experiments.py --config config_files/baby.yml`` (or ``--config baby``)."""
import argparse
import sys

from elliot_visual.cli import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Run an Elliot-style experiment with elliot_visual")
    parser.add_argument("--config", default="config_files/demo.yml",
                        help="YAML path or a name under config_files/ (default: config_files/demo.yml)")
    parser.add_argument("--engine", choices=("native", "elliot"), default="native",
                        help="native (default) or an installed Elliot with this package's models and loaders")
    args = parser.parse_args()
    sys.exit(main(["run", args.config, "--engine", args.engine]))
