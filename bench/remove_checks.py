"""Remove each check of the extraction in turn and report which test catches it.

For every function of ``flowinst_etl/extract/checks.py`` that refuses, a copy of the checkout is
made with that function's body replaced by ``return``, and the extraction's guarantee tests run
against the copy (first failure stops the run). A check no test catches is printed as such.

    .venv/bin/python bench/remove_checks.py [--only NAME ...] [--workers 2]
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
CHECKS = Path("flowinst_etl/extract/checks.py")
TESTS = [
    "tests/guarantees/test_refusals.py",
    "tests/guarantees/test_deviations.py",
    "tests/guarantees/test_behaviours.py",
    "tests/guarantees/test_adversarial.py",
    "tests/test_extract.py",
]
#: Helpers that refuse nothing themselves.
NOT_CHECKS = {"refuse", "iso"}


def check_names() -> list[str]:
    tree = ast.parse((REPOSITORY / CHECKS).read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name not in NOT_CHECKS
    ]


def without(source: str, name: str) -> str:
    """``source`` with the body of function ``name`` replaced by ``return``."""
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    lines = source.splitlines(keepends=True)
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):  # docstring
        first = node.body[1] if len(node.body) > 1 else first
    start, end = first.lineno - 1, node.end_lineno
    assert end is not None
    indent = re.match(r"\s*", lines[start]).group(0)  # type: ignore[union-attr]
    return "".join(lines[:start] + [f"{indent}return  # removed\n"] + lines[end:])


def catcher(name: str, workers: int) -> str:
    """The first test that fails with check ``name`` removed, or ``-``."""
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "tree"
        shutil.copytree(
            REPOSITORY,
            copy,
            ignore=shutil.ignore_patterns(".git", ".venv*", "data", "__pycache__", ".*_cache"),
        )
        checks = copy / CHECKS
        checks.write_text(without(checks.read_text(), name))
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-x",
                "-q",
                "-n",
                str(workers),
                "-p",
                "no:cacheprovider",
                *TESTS,
            ],
            cwd=copy,
            env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin", "HOME": folder},
            capture_output=True,
            text=True,
            check=False,
        )
    failed = re.findall(r"^FAILED (.+?)(?: - .*)?$", done.stdout, re.MULTILINE)
    return failed[0] if failed else ("-" if done.returncode == 0 else f"exit {done.returncode}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    names = args.only or check_names()
    print("| check removed | first test that fails |\n|---|---|")
    for name in names:
        print(f"| `{name}` | `{catcher(name, args.workers)}` |", flush=True)


if __name__ == "__main__":
    main()
