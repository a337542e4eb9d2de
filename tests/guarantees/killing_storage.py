"""A local disk for fsspec that SIGKILLs its own process when it opens a chosen file for writing,
and the ``flowinst-etl`` command line running on it.

``python -m tests.guarantees.killing_storage backfill ... --data-dir killing:///abs/path`` is the
real command line writing to ``/abs/path``; with ``KILL_AT_OPENING=PREFIX:N`` in the environment
the process kills itself, exactly as ``kill -9`` would, when it opens for writing the N-th file
whose name starts with ``PREFIX`` (``.part-0.parquet`` for a day's temporary data files,
``._manifest.json`` for its temporary manifests). The dataset code is untouched: it reaches this
disk through the same fsspec URL resolution that gives it ``s3://``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

PROTOCOL = "killing"
KILL_AT = "KILL_AT_OPENING"


class KillingFileSystem(LocalFileSystem):
    """The local filesystem, killing its process at the configured write."""

    protocol = (PROTOCOL,)
    _lock = threading.Lock()
    _opened = 0

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        text = str(path)
        scheme = f"{cls.protocol[0]}://"
        if text.startswith(scheme):
            text = text[len(scheme) :]
        return super()._strip_protocol(text)

    def _open(self, path: Any, mode: str = "rb", **kwargs: Any) -> Any:
        if "w" in mode:
            _maybe_die(os.path.basename(str(path)))
        return super()._open(path, mode, **kwargs)


def _maybe_die(name: str) -> None:
    prefix, _, count = os.environ.get(KILL_AT, "").rpartition(":")
    if not prefix or not name.startswith(prefix):
        return
    with KillingFileSystem._lock:
        KillingFileSystem._opened += 1
        if KillingFileSystem._opened == int(count):
            os.kill(os.getpid(), signal.SIGKILL)


fsspec.register_implementation(PROTOCOL, KillingFileSystem, clobber=True)


if __name__ == "__main__":
    from flowinst_etl.cli import main

    sys.exit(main())
