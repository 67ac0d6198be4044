"""``python -m tests.faults``: run the fault table on uvicorn and hypercorn, and print it.

The table is :mod:`tests.faults.table`, which the pytest files here run too: each group of
scenarios at once, the groups one after another. Exits 1 if any scenario did not hold, and
lists what did not. ``--server`` narrows it to one server; ``--only`` to scenarios whose name
contains a word.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import time

from tests.faults.observe import Outcome
from tests.faults.table import GROUPS, SERVERS, run_scenarios, scenarios


def table(outcomes: list[Outcome]) -> str:
    rows = [("fault", "server", "expected", "observed", "held")]
    rows += [(o.scenario, o.server, o.expected, o.observed, "yes" if o.held else "NO") for o in outcomes]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    parser.add_argument("--server", choices=SERVERS, action="append", help="only this server")
    parser.add_argument("--only", default="", help="only scenarios whose name contains this")
    args = parser.parse_args(argv)
    servers = tuple(args.server or SERVERS)
    logging.basicConfig(level=logging.CRITICAL)  # the table says it all; the servers' logs would not
    gc.collect()  # what the imports made lives for the whole run, as under pytest (conftest.py)
    gc.freeze()
    started = time.monotonic()
    outcomes: list[Outcome] = []
    for group in GROUPS:
        chosen = [s for s in scenarios(group, servers) if args.only in s.fault]
        if chosen:
            outcomes += asyncio.run(run_scenarios(chosen))
    print(table(outcomes))
    failed = [o for o in outcomes if not o.held]
    print(f"\n{len(outcomes) - len(failed)}/{len(outcomes)} held in {time.monotonic() - started:.1f} s")
    for outcome in failed:
        print(f"\n{outcome.scenario} on {outcome.server} did not hold:", *outcome.failures, sep="\n  ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
