"""The fault suite: every fault, on uvicorn and hypercorn, as tests and as a table.

``python -m tests.faults`` runs every scenario and prints fault, server, expected, observed and
whether it held; the pytest files here assert the same scenarios, defined once in ``table.py``
with their budgets, plus the property tests and the connect/disconnect soak.
"""
