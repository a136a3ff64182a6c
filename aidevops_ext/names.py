"""Names that become folder names or URL segments: deployments, pipelines and their steps.

One pattern for all of them (docs/architecture.md §2, foundations): letters, digits, '.', '_' and '-', starting with a
letter or digit, at most 63 characters, so a name can never climb out of the folder it names (`../x`) or hide.
"""

from __future__ import annotations

import re

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def is_valid_name(name: object) -> bool:
    """True for a string the pattern accepts."""
    return isinstance(name, str) and NAME_PATTERN.match(name) is not None
