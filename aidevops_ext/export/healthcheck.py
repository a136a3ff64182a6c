"""The container image's HEALTHCHECK: exit 0 when the model server on AIDEVOPS_PORT answers /health.

A Python module rather than curl: the slim base image has no curl, and the virtualenv is already there.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    """0 if GET http://127.0.0.1:$AIDEVOPS_PORT/health answers 200 within 3 s, else 1."""
    port = os.environ.get("AIDEVOPS_PORT", "8080")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError, ValueError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
