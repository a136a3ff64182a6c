"""CLI commands of the monitoring loop: `monitor`, `simulate`, `retrain`, `retrains` (printing only; the work
is in serving/monitor.py, traffic.py and loop.py). Registered on the `aidevops` group by cli.py."""

from __future__ import annotations

import json
import sys
import time

import click

from . import retrainings
from .cli_options import echo_json_or_none_yet
from .errors import ConfigError
from .tables import table


def _workspace():
    from .workspace import Workspace

    return Workspace.discover()


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def render_summary(s: dict, events: list[dict]) -> str:
    """The terminal view of one monitor summary."""
    lines = [
        f"{s.get('deployment') or s.get('model')} · {s.get('model')} v{s.get('version')} · window {s.get('window')} "
        f"({s.get('logged_rows', 0)} rows; {s.get('completed_windows', 0)} complete windows of {s.get('window_rows')})"
    ]
    req = s.get("requests") or {}
    lines.append(
        f"requests {req.get('requests', 0)} · errors {_fmt(req.get('error_rate'), 4)} · latency p50 "
        f"{_fmt(req.get('latency_p50_ms'), 2)} ms p99 {_fmt(req.get('latency_p99_ms'), 2)} ms"
    )
    q = s.get("quality") or {}
    if q:
        if q.get("metric") == "accuracy":
            lines.append(
                f"live accuracy {_fmt(q.get('accuracy'))} [{_fmt(q.get('accuracy_lower'))}, {_fmt(q.get('accuracy_upper'))}]"
                f" over {q.get('labelled', 0)} labelled rows ({q.get('status')})"
            )
        else:
            lines.append(
                f"live MAE {_fmt(q.get('mae'))} RMSE {_fmt(q.get('rmse'))} over {q.get('labelled', 0)} labelled rows"
            )
    d = s.get("drift") or {}
    if d:
        feats = sorted(d.get("features", []), key=lambda f: -(f.get("psi") or 0))
        drifted = d.get("drifted") or []
        if d.get("status") == "ok":  # the status says whether drift was computed, not whether anything moved
            lines.append(
                f"drift: {len(drifted) or 'none'} of {len(feats)} features drifted"
                + (f" ({', '.join(drifted[:8])}{' …' if len(drifted) > 8 else ''})" if drifted else "")
            )
        else:
            lines.append(f"drift: not computed ({d.get('status')})")
        if d.get("status") == "ok":
            numeric = [f for f in feats if f.get("kind") != "category"]
            categories = [f for f in feats if f.get("kind") == "category"]
            if numeric:
                rows = [
                    [
                        f["name"],
                        _fmt(f.get("psi")),
                        _fmt(f.get("ks_statistic")),
                        _fmt(f.get("ks_pvalue"), 4),
                        _fmt(f.get("wasserstein_std")),
                        "yes" if f.get("drifted") else "",
                    ]
                    for f in numeric[:8]
                ]
                lines += table(
                    rows, ["feature", "PSI", "KS", "p-value", "W/std", "drifted"], right=[1, 2, 3, 4], indent="  "
                )
            if categories:  # PSI and chi-square over the categories; the most common one's share then and now
                rows = []
                for f in categories[:8]:
                    top = (f.get("top_categories") or [{}])[0]
                    shares = (
                        f"{top.get('category')} {_fmt(top.get('reference'), 2)} → {_fmt(top.get('live'), 2)}"
                        if top
                        else "–"
                    )
                    rows.append(
                        [
                            f["name"],
                            _fmt(f.get("psi")),
                            _fmt(f.get("chi2_pvalue"), 4),
                            _fmt(f.get("unseen_rate"), 2),
                            shares,
                            "yes" if f.get("drifted") else "",
                        ]
                    )
                lines += table(
                    rows,
                    ["category", "PSI", "chi2 p", "unseen", "top category (reference → live)", "drifted"],
                    right=[1, 2, 3],
                    indent="  ",
                )
    p = s.get("prediction_drift") or {}
    if p:
        lines.append(f"prediction drift: PSI {_fmt(p.get('psi'))}, p {_fmt(p.get('pvalue'), 4)} ({p.get('status')})")
    lines += _shadow_lines(s.get("shadow"))
    alerts = s.get("alerts") or []
    if alerts:
        lines.append("alerts:")
        rows = []
        for a in alerts:
            since = time.strftime("%H:%M:%S", time.localtime(a["since"])) if a.get("since") else "–"
            where = f" on {', '.join(a['features'][:5])}" if a.get("features") else ""
            rows.append(
                [
                    a["rule"],
                    a["state"],
                    f"since {since}",
                    f"{a['metric']} {_fmt(a.get('value'))} {a['op']} "
                    f"{a['threshold']:g}{where}" + ("  → retrain" if a.get("action") == "retrain" else ""),
                ]
            )
        lines += table(rows, indent="  ")
    for e in events[-5:]:
        when = time.strftime("%H:%M:%S", time.localtime(e["at"]))
        handled = f" ({e['handled_by']})" if e.get("handled_by") else ""
        lines.append(f"  #{e['id']} {when} {e['event']}: {e['message']}{handled}")
    for note in s.get("notes") or []:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _shadow_lines(sh: dict | None) -> list[str]:
    """The shadow's evidence: agreement with the active version, and both accuracies once labels arrive."""
    if not sh:
        return []
    state = "" if sh.get("running") else " (stopped)"
    lines = [
        f"shadow v{sh.get('version')}{state} beside v{sh.get('active_version')}: {sh.get('requests', 0)} mirrored "
        f"requests, agreement {_fmt(sh.get('agreement_rate'))}, dropped {sh.get('dropped', 0)}"
    ]
    for who, key in (("active", "active_accuracy"), ("shadow", "shadow_accuracy")):
        acc = sh.get(key)
        if acc:
            lines.append(
                f"  {who} accuracy {_fmt(acc['value'])} [{_fmt(acc['low'])}, {_fmt(acc['high'])}] "
                f"on {acc['labels']} labelled rows"
            )
    return lines


@click.command()
@click.argument("name")
@click.option("--once", is_flag=True, help="Print one snapshot and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON (with --once).")
@click.option(
    "--interval", type=float, default=2.0, show_default=True, help="Seconds between refreshes of the live view."
)
def monitor(name, once, as_json, interval) -> None:
    """Drift, live accuracy, latency and alerts of a running deployment (live; --once --json for one snapshot)."""
    from .deploy import manager

    ws = _workspace()
    if not interval > 0:
        raise ConfigError("--interval must be a positive number of seconds.")
    while True:
        summary = manager.monitor_summary(ws, name, refresh=True)
        events = summary.get("events") or []
        if once and as_json:
            click.echo(json.dumps(summary, indent=1, default=str))
            return
        text = render_summary(summary, events)
        if once:
            click.echo(text)
            return
        click.clear()
        click.echo(text + f"\n\n(refreshing every {interval:g} s; Ctrl-C to stop)")
        try:
            time.sleep(interval)
        except KeyboardInterrupt:
            return


@click.command()
@click.argument("name")
@click.option("--rate", type=float, default=20.0, show_default=True, help="Requests per second.")
@click.option("--duration", type=float, default=30.0, show_default=True, help="Seconds to run.")
@click.option(
    "--drift", type=float, default=0.0, show_default=True, help="Shift the rows by this many standard deviations."
)
@click.option(
    "--drift-after", type=float, default=0.0, show_default=True, help="Seconds of normal traffic before the shift."
)
@click.option(
    "--drift-features",
    default=None,
    metavar="I,J,...",
    help="Shift only these features: indices, or column names for a table's model (default: all).",
)
@click.option(
    "--feedback", type=float, default=0.0, show_default=True, help="Share of requests whose true label is posted."
)
@click.option("--batch", type=int, default=1, show_default=True, help="Rows per request.")
@click.option(
    "--data", "source", default=None, help="Replay this dataset (name or file) instead of the model's test split."
)
@click.option("--target", default=None, help="Target column of --data (files).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def simulate(
    name, rate, duration, drift, drift_after, drift_features, feedback, batch, source, target, seed, as_json
) -> None:
    """Replay test rows against a deployment at a steady rate, optionally drifted, posting feedback for a share
    (with the deployment's feedback token, read from the workspace)."""
    from . import traffic
    from .deploy import manager
    from .tokens import require_feedback_token

    ws = _workspace()
    dep = manager.running(ws, name)
    url = dep.url
    if url is None:  # manager.running refuses a deployment without an address; this keeps its type
        raise ConfigError(f"deployment '{name}' has no address to send traffic to; redeploy it with `aidevops deploy`.")
    rows = traffic.rows_from_dataset(source, target) if source else traffic.rows_for_model(ws.root, dep.model)
    features = None
    if drift_features:
        given = [v.strip() for v in drift_features.split(",") if v.strip()]
        if rows.is_frame and all(v in rows.X.columns for v in given):
            features = given
        else:
            try:
                features = [int(v) for v in given]
            except ValueError:
                names = f" or column names ({', '.join(map(str, rows.X.columns[:12]))})" if rows.is_frame else ""
                raise ConfigError(
                    f"--drift-features takes feature indices like 0,3,5{names}, got {drift_features!r}."
                ) from None
            if not features or min(features) < 0 or max(features) >= rows.X.shape[1]:
                raise ConfigError(f"--drift-features must be indices between 0 and {rows.X.shape[1] - 1}.")
    if not as_json:
        click.echo(f"sending {rate:g} req/s for {duration:g} s to {dep.url} ({rows.source})", err=True)
    result = traffic.simulate(
        url,
        rows,
        rate=rate,
        duration=duration,
        drift=drift,
        drift_features=features,
        drift_after=drift_after,
        feedback=feedback,
        feedback_token=require_feedback_token(ws, dep.name) if feedback else None,
        batch=batch,
        seed=seed,
    )
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=1))
    else:
        click.echo(
            f"sent {result.sent} ({result.ok} ok, {result.failed} failed, {result.drifted} drifted) in "
            f"{result.duration_s:.1f} s; feedback {result.feedback_sent}; latency p50 "
            f"{_fmt(result.latency_ms_p50, 2)} ms p99 {_fmt(result.latency_ms_p99, 2)} ms"
        )
        for e in result.errors:
            click.echo(f"  failed: {e}", err=True)
    if result.failed:
        sys.exit(1)


@click.command()
@click.argument("name")
@click.option(
    "--alert",
    "alert_id",
    type=int,
    default=None,
    help="The alert event this retraining answers (the supervisor sets it).",
)
@click.option(
    "--rows",
    type=int,
    default=5000,
    show_default=True,
    help="Newest labelled live rows to hand the pipeline (when its spec opts in; capped at retrain.max_live_share).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def retrain(name, alert_id, rows, as_json) -> None:
    """Retrain a deployment's model on its pipeline's data (plus labelled live rows when the spec's `retrain:` opts
    in); a version that passes the gate is switched in (`promote: auto`) or awaits `aidevops approve` (manual)."""
    from . import loop

    result = loop.retrain(
        _workspace(), name, alert_event_id=alert_id, rows=rows, echo=lambda m: click.echo(m, err=True)
    )
    click.echo(json.dumps(result.to_dict(), indent=1) if as_json else loop.retrain_exit_message(result))


@click.command()
@click.argument("name", required=False)
@click.option("-n", "--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def retrains(name, limit, as_json) -> None:
    """The retraining chain: alert → pipeline run → model version → deployment change."""
    rows = retrainings.retrainings(_workspace(), name, limit=limit)
    if echo_json_or_none_yet(rows, as_json, "no retrainings yet", payload=[r.to_dict() for r in rows]):
        return
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.started))
        cause = f"alert #{r.alert_event_id} ({r.rule})" if r.alert_event_id is not None else r.trigger
        click.echo(
            f"#{r.id} {when} {r.deployment}: {cause} → run {r.pipeline_run_id or '–'} → "
            f"v{r.version or '–'} (gate {'passed' if r.gate_passed else 'failed' if r.gate_passed is False else '–'})"
            f" → {r.status}: {r.message}"
        )


COMMANDS = (monitor, simulate, retrain, retrains)
