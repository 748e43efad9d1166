"""features loaders layer of elliot_visual (see DESIGN.md)."""
