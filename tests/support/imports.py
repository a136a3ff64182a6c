"""What a fresh interpreter imports: for the tests that keep a light module (the model server, the monitor, the
trainer's data and metrics) from pulling in heavy packages or unrelated parts of aidevops."""

from __future__ import annotations

import json
import subprocess
import sys


def modules_loaded_by(code: str, packages: tuple[str, ...] = (), prefixes: tuple[str, ...] = ()) -> list[str]:
    """The modules loaded after `code` runs in a new Python process whose top-level package is one of `packages`
    or whose name starts with one of `prefixes`, sorted: [] when `code` imports none of them."""
    probe = (
        f"{code}\nimport json, sys\n"
        f"wanted = lambda m: m.split('.')[0] in {packages!r} or m.startswith({prefixes!r})\n"
        "print(json.dumps(sorted(filter(wanted, sys.modules))))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])
