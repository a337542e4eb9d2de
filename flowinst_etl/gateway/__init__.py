"""Talking to the EnOS API gateway: token auth, request signing, transport and the client.

Knows nothing of tables; :mod:`flowinst_etl.extract` pages through it and
:mod:`flowinst_etl.tables` turns what it returns into typed tables.
"""
