"""Engines: what carries the roles' bytes (:mod:`medhe.fl.client`, :mod:`medhe.fl.server`) between the parties.

``inprocess``: every party in one Python process, messages passed in memory and counted in the byte ledger.
"""
