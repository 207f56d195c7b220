"""``python -m genpost.cli``: the CLI."""

from .commands import main

if __name__ == "__main__":
    main()
