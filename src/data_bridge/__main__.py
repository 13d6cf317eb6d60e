"""``python -m data_bridge module:app``: the same as the data-bridge command."""

from data_bridge.api.cli import main

main()
