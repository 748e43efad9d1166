"""config layer of elliot_visual: Elliot's YAML dialect -> validated experiment objects (see DESIGN.md)."""
from elliot_visual.config.errors import ConfigError
from elliot_visual.config.loader import load_experiment, resolve_config_path

__all__ = ["ConfigError", "load_experiment", "resolve_config_path"]
