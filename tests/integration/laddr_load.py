"""Steady load on a Laddr API, checked on the buses themselves: is every accepted task answered, once, right?

Runs on a lab host with Laddr's venv (aiohttp, redis, aiokafka). It submits finish tasks round-robin over
the agents through the API (GET /api/agents/<agent>/chat, wait false) and retries a refused submission
every 0.2 s until the API takes it. Independently of the API it watches the answers on both buses from
the start: Redis pub/sub (laddr:response:*) and Kafka's laddr.responses from where this run's answers
start (not from the topic's beginning); either bus may be missing or restart meanwhile. When the stop file appears (or on SIGTERM) it stops submitting,
waits up to --settle s for the rest, looking up what is still missing in Redis's laddr:response:<task_id>
keys every few seconds meanwhile and once more at the end, and writes the result as JSON (atomically) with a
one-line summary on stdout. Exit code 0 whatever it found: the result file says what happened.

With --waited-rate it also makes waited calls (wait true) beside that load, one at a time, as a user of the
API would, and records each one's outcome: answered with what it sent, a timeout, a wrong answer, refused (an
HTTP error: the API did not take the task, or failed while waiting) or failed (no HTTP answer at all). Their
tasks count among the accepted ones, so the buses' check covers them too.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import signal
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone

import aiohttp
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

RESPONSES_TOPIC = "laddr.responses"
RETRY_S = 0.2
LISTED = 50  # how many lost, wrong and duplicated tasks the result names


def wall(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="milliseconds")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--api", required=True, help="Laddr API base URL, e.g. http://10.77.0.13:8000")
    parser.add_argument("--api-key", help="sent as X-API-Key")
    parser.add_argument("--agents", required=True, help="comma-separated agent names")
    parser.add_argument("--rate", type=float, default=5,
                        help="submissions per second, all agents together (0: as fast as the API takes them)")
    parser.add_argument("--concurrency", type=int, default=1, help="submissions under way at once")
    parser.add_argument("--count", type=int, default=0, help="stop after this many accepted tasks (0: no limit)")
    parser.add_argument("--redis-url", help="watch Redis pub/sub and keys (redis://...)")
    parser.add_argument("--kafka-bootstrap", help="watch laddr.responses on Kafka (host:port,...)")
    parser.add_argument("--out", required=True, help="result file (JSON)")
    parser.add_argument("--stop-file", required=True, help="stop submitting when this file exists")
    parser.add_argument("--settle", type=float, default=60, help="seconds to wait for answers after the stop")
    parser.add_argument("--waited-rate", type=float, default=0,
                        help="waited calls (wait true) per second beside the load, one at a time (0: none)")
    parser.add_argument("--wait-timeout", type=int, default=60, help="the timeout each waited call asks the API for")
    parser.add_argument("--progress", help="file rewritten every second while running: tasks answered so far, in all "
                                           "and per agent, and waited calls by outcome (JSON), for a caller that waits "
                                           "for them")
    args = parser.parse_args()
    if (not [name for name in args.agents.split(",") if name] or args.rate < 0 or args.concurrency < 1 or args.count < 0
            or args.waited_rate < 0 or args.wait_timeout < 1):
        parser.error("--agents needs at least one name, --rate, --count and --waited-rate 0 or more, "
                     "--concurrency and --wait-timeout 1 or more")
    return args


class Load:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.agents = [name for name in args.agents.split(",") if name]
        self.accepted: dict[str, dict] = {}  # task_id -> token, agent, accepted_at
        self.seen: dict[str, list[tuple[str, float, object]]] = defaultdict(list)  # task_id -> (bus, time, result)
        self.from_keys: dict[str, object] = {}
        self.refusals: list[dict] = []
        self.unattributed = 0
        self.kafka_positions: dict[TopicPartition, int] = {}
        self.started = time.time()
        self.stopped: float | None = None
        self.next_slot = time.monotonic()
        self.stopping = asyncio.Event()
        self.finished = asyncio.Event()
        self.redis_listening = asyncio.Event()
        self.redis_subscriptions = 0
        self.kafka_found: float | None = None
        # Waited calls: (outcome, task_id or None, started, seconds, detail); outcome answered, timeout, wrong,
        # refused or failed.
        self.waited: list[tuple[str, str | None, float, float, str]] = []

    def observe(self, bus: str, task_id: str | None, response: object) -> None:
        if not task_id:
            self.unattributed += 1
            return
        result = response.get("result") if isinstance(response, dict) else None
        self.seen[task_id].append((bus, time.time(), result))

    # --- the buses ---------------------------------------------------------------------------------

    async def watch_redis(self) -> None:
        while not self.finished.is_set():
            client = aioredis.from_url(self.args.redis_url, socket_connect_timeout=5, socket_keepalive=True,
                                       health_check_interval=5, decode_responses=True)
            pubsub = client.pubsub()
            try:
                await pubsub.psubscribe("laddr:response:*")
                self.redis_subscriptions += 1
                self.redis_listening.set()
                if self.redis_subscriptions > 1:
                    # Subscribed again after Redis was away: answers published meanwhile were not heard, and their
                    # keys last 5 minutes only, so they are read now rather than at the end.
                    asyncio.get_running_loop().create_task(self.read_missed_keys())
                while not self.finished.is_set():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message and message["type"] == "pmessage":
                        self.observe("redis", message["channel"].split(":", 2)[2], json.loads(message["data"]))
            except Exception:  # Redis restarting or away: subscribe again; answers missed meanwhile are in its keys
                pass
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()
            await self.pause(1)

    async def watch_kafka(self) -> None:
        while not self.finished.is_set():
            # No group: every partition, from the beginning, and new partitions within 5 s.
            consumer = AIOKafkaConsumer(bootstrap_servers=self.args.kafka_bootstrap, group_id=None,
                                        auto_offset_reset="earliest", enable_auto_commit=False,
                                        metadata_max_age_ms=5000, request_timeout_ms=10000)
            try:
                await consumer.start()
                # Subscribed only once it exists: asking for a missing topic by name lets a broker create it.
                if RESPONSES_TOPIC in await consumer.topics():
                    consumer.subscribe([RESPONSES_TOPIC])
                    await self.read_kafka(consumer)
            except Exception:  # no broker yet (before the migration) or a broken connection: again, quietly
                pass
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
            await self.pause(2)

    async def read_kafka(self, consumer: AIOKafkaConsumer) -> None:
        # Answers older than this run are not its own: they are skipped, not counted as unknown.
        since_ms = int((self.started - 5) * 1000)
        placed: set[TopicPartition] = set()
        while not self.finished.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            if consumer.assignment():
                self.kafka_found = self.kafka_found or time.time()
            new = consumer.assignment() - placed
            if new:
                # Where this run's answers start (or where the last consumer stopped), not the topic's
                # beginning: a topic that keeps a million answers is not read through at every start.
                # The end offsets first: no answer written meanwhile falls before its partition's start.
                ends = await consumer.end_offsets(list(new))
                starts = await consumer.offsets_for_times({tp: since_ms for tp in new if tp not in self.kafka_positions})
                for tp in new:
                    found = starts.get(tp)
                    start = self.kafka_positions.get(tp, min(found.offset, ends[tp]) if found else ends[tp])
                    self.kafka_positions[tp] = start
                    consumer.seek(tp, start)
                placed |= new
                # What this poll fetched for them came from before the seek: it comes again.
                batches = {tp: records for tp, records in batches.items() if tp not in new}
            for partition, records in batches.items():
                for record in records:
                    # A new consumer reads from the beginning again: what was read before is not counted twice.
                    if record.offset < self.kafka_positions.get(partition, 0):
                        continue
                    self.kafka_positions[partition] = record.offset + 1
                    if record.timestamp < since_ms:
                        continue
                    try:
                        response = json.loads(record.value)
                    except ValueError:
                        self.unattributed += 1
                        continue
                    task_id = response.get("task_id") if isinstance(response, dict) else None
                    self.observe("kafka", task_id, response)

    async def read_missed_keys(self) -> None:
        await self.pause(2)  # answers under way when Redis came back land in their keys meanwhile
        recent = time.time() - 290
        await self.read_keys([task_id for task_id, task in self.accepted.items()
                              if task_id not in self.seen and task_id not in self.from_keys and task["accepted_at"] >= recent])

    def unaccounted(self) -> list[str]:
        """Accepted tasks whose answer was neither seen on a bus nor found in Redis's keys."""
        return [task_id for task_id in self.accepted if task_id not in self.seen and task_id not in self.from_keys]

    async def read_keys(self, task_ids: list[str]) -> None:
        """Answers that pub/sub missed (Redis restarting) are still in laddr:response:<task_id> for 5 minutes."""
        client = aioredis.from_url(self.args.redis_url, socket_connect_timeout=5, decode_responses=True)
        try:
            for task_id in task_ids:
                stored = await client.get(f"laddr:response:{task_id}")
                if stored:
                    response = json.loads(stored)
                    self.from_keys[task_id] = response.get("result") if isinstance(response, dict) else None
        except (OSError, aioredis.RedisError, ValueError):
            pass
        finally:
            await client.aclose()

    # --- the load ----------------------------------------------------------------------------------

    async def submit_all(self) -> None:
        headers = {"X-API-Key": self.args.api_key} if self.args.api_key else {}
        timeout = aiohttp.ClientTimeout(total=10)
        numbers = itertools.count(1)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout,
                                         connector=aiohttp.TCPConnector(limit=self.args.concurrency)) as session:
            await asyncio.gather(*(self.submitter(session, numbers) for _ in range(self.args.concurrency)))

    async def submitter(self, session: aiohttp.ClientSession, numbers: itertools.count) -> None:
        """One of --concurrency loops sharing the numbering and the rate."""
        for seq in numbers:
            if self.stopping.is_set() or (self.args.count and seq > self.args.count):
                return
            if self.args.rate:
                # Each submission takes the next free slot of the rate, whichever loop sends it.
                self.next_slot = max(self.next_slot + 1 / self.args.rate, time.monotonic())
                await self.pause(self.next_slot - time.monotonic(), self.stopping)
            if not await self.submit(session, seq, self.agents[(seq - 1) % len(self.agents)]):
                return

    async def submit(self, session: aiohttp.ClientSession, seq: int, agent: str) -> bool:
        """Submits until the API accepts; False if the load stopped first."""
        token = f"load-{seq}-{agent}"
        body = {"message": json.dumps({"type": "finish", "answer": token}), "wait": False}
        url = f"{self.args.api.rstrip('/')}/api/agents/{agent}/chat"
        refusal = None
        while not self.stopping.is_set():
            task_id = None
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError, OSError):
                async with session.get(url, json=body) as response:  # Laddr's chat is a GET with a body
                    if response.status == 200:
                        task_id = (await response.json()).get("task_id")
            now = time.time()
            if task_id:
                self.accepted[task_id] = {"token": token, "agent": agent, "accepted_at": now}
                if refusal:
                    refusal["end"] = now
                return True
            if refusal is None:
                refusal = {"start": now, "end": now, "attempts": 0}
                self.refusals.append(refusal)
            refusal["attempts"] += 1
            refusal["end"] = now
            await self.pause(RETRY_S, self.stopping)
        return False

    async def waited_calls(self, session: aiohttp.ClientSession) -> None:
        """Waited calls at --waited-rate, one at a time, round-robin over the agents, until the stop."""
        next_call = time.monotonic()
        for seq in itertools.count(1):
            next_call = max(next_call + 1 / self.args.waited_rate, time.monotonic())
            await self.pause(next_call - time.monotonic(), self.stopping)
            if self.stopping.is_set():
                return
            agent = self.agents[(seq - 1) % len(self.agents)]
            token = f"waited-{seq}-{agent}"
            body = {"message": json.dumps({"type": "finish", "answer": token}), "wait": True,
                    "timeout": self.args.wait_timeout}
            started = time.time()
            outcome, task_id, detail = "failed", None, ""
            try:
                async with session.get(f"{self.args.api.rstrip('/')}/api/agents/{agent}/chat", json=body,
                                       timeout=aiohttp.ClientTimeout(total=self.args.wait_timeout + 30)) as response:
                    reply = await response.json(content_type=None) if response.status == 200 else {}
                    detail = f"HTTP {response.status}"
                    if response.status != 200:
                        outcome, detail = "refused", f"{detail}: {(await response.text())[:200]}"
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, OSError) as error:
                reply, detail = {}, repr(error)
            task_id = reply.get("task_id") if isinstance(reply, dict) else None
            if task_id:
                self.accepted[task_id] = {"token": token, "agent": agent, "accepted_at": started}
                answer = (reply.get("response") or {}).get("result") if reply.get("status") == "completed" else None
                outcome = ("timeout" if reply.get("status") == "timeout"
                           else "answered" if answer == token else "wrong")
                detail = reply.get("status", "") if outcome != "wrong" else f"answer {answer!r}"
            self.waited.append((outcome, task_id, started, time.time() - started, detail))

    async def pause(self, seconds: float, event: asyncio.Event | None = None) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for((event or self.finished).wait(), max(seconds, 0))

    async def wait_while_loading(self) -> None:
        headers = {"X-API-Key": self.args.api_key} if self.args.api_key else {}
        async with aiohttp.ClientSession(headers=headers) as session:
            await self.waited_calls(session)

    def write_progress(self) -> None:
        answered = [self.accepted[task_id]["agent"] for task_id in self.seen if task_id in self.accepted]
        write_atomically(self.args.progress, {"answered": len(answered), "by_agent": dict(Counter(answered)),
                                              "waited": dict(Counter(call[0] for call in self.waited)), "at": time.time()})

    async def report_progress(self) -> None:
        while not self.finished.is_set():
            self.write_progress()
            await self.pause(1)
        self.write_progress()

    async def wait_for_stop(self) -> None:
        while not self.stopping.is_set():
            if os.path.exists(self.args.stop_file):
                self.stopping.set()
            await self.pause(0.2, self.stopping)

    async def run(self) -> dict:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        watchers = []
        if self.args.redis_url:
            watchers.append(asyncio.create_task(self.watch_redis()))
            # A moment for the subscription, so that the first answers are seen; Redis may be away.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.redis_listening.wait(), 5)
        if self.args.kafka_bootstrap:
            watchers.append(asyncio.create_task(self.watch_kafka()))
        self.started = time.time()
        stop_watch = asyncio.create_task(self.wait_for_stop())
        progress = asyncio.create_task(self.report_progress()) if self.args.progress else None
        waited = asyncio.create_task(self.wait_while_loading()) if self.args.waited_rate else None
        await self.submit_all()
        if waited:
            self.stopping.set()  # a --count run ends its waited calls with its load
            await waited
        self.stopped = time.time()
        stop_watch.cancel()
        # Answers the watchers did not see (given while a bus restarted, or on the bus the load was not watching then)
        # are looked up in Redis's keys every few seconds of the wait, not only at its end: the wait ends as soon as
        # every accepted task is accounted for.
        deadline = time.monotonic() + self.args.settle
        next_look = time.monotonic() + 3
        while time.monotonic() < deadline and self.unaccounted():
            if self.args.redis_url and time.monotonic() >= next_look:
                await self.read_keys(self.unaccounted())
                next_look = time.monotonic() + 5
            else:
                await asyncio.sleep(0.5)
        missing = self.unaccounted()
        if missing and self.args.redis_url:
            await self.read_keys(missing)
        self.finished.set()
        await asyncio.gather(*watchers, *([progress] if progress else []), return_exceptions=True)
        return self.result()

    # --- the result --------------------------------------------------------------------------------

    def result(self) -> dict:
        answers = {task_id: [seen[2] for seen in self.seen.get(task_id, [])] for task_id in self.accepted}
        for task_id, answer in self.from_keys.items():
            answers[task_id] = [answer]
        lost = [dict(task, task_id=task_id, accepted_at=wall(task["accepted_at"]))
                for task_id, task in self.accepted.items() if not answers[task_id]]
        wrong = [{"task_id": task_id, "token": self.accepted[task_id]["token"], "answers": given}
                 for task_id, given in answers.items() if any(answer != self.accepted[task_id]["token"] for answer in given)]
        duplicates = {task_id: len(given) for task_id, given in answers.items() if len(given) > 1}
        by_bus = {"redis": 0, "kafka": 0}
        for task_id, seen in self.seen.items():
            for bus, _, _ in seen:
                by_bus[bus] += 1
        first_answers = sorted(min(moment for _, moment, _ in self.seen[task_id])
                               for task_id in self.accepted if task_id in self.seen)
        # Stretches without an answer while the load ran, its start and its stop included as bounds.
        bounds = [self.started, *[t for t in first_answers if self.started <= t <= self.stopped], self.stopped]
        gap_start, gap_end = max(zip(bounds, bounds[1:]), key=lambda pair: pair[1] - pair[0])
        # From the API's answer to the submission to the task's answer on the bus (an answer seen before
        # the API's reply reached this client counts as 0).
        latencies = sorted(max(0.0, min(moment for _, moment, _ in self.seen[task_id]) - task["accepted_at"])
                           for task_id, task in self.accepted.items() if task_id in self.seen)
        first_accepted = min((task["accepted_at"] for task in self.accepted.values()), default=None)
        longest_refusal = max(self.refusals, key=lambda stretch: stretch["end"] - stretch["start"], default=None)
        return {
            "started": wall(self.started), "stopped": wall(self.stopped),
            "api": self.args.api, "agents": self.agents, "rate": self.args.rate,
            "accepted": len(self.accepted),
            "answered": sum(1 for given in answers.values() if given),
            "lost": {"count": len(lost), "tasks": lost[:LISTED]},
            "wrong": {"count": len(wrong), "tasks": wrong[:LISTED]},
            "duplicates": {"count": len(duplicates), "tasks": dict(list(duplicates.items())[:LISTED])},
            "answers_by_bus": by_bus,
            "answered_from_redis_keys": len(self.from_keys),
            "redis_subscriptions": self.redis_subscriptions,
            "kafka_topic_found": wall(self.kafka_found),
            "unknown_answers": self.unattributed + sum(
                len(seen) for task_id, seen in self.seen.items() if task_id not in self.accepted),
            "refused_attempts": sum(stretch["attempts"] for stretch in self.refusals),
            "refusals": [{"start": wall(stretch["start"]), "end": wall(stretch["end"]),
                          "attempts": stretch["attempts"], "seconds": round(stretch["end"] - stretch["start"], 3)}
                         for stretch in self.refusals[:LISTED]],
            "longest_refusal_s": round(longest_refusal["end"] - longest_refusal["start"], 3) if longest_refusal else 0,
            "longest_gap_without_answer_s": round(gap_end - gap_start, 3),
            "longest_gap": {"start": wall(gap_start), "end": wall(gap_end)},
            "concurrency": self.args.concurrency,
            "latency_s": {name: round(percentile(latencies, share), 4)
                          for name, share in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))} if latencies else None,
            # Answered tasks per second from the first acceptance to the last first answer.
            "throughput_per_s": round(len(first_answers) / (first_answers[-1] - first_accepted), 2)
            if first_answers and first_answers[-1] > first_accepted else None,
            # When each accepted task was first answered (Unix seconds): gaps within any window.
            "answer_times": [round(moment, 3) for moment in first_answers],
            "waited": self.waited_result(),
        }

    def waited_result(self) -> dict:
        seconds = sorted(took for outcome, _, _, took, _ in self.waited if outcome == "answered")
        result = {"calls": len(self.waited), "wait_timeout_s": self.args.wait_timeout,
                  "latency_s": {name: round(percentile(seconds, share), 4)
                                for name, share in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))} if seconds else None}
        for kind in ("answered", "timeout", "wrong", "refused", "failed"):
            calls = [{"task_id": task_id, "agent": self.accepted.get(task_id, {}).get("agent"), "started": wall(started),
                      "seconds": round(took, 3), "detail": detail}
                     for outcome, task_id, started, took, detail in self.waited if outcome == kind]
            result[kind] = {"count": len(calls), "calls": calls[:LISTED]} if kind != "answered" else len(calls)
        return result


def percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of an ordered list."""
    return ordered[max(0, min(len(ordered), math.ceil(share * len(ordered))) - 1)]


def write_atomically(path: str, result: dict) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as out:
        json.dump(result, out, indent=2)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def main() -> int:
    args = parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its reconnection noise while Kafka is away
    result = asyncio.run(Load(args).run())
    write_atomically(args.out, result)
    print(f"laddr_load: accepted {result['accepted']} answered {result['answered']} lost {result['lost']['count']} "
          f"wrong {result['wrong']['count']} duplicates {result['duplicates']['count']} "
          f"refused {result['refused_attempts']} (longest {result['longest_refusal_s']} s) "
          f"longest gap {result['longest_gap_without_answer_s']} s unknown {result['unknown_answers']} "
          f"by bus {result['answers_by_bus']} waited {result['waited']['calls']} "
          f"(timeouts {result['waited']['timeout']['count']}, refused {result['waited']['refused']['count']}, "
          f"failed {result['waited']['failed']['count']}) "
          f"-> {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
