"""From EnOS flow-instance records to the four typed output tables.

``flatten`` is the entry point; ``records`` and ``graphs`` read the instance rows and the
embedded graphs, ``values`` coerces single values, and ``schema`` pins every column.
"""
