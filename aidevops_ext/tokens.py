"""Feedback tokens: the credential a client needs to send labels to a deployment's `POST /feedback`.

Labels change what a retrained model learns, so only a holder of the deployment's token may send them
(docs/architecture.md §5). One random token per deployment name, made when the deployment is first
created and kept in `.aidevops/tokens/NAME` (a folder and file readable by their owner only, never in a
deploy.db row the API returns). The deployment's server reads it from there or from the environment
(`AIDEVOPS_FEEDBACK_TOKEN`: `aidevops serve`, Kubernetes' Secret), never from its command line, which
`/proc` shows to every user. Clients in the workspace (`aidevops simulate --feedback`, the monitor step)
read the file; `aidevops token NAME` prints it for everyone else.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .errors import ConfigError, NotFound
from .names import is_valid_name
from .workspace import Workspace

FEEDBACK_TOKEN_ENV = "AIDEVOPS_FEEDBACK_TOKEN"
TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 43 characters, 256 bits


def token_path(ws: Workspace, name: str) -> Path:
    """Where the feedback token of deployment `name` is kept; ConfigError for a name that is not one."""
    if not is_valid_name(name):
        raise ConfigError(
            f"{str(name)[:80]!r} is not a deployment name (letters, digits, '.', '_', '-'; at most 63 characters)."
        )
    return ws.state / "tokens" / name


def feedback_token(ws: Workspace, name: str) -> str | None:
    """The feedback token of deployment `name`, or None when it has none yet."""
    try:
        text = token_path(ws, name).read_text(encoding="ascii").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"The feedback token of '{name}' cannot be read ({exc}); delete {token_path(ws, name)} and redeploy."
        ) from None
    return text or None


def ensure_feedback_token(ws: Workspace, name: str) -> str:
    """The token of `name`, made (random, file mode 0600) when it has none: deploying again keeps it, so the
    clients that hold it keep working across restarts and version switches."""
    existing = feedback_token(ws, name)
    if existing:
        return existing
    path = token_path(ws, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    temp = path.with_name(f".{name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others, not even briefly
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(token + "\n")
        try:
            os.link(temp, path)  # atomic and exclusive: two deploys at once agree on one token
        except FileExistsError:
            pass
    finally:
        temp.unlink(missing_ok=True)
    return feedback_token(ws, name) or token


def require_feedback_token(ws: Workspace, name: str) -> str:
    """The token of `name`, or NotFound saying how to get one (a deployment made before tokens existed)."""
    token = feedback_token(ws, name)
    if not token:
        raise NotFound(
            f"Deployment '{name}' has no feedback token in {ws.state / 'tokens'}; deploy it again "
            f"(`aidevops deploy ... --name {name}`) to make one."
        )
    return token
