"""Run one Laddr agent worker that stops without losing the task it holds (laddr.kafka).

Usage: laddr_worker.py <agent>[-<n>]   (run in the project directory; the bus comes from the environment)

Laddr's own loop (WorkerRunner.start) reads up to five tasks at a time and acknowledges them as it
reads them (Redis: XACK and XDEL; Kafka: offset commit), so SIGTERM kills a worker with tasks that
no one will ever answer. This runner does the same work one task at a time. On SIGTERM or SIGINT it
finishes the read under way and the task in hand, publishes its answer, leaves the bus and exits 0.
Stopping, scaling down and moving to another bus then lose nothing.

Two more ways Laddr 0.9.6 drops a task, both seen when Redis restarts under load, are closed here:
- An answer that cannot be published (the bus away for longer than its client's own retries) made
  publish_response raise and the worker exit with the task unanswered. The answer is retried until it
  is published (for ANSWER_RETRY_S at most).
- On Redis, a read whose reply is lost with its connection (Redis served XREADGROUP, then shut down
  before the reply left, and redis-py retried the read with ">") leaves the task in this consumer's
  pending list, where no ">" read finds it again; so does an XACK that failed after the read, which
  makes consume_tasks return nothing. Every PENDING_CHECK_S the runner reads its own pending list
  (XREADGROUP with id 0) and answers what it finds there.

The agent is the laddr.Agent named <agent> defined in the project's module agents/<agent>.py; the
module's `if __name__ == "__main__"` part does not run.
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import signal
import sys
import time

LOG = logging.getLogger("laddr_kafka.worker")
# How long one read waits for a task: also the longest a stop waits for a read under way.
READ_BLOCK_MS = 1000
CONNECT_ATTEMPTS = 10
# How often a Redis worker reads its own pending list, and how long an answer is retried.
PENDING_CHECK_S = 5
ANSWER_RETRY_S = 600


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
    if task_id and not await publish(bus, task_id, result):
        return
    LOG.info("task %s answered in %.3f s", task_id, time.monotonic() - started)


async def publish(bus, task_id: str, result: dict) -> bool:
    """Publish an answer, through a bus that is away for a while (a restart, a lost connection)."""
    deadline = time.monotonic() + ANSWER_RETRY_S
    delay = 0.5
    while True:
        try:
            await bus.publish_response(task_id, result)
            return True
        except Exception as error:  # the client's own retries are spent: the bus is away
            if time.monotonic() >= deadline:
                LOG.error("task %s: answer not published in %d s, given up: %s", task_id, ANSWER_RETRY_S, error)
                return False
            LOG.warning("task %s: answer not published yet, retrying in %.1f s: %s", task_id, delay, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)


def redis_names(agent_name: str) -> tuple[str, str]:
    """The stream and consumer group of an agent's tasks, as Laddr 0.9.6's RedisBus names them."""
    return f"laddr:tasks:{agent_name}", f"{agent_name}_workers"


async def redis_pending(bus, agent_name: str) -> list[tuple[str, dict | None]]:
    """(entry id, task) of every entry that Redis handed to this worker and that it never acknowledged;
    the task is None where the entry was deleted from the stream."""
    stream, group = redis_names(agent_name)
    client = await bus._get_client()
    found = await client.xreadgroup(groupname=group, consumername=bus._consumer_id, streams={stream: "0"}, count=10)
    entries = []
    for _, messages in found or []:
        for entry_id, fields in messages:
            entries.append((entry_id, json.loads(fields["data"]) if fields and "data" in fields else None))
    return entries


async def answer_pending(agent, bus, agent_name: str) -> int:
    """Answer the tasks left in this worker's pending list by a read or an acknowledgement that failed;
    acknowledge and delete each after its answer, as Laddr does after a read."""
    try:
        entries = await redis_pending(bus, agent_name)
    except Exception as error:  # Redis away: the next check finds them
        LOG.debug("pending list not read: %s", error)
        return 0
    stream, group = redis_names(agent_name)
    for entry_id, message in entries:
        if message is not None:
            LOG.warning("task %s was handed to this worker by a read it never saw complete: answering it now",
                        message.get("task_id"))
            await answer(agent, bus, message)
        client = await bus._get_client()
        try:
            await client.xack(stream, group, entry_id)
            await client.xdel(stream, entry_id)
        except Exception as error:  # acknowledged at the next check; answered once more at worst
            LOG.warning("entry %s of %s not acknowledged yet: %s", entry_id, stream, error)
    return len(entries)


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
    on_redis = type(bus).__name__ == "RedisBus"
    next_pending_check = loop.time()
    while not stopping.is_set():
        if on_redis and loop.time() >= next_pending_check:
            answered += await answer_pending(agent, bus, agent_name)
            next_pending_check = loop.time() + PENDING_CHECK_S
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
    if on_redis:
        # This worker's consumer name ends with it: what its pending list holds is answered now or never.
        answered += await answer_pending(agent, bus, agent_name)
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
