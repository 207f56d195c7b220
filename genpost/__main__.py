"""``python -m genpost``: the CLI."""

from .cli import main

main()
