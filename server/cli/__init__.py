"""The `gridwalk` command (commands.py) and how each of its commands talks and works
(terminal.py)."""

from server.cli.commands import app

__all__ = ["app"]
