"""The fault suite: every fault, on uvicorn and hypercorn, as tests and as a table.

``python -m tests.faults`` runs every scenario and prints fault, server, expected, observed and
whether it held; the pytest files here assert the same scenarios, plus the property tests,
the graceful shutdown of real server processes and the connect/disconnect soak.
"""
