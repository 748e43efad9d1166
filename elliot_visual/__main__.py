"""``python -m elliot_visual`` is the ``elliot-visual`` command."""
from elliot_visual.cli import main

raise SystemExit(main())
