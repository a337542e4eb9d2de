"""API records -> typed tables: instances, their tasks, relations and upstream flows.

Records come from a gateway whose documentation and samples disagree on key spelling and value
types, so nothing about a record's shape is trusted: a value that does not fit its column becomes
null and the reason is kept in ``record_error`` (record fields, read by
:mod:`flowinst_etl.tables.records`) or ``graph_error`` (the embedded graph, read by
:mod:`flowinst_etl.tables.graphs`). Flattening never raises on a record and never drops an instance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import cached_property

import pandas as pd
import pyarrow as pa

from flowinst_etl.exceptions import ConfigError
from flowinst_etl.model import FoundInstance
from flowinst_etl.tables.graphs import child_tables, read_graphs
from flowinst_etl.tables.records import instances_table, read_records
from flowinst_etl.tables.schema import TABLES


@dataclass(frozen=True)
class FlowTables:
    """The four output tables of one batch of records, typed as in :mod:`.schema`.

    Built as Arrow tables with exactly the pinned schemas (what is written); each is also
    given as a DataFrame with Arrow-backed columns, made on first use.

    Attributes:
        arrow: the tables keyed by output table name, in :data:`~.schema.TABLES` order.
        graph_errors: instances whose graph was missing or unreadable (their ``graph_error``).
    """

    arrow: dict[str, pa.Table]
    graph_errors: int

    @cached_property
    def instances(self) -> pd.DataFrame:
        """One row per instance (``flow_instances``)."""
        return _frame(self.arrow["flow_instances"])

    @cached_property
    def tasks(self) -> pd.DataFrame:
        """One row per task node of a readable graph (``flow_instance_tasks``)."""
        return _frame(self.arrow["flow_instance_tasks"])

    @cached_property
    def relations(self) -> pd.DataFrame:
        """One row per dependency edge (``flow_instance_relations``)."""
        return _frame(self.arrow["flow_instance_relations"])

    @cached_property
    def upstream_flows(self) -> pd.DataFrame:
        """One row per upstream flow node (``flow_instance_upstream_flows``)."""
        return _frame(self.arrow["flow_instance_upstream_flows"])

    def as_dict(self) -> dict[str, pd.DataFrame]:
        """The frames keyed by output table name, in :data:`~.schema.TABLES` order."""
        frames = (self.instances, self.tasks, self.relations, self.upstream_flows)
        return dict(zip(TABLES, frames, strict=True))

    def to_arrow(self) -> dict[str, pa.Table]:
        """The tables as Arrow tables with exactly the pinned schemas, keyed by table name."""
        return dict(self.arrow)


def _frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def flatten_instances(
    found: Iterable[FoundInstance], server_tz: tzinfo, extracted_at: datetime
) -> FlowTables:
    """Flatten flow-instance records and their embedded graphs into the four output tables.

    Never raises on a record, whatever its shape: values that do not fit their column become null
    with the reason in ``record_error``; a graph that is missing or unreadable keeps its raw text,
    sets ``graph_error`` and contributes no tasks, relations or upstream flows. Record fields
    without a column are kept as JSON in ``extra``.

    Args:
        found: the records, each with the scheduling type of the query that found it.
        server_tz: the gateway's timezone (see ``windows.parse_server_timezone``); record time
            strings are read as local times there.
        extracted_at: when the records were fetched; must be timezone-aware.

    Returns:
        The tables, as Arrow tables and as Arrow-backed DataFrames, with exactly the pinned
        schemas.

    Raises:
        ConfigError: ``extracted_at`` is naive.
    """
    if extracted_at.utcoffset() is None:
        raise ConfigError("extracted_at must be timezone-aware, e.g. datetime.now(timezone.utc)")
    fields = read_records(found, server_tz)
    graph_values, children = read_graphs(fields.graph_array, fields.graph_texts)
    instances = instances_table(fields, graph_values, extracted_at)
    tables = [instances, *child_tables(children, instances)]
    graph_errors = len(instances) - instances.column("graph_error").null_count
    return FlowTables(dict(zip(TABLES, tables, strict=True)), graph_errors)
