"""The hooks a genpost plugin may implement. Every hook here is documented in docs/plugins.md."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("genpost")
hookimpl = pluggy.HookimplMarker("genpost")


@hookspec
def register_postprocessors(register):
    """Register PostProcessor subclasses: call ``register(MyPostProcessor)`` once per class."""


@hookspec
def register_commands(cli):
    """Add typer commands to the ``genpost`` CLI: ``@cli.command()`` on your functions."""
