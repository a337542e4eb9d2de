"""A local disk for fsspec that SIGKILLs its own process at a chosen write or move, and the
``flowinst-etl`` command line running on it.

``python -m tests.guarantees.killing_storage backfill ... --data-dir killing:///abs/path`` is the
real command line writing to ``/abs/path``. With one of these in the environment the process
kills itself, exactly as ``kill -9`` would:

- ``KILL_AT_OPENING=PREFIX:N``: when it opens for writing the N-th file whose name starts with
  ``PREFIX`` (``part-`` for a day's staged data files, ``commit.json`` for its commit record);
- ``KILL_AFTER_MOVE=N``: right after its N-th move (rename) has completed, so every point
  between two renames of a publish can be reached;
- ``KILL_AFTER_TABLE_COMMIT=N``: right after its N-th Delta transaction has been committed
  (deltalake's ``create_write_transaction``), so every point between two table commits of a
  day's write can be reached.

The dataset code is untouched: it reaches this disk through the same fsspec URL resolution that
gives it ``s3://``, and commits Delta tables through deltalake's own method.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

PROTOCOL = "killing"
KILL_AT = "KILL_AT_OPENING"
KILL_AFTER_MOVE = "KILL_AFTER_MOVE"
KILL_AFTER_TABLE_COMMIT = "KILL_AFTER_TABLE_COMMIT"


class KillingFileSystem(LocalFileSystem):
    """The local filesystem, killing its process at the configured write or move."""

    protocol = (PROTOCOL,)
    _lock = threading.Lock()
    _opened = 0
    _moved = 0

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        text = str(path)
        scheme = f"{cls.protocol[0]}://"
        if text.startswith(scheme):
            text = text[len(scheme) :]
        return super()._strip_protocol(text)

    def _open(self, path: Any, mode: str = "rb", **kwargs: Any) -> Any:
        if "w" in mode:
            _maybe_die_opening(os.path.basename(str(path)))
        return super()._open(path, mode, **kwargs)

    def mv(self, path1: Any, path2: Any, recursive: bool = True, **kwargs: Any) -> None:
        super().mv(path1, path2, recursive=recursive, **kwargs)
        limit = os.environ.get(KILL_AFTER_MOVE)
        if limit:
            with KillingFileSystem._lock:
                KillingFileSystem._moved += 1
                if KillingFileSystem._moved == int(limit):
                    os.kill(os.getpid(), signal.SIGKILL)


def _maybe_die_opening(name: str) -> None:
    prefix, _, count = os.environ.get(KILL_AT, "").rpartition(":")
    if not prefix or not name.startswith(prefix):
        return
    with KillingFileSystem._lock:
        KillingFileSystem._opened += 1
        if KillingFileSystem._opened == int(count):
            os.kill(os.getpid(), signal.SIGKILL)


def _die_after_table_commits(limit: int) -> None:
    """Make deltalake's commit of a write transaction kill the process once the ``limit``-th
    has completed."""
    from deltalake import DeltaTable

    commit = DeltaTable.create_write_transaction
    commits = itertools.count(1)

    def committing(table: DeltaTable, *args: Any, **kwargs: Any) -> None:
        commit(table, *args, **kwargs)
        if next(commits) == limit:
            os.kill(os.getpid(), signal.SIGKILL)

    DeltaTable.create_write_transaction = committing  # type: ignore[method-assign]


fsspec.register_implementation(PROTOCOL, KillingFileSystem, clobber=True)
if os.environ.get(KILL_AFTER_TABLE_COMMIT):
    _die_after_table_commits(int(os.environ[KILL_AFTER_TABLE_COMMIT]))


if __name__ == "__main__":
    from flowinst_etl.cli import main

    sys.exit(main())
