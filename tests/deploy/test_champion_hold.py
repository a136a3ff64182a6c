"""The hold a `promote: manual` retraining puts on `champion` while its pipeline runs: it holds while its process
lives, only its holder releases it, and a hold whose process died lapses by itself (champion is never stuck)."""

from __future__ import annotations

import subprocess
import sys

from aidevops_ext.registry.connection import client
from aidevops_ext.registry.models import HOLD_TAG, champion_held, hold_champion, release_champion
from tests.deploy.conftest import MODEL


def test_a_hold_lasts_while_its_holder_lives_and_only_the_holder_releases_it(reg):
    assert champion_held(reg.ws, MODEL) is None
    hold_champion(reg.ws, MODEL, "retraining #7 of dig")
    try:
        assert champion_held(reg.ws, MODEL) == "retraining #7 of dig"
        release_champion(reg.ws, MODEL, "retraining #8 of dig")
        assert champion_held(reg.ws, MODEL) == "retraining #7 of dig", "another holder cannot release it"
    finally:
        release_champion(reg.ws, MODEL, "retraining #7 of dig")
    assert champion_held(reg.ws, MODEL) is None


def test_a_hold_whose_process_ended_lapses(reg):
    code = (
        "from pathlib import Path; from aidevops_ext.registry.models import hold_champion; "
        "from aidevops_ext.workspace import Workspace; "
        f"hold_champion(Workspace(Path({str(reg.root)!r})), {MODEL!r}, 'a killed retraining')"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert "a killed retraining" in client(reg.ws).get_registered_model(MODEL).tags[HOLD_TAG], "the tag stays"
    assert champion_held(reg.ws, MODEL) is None, "a retraining that died without releasing must not hold champion"
