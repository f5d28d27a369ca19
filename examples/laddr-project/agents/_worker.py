"""What every worker module shares: journal-friendly logging and the worker loop."""
from __future__ import annotations

import asyncio
import logging
import os
import sys

from laddr import WorkerRunner


def run(agent) -> None:
    """Run one worker of `agent` until systemd stops it."""
    # systemd's journal timestamps each line and records the unit, so a line carries the rest.
    logging.basicConfig(
        stream=sys.stdout,
        level=os.environ.get("LADDR_LOG_LEVEL", "INFO").upper(),
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger(__name__).info(
        "worker %s starting on the %s bus", agent.config.name, os.environ.get("QUEUE_BACKEND", "redis")
    )
    asyncio.run(WorkerRunner(agent=agent).start())
