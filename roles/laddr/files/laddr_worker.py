"""Run one Laddr agent worker that stops without losing the task it holds (laddr.kafka).

Usage: laddr_worker.py <agent>[-<n>]   (run in the project directory; the bus comes from the environment)

Laddr's own loop (WorkerRunner.start) reads up to five tasks at a time and acknowledges them as it
reads them (Redis: XACK and XDEL; Kafka: offset commit), so SIGTERM kills a worker with tasks that
no one will ever answer. This runner does the same work one task at a time. On SIGTERM or SIGINT it
finishes the read under way and the task in hand, publishes its answer, leaves the bus and exits 0.
Stopping, scaling down and moving to another bus then lose nothing.

The agent is the laddr.Agent named <agent> defined in the project's module agents/<agent>.py; the
module's `if __name__ == "__main__"` part does not run.
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
import time

LOG = logging.getLogger("laddr_kafka.worker")
# How long one read waits for a task: also the longest a stop waits for a read under way.
READ_BLOCK_MS = 1000
CONNECT_ATTEMPTS = 10


def find_agent(agent_name: str):
    """The laddr.Agent called agent_name in agents/<agent_name>.py."""
    # laddr.Agent is a factory function; the instances it makes are of this class.
    from laddr.core import Agent

    module = importlib.import_module(f"agents.{agent_name}")
    found = [value for value in vars(module).values() if isinstance(value, Agent)]
    named = [agent for agent in found if agent.config.name == agent_name]
    if len(named) != 1:
        names = ", ".join(sorted(agent.config.name for agent in found)) or "none"
        raise SystemExit(
            f"agents/{agent_name}.py must define exactly one laddr.Agent named {agent_name!r} (found: {names})"
        )
    return named[0]


async def connect(agent) -> object:
    """Give the agent the bus the environment names and register it, retrying while the bus starts."""
    from laddr import WorkerRunner

    bus = WorkerRunner(agent=agent).factory.create_queue_backend()
    agent.bus = bus
    delay = 1
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        try:
            await agent.connect_bus()
            return bus
        except Exception as error:  # the bus may still be starting; anything else repeats and ends below
            if attempt == CONNECT_ATTEMPTS:
                raise
            LOG.warning("cannot reach the bus (attempt %d of %d): %s", attempt, CONNECT_ATTEMPTS, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)
    return bus


async def answer(agent, bus, message: dict) -> None:
    """Handle one task and publish its answer, or the error, as Laddr's own loop does."""
    task_id = message.get("task_id")
    started = time.monotonic()
    LOG.info("task %s taken", task_id)
    try:
        result = await agent.handle(message.get("payload", {}))
    except Exception as error:
        LOG.error("task %s failed: %s", task_id, error)
        result = {"status": "error", "error": str(error)}
    if task_id:
        await bus.publish_response(task_id, result)
    LOG.info("task %s answered in %.3f s", task_id, time.monotonic() - started)


async def leave(bus) -> None:
    """Close the bus connections, so that a Kafka group hands this worker's partitions on at once."""
    for consumer in list(getattr(bus, "_consumers", {}).values()):
        await consumer.stop()
    reader = getattr(bus, "_response_reader", None)  # the collection's patch for 0.9.6, once the agent delegated
    if reader is not None:
        await reader.stop()
    producer = getattr(bus, "_producer", None)
    if producer is not None:
        await producer.stop()
    client = getattr(bus, "_client", None)
    if client is not None:
        await client.aclose()


async def serve(agent_name: str) -> int:
    agent = find_agent(agent_name)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)

    bus = await connect(agent)
    LOG.info("worker %s serving on the %s bus", agent_name, os.environ.get("QUEUE_BACKEND", "redis"))
    answered = 0
    while not stopping.is_set():
        # A read is never cancelled: a task the bus hands over is always answered.
        read_started = loop.time()
        messages = await bus.consume_tasks(agent_name, block_ms=READ_BLOCK_MS, count=1)
        for message in messages:
            await answer(agent, bus, message)
            answered += 1
        if not messages and loop.time() - read_started < READ_BLOCK_MS / 2000:
            # The bus returns nothing at once when its read fails (Redis restarting, Kafka away):
            # wait a read's time instead of spinning on a full core until it is back.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), READ_BLOCK_MS / 1000)
    LOG.info("worker %s stopping: nothing in hand, %d tasks answered", agent_name, answered)
    await leave(bus)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1]:
        print("usage: laddr_worker.py <agent>[-<n>]", file=sys.stderr)
        return 2
    agent_name = argv[1].rsplit("-", 1)[0] if argv[1].rsplit("-", 1)[-1].isdigit() else argv[1]
    logging.basicConfig(
        stream=sys.stdout,
        level=os.environ.get("LADDR_LOG_LEVEL", "INFO").upper(),
        format="%(levelname)s %(name)s: %(message)s",
    )
    sys.path.insert(0, os.getcwd())
    return asyncio.run(serve(agent_name))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
