"""Feedback tokens: one per deployment, private to its owner, made once, printed by `aidevops token NAME`."""

from __future__ import annotations

import stat

import pytest
from click.testing import CliRunner

from aidevops_ext.cli import main
from aidevops_ext.errors import ConfigError, NotFound
from aidevops_ext.tokens import ensure_feedback_token, feedback_token, require_feedback_token, token_path
from aidevops_ext.workspace import Workspace


def test_a_token_is_made_once_private_and_kept(tmp_path):
    ws = Workspace(tmp_path)
    assert feedback_token(ws, "digits") is None
    token = ensure_feedback_token(ws, "digits")
    assert len(token) >= 40 and ensure_feedback_token(ws, "digits") == token == require_feedback_token(ws, "digits")
    path = token_path(ws, "digits")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert ensure_feedback_token(ws, "other") != token, "each deployment has its own"
    assert {p.name for p in path.parent.iterdir()} == {"digits", "other"}, "no temporary file is left behind"


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "x" * 64, None])
def test_names_that_could_leave_the_folder_are_refused(tmp_path, name):
    with pytest.raises(ConfigError, match="not a deployment name"):
        token_path(Workspace(tmp_path), name)


def test_the_cli_prints_the_token_or_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("AIDEVOPS_HOME", str(tmp_path))
    runner = CliRunner()
    missing = runner.invoke(main, ["token", "digits"])
    assert missing.exit_code == NotFound.exit_code and "deploy it again" in missing.output
    token = ensure_feedback_token(Workspace(tmp_path), "digits")
    shown = runner.invoke(main, ["token", "digits"])
    assert shown.exit_code == 0 and shown.output == token + "\n"
