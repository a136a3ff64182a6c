"""`python -m aidevops_ext.serving MODEL_URI [--host H] [--port P] ...`: serve a model (see server.serve)."""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import AidevopsError


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve; a user error prints one sentence and returns 2."""
    from .server import DEFAULT_HOST, DEFAULT_PORT  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="python -m aidevops_ext.serving", description=__doc__)
    p.add_argument(
        "model_uri", help="models:/NAME@ALIAS, models:/NAME/VERSION, a .npz model file or an MLflow model folder"
    )
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument(
        "--grpc-port",
        type=int,
        default=None,
        metavar="PORT",
        help="also serve the Open Inference Protocol over gRPC on this port (same host; default: no gRPC)",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="server processes sharing the port (default 1; worker 0 monitors)"
    )
    p.add_argument("--workspace", default=None, help="workspace folder (default: AIDEVOPS_HOME or discovered)")
    p.add_argument("--max-body-mb", type=float, default=None, help="largest request body in MB (default 10)")
    p.add_argument(
        "--log-sample-rate", type=float, default=None, help="fraction of requests logged to deploy.db (default 1)"
    )
    p.add_argument("--no-request-log", action="store_true", help="log no requests to deploy.db")
    p.add_argument(
        "--follow-alias",
        type=float,
        default=None,
        metavar="SECONDS",
        help="poll the registry every SECONDS and switch when the alias moves (default 30; 0 disables)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name answered besides 127.0.0.1, localhost and [::1] (repeat; .example.com: a domain)",
    )
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="also load MLflow models whose loading unpickles or runs their own code (only models you trust)",
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    args = p.parse_args(argv)

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from dataclasses import replace  # noqa: PLC0415
        from pathlib import Path  # noqa: PLC0415

        from ..workspace import Workspace  # noqa: PLC0415
        from .config import ServingConfig, parse_hosts  # noqa: PLC0415
        from .server import serve  # noqa: PLC0415

        config = ServingConfig.from_env(
            max_body_bytes=None if args.max_body_mb is None else int(args.max_body_mb * 1024 * 1024),
            log_sample_rate=args.log_sample_rate,
            log_requests=False if args.no_request_log else None,
            follow_alias_seconds=args.follow_alias,
        )
        if args.allowed_host:
            config = replace(config, allowed_hosts=parse_hosts([*config.allowed_hosts, *args.allowed_host]))
        ws = Workspace(Path(args.workspace).resolve()) if args.workspace else Workspace.discover()
        serve(
            args.model_uri,
            host=args.host,
            port=args.port,
            workspace=ws,
            config=config,
            log_level=args.log_level,
            allow_pickle=args.allow_pickle,
            grpc_port=args.grpc_port,
            workers=args.workers,
        )
    except AidevopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
