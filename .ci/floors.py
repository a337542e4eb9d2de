"""Print the lowest version of every runtime dependency that pyproject.toml allows, as pins.

CI installs the project with these as constraints, so each floor it declares is one it is tested
with; a dependency declared without a floor is an error.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

FLOOR = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)")


def main() -> int:
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    for requirement in project["project"]["dependencies"]:
        match = FLOOR.match(requirement)
        if match is None:
            print(f"no floor in dependency {requirement!r}", file=sys.stderr)
            return 1
        print(f"{match[1]}=={match[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
