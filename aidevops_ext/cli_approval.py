"""CLI commands of `promote: manual`: `approve NAME` and `reject NAME` (printing only; the work is in loop.py), and
the "awaiting approval" block `aidevops deployments NAME` prints. Registered on the `aidevops` group by cli.py."""

from __future__ import annotations

import json

import click

from .cli_options import reason_option


def _workspace():
    from .workspace import Workspace

    return Workspace.discover()


def awaiting_lines(name: str, held: dict | None) -> list[str]:
    """The "awaiting approval" block of a deployment's listing: the version and its evidence."""
    if not held:
        return []
    gate = held.get("gate") or {}
    live = held.get("live_rows") or 0
    since = f" since {held['live_since']}" if live and held.get("live_since") else ""
    return [
        f"  awaiting  v{held['version']} (retraining #{held['retraining']}, since {held.get('since') or '-'}): "
        f"`aidevops approve {name}` switches to it, `aidevops reject {name}` drops it",
        f"    gate      {gate.get('summary') or '-'}",
        *([f"    compared  {gate['compared_on']}"] if gate.get("compared_on") else []),
        f"    trigger   {held.get('trigger') or '-'}",
        f"    live rows {live}{since}",
        *_shadow_line(held.get("shadow")),
    ]


def _shadow_line(sh: dict | None) -> list[str]:
    """The held version's shadow evidence, when it was shadowed: agreement, and both accuracies once labelled."""
    if not sh:
        return []
    agreement = sh.get("agreement_rate")
    text = f"agreement {agreement:.3f} on {sh.get('requests', 0)} mirrored requests" if agreement is not None else ""
    active, shadow = sh.get("active_accuracy"), sh.get("shadow_accuracy")
    if active and shadow:
        text += (
            f"; accuracy v{sh['version']} {shadow['value']:.3f} [{shadow['low']:.3f}, {shadow['high']:.3f}] vs "
            f"v{sh.get('active_version')} {active['value']:.3f} [{active['low']:.3f}, {active['high']:.3f}] "
            f"on {shadow['labels']} labels"
        )
    return [f"    shadow    {text or 'no mirrored requests yet'}"]


def _decide(name: str, reason: str, as_json: bool, decision: str) -> None:
    from . import loop

    before = loop.awaiting_approval(_workspace(), name)
    act = loop.approve if decision == "approve" else loop.reject
    entry = act(_workspace(), name, reason=reason)
    if as_json:
        click.echo(json.dumps({"event": entry.to_dict(), "decided": before}, indent=1, default=str))
        return
    did = "switched to" if decision == "approve" else "rejected"
    click.echo(f"{name}: {did} v{entry.to_version} ({entry.reason})")


def _decision_command(decision: str, doc: str) -> click.Command:
    """`aidevops approve` or `aidevops reject`: the same arguments, one decision each."""

    @click.command(decision, help=doc)
    @click.argument("name")
    @reason_option
    @click.option("--json", "as_json", is_flag=True, help="Print the history entry as JSON.")
    def command(name, reason, as_json) -> None:
        _decide(name, reason, as_json, decision)

    return command


approve = _decision_command(
    "approve", "Switch deployment NAME to its retrained version that awaits approval, and make it champion."
)
reject = _decision_command(
    "reject", "Drop deployment NAME's retrained version that awaits approval; it keeps serving what it serves."
)
COMMANDS = (approve, reject)
