"""The `aidevops` command: argument parsing and printing only; behaviour lives in the core."""

from __future__ import annotations

import sys

import click

from . import __version__
from .errors import AidevopsError


class _Group(click.Group):
    """Turns user-caused errors into one sentence and exit status 2, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AidevopsError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="aidevops")
def main() -> None:
    """aidevops: notebooks as the delivery pipeline for ML models."""


if __name__ == "__main__":  # pragma: no cover
    main()
