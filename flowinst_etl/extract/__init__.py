"""Exact extraction: every flow instance of a trigger window, each exactly once.

A window is read per scheduling type by a cursor on trigger time (``walker``): always the first
page of ``[cursor, end)``, sorted by trigger time. A tied second that fills a page is read whole in
parts by flow id (``ties``). Nothing depends on ``count``, on pages after the first, on the order
of ties, or on rows staying put behind the cursor. What the extraction still believes about the
gateway, and where each belief is checked, is listed in docs/extraction.md with the test that fails
when the check is removed; ``checks`` holds every refusal. A belief that does not hold fails the
window with one line; the run's other windows go on.

Modules: ``conventions`` (learnt once per run), ``answers`` (one request and the checks every
answer passes), ``walker`` (the loop), ``ties`` (tied seconds), ``checks`` (the refusals),
``feed`` (the walks run by a pool of workers, split for idle ones), ``extraction`` (a window's
records assembled), ``extractor`` (the entry point).
"""

from __future__ import annotations

from flowinst_etl.extract.extraction import Extraction, Reconciliation
from flowinst_etl.extract.extractor import Extractor, minimum_requests

__all__ = ["Extraction", "Extractor", "Reconciliation", "minimum_requests"]
