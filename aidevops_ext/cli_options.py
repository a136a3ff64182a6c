"""Click options and output that several command modules share (cli.py, cli_schedule.py, cli_approval.py,
export/commands.py), so each flag reads and behaves the same in every command that takes it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sized
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

PARAM_HELP = "Override a param as with `aidevops run` (STEP.KEY for one step)."


def reason_option(f: F) -> F:
    """--reason: why a deployment changes, kept in its history."""
    return click.option("--reason", default="", help="Why (kept in the deployment's history).")(f)


def param_option(help: str = PARAM_HELP) -> Callable[[F], F]:
    """-p / --param KEY=VALUE, repeatable, into the `params` argument (parse it with pipeline.params)."""
    return click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help=help)


def allowed_host_option(f: F) -> F:
    """--allowed-host NAME, repeatable, into `allowed_hosts`: Host names a model server answers."""
    return click.option(
        "--allowed-host",
        "allowed_hosts",
        multiple=True,
        metavar="NAME",
        help="A Host name the server answers besides 127.0.0.1, localhost and [::1] (repeat; .example.com: a domain).",
    )(f)


def allow_pickle_option(f: F) -> F:
    """--allow-pickle: load MLflow models whose loading runs their own code (an opt-in, for trusted models)."""
    return click.option(
        "--allow-pickle",
        is_flag=True,
        help="Also load MLflow models whose loading unpickles or runs their own code (only models you trust; "
        "a pipeline's own model: `serving: {allow_pickle: true}` in its spec).",
    )(f)


def output_option(help: str, *, folder: bool = False) -> Callable[[F], F]:
    """-o / --output PATH into `output`, a Path to a file (or with `folder`, a folder); None when not given."""
    path = click.Path(file_okay=False, path_type=Path) if folder else click.Path(dir_okay=False, path_type=Path)
    return click.option("--output", "-o", type=path, default=None, help=help)


def echo_json_or_none_yet(rows: Sized, as_json: bool, none_yet: str, payload: Any = None) -> bool:
    """A listing's two short answers: with --json the listing as JSON (`payload`, else `rows`), else `none_yet`
    when it is empty. True when that was all the command prints."""
    if as_json:
        click.echo(json.dumps(rows if payload is None else payload, indent=1, default=str))
        return True
    if not rows:
        click.echo(none_yet)
        return True
    return False


def echo_warnings(warnings: Iterable[str]) -> None:
    """Each warning on stderr, one line each, so stdout stays the command's output (YAML, JSON)."""
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
