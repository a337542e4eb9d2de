"""The Dagster code location of flowinst-etl: thin glue over the ``flowinst_etl`` library."""
