# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The API's round trip for every agent at once, in one run of a Python of the API host (tasks/probe.yml).

Run as `python3 -c <this file's text>` with a JSON object on stdin (the API key stays out of argv and logs):
  url            the API's base URL
  headers        request headers (the API key, when one is set)
  agents         the agents to send a task to
  message        the task sent to each
  expect         text the answer's result must hold ("" for any completed answer)
  timeout        seconds one call waits for its answer (the API's own wait)
  health_timeout seconds to wait for /api/health, and for each agent's answer all retries together
First /api/health must answer 200; then one task goes to every agent at once, each sent again (after a second)
until its answer is completed and holds `expect`, or health_timeout is spent. Prints one JSON object:
  health   HTTP status of /api/health (0 if it never answered)
  agents   {agent: {"answered": bool, "attempts": n, "last": what the last call got}}
Standard library only. Exit status 0: the task that runs it judges the result.
"""
import json
import sys
import threading
import time
import urllib.error
import urllib.request


def call(url, headers, body, timeout):
    """(HTTP status, JSON body or None, error text) of one request."""
    request = urllib.request.Request(url, data=body, method="GET", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.load(response), ""
    except urllib.error.HTTPError as error:
        return error.code, None, error.read(300).decode(errors="replace")
    except (OSError, ValueError) as error:
        return 0, None, str(error)


def health(spec, deadline):
    while True:
        status, _, _ = call(spec["url"] + "/api/health", {}, None, 5)
        if status == 200 or time.monotonic() >= deadline:
            return status
        time.sleep(2)


def round_trip(spec, agent, deadline, out):
    headers = dict(spec.get("headers") or {}, **{"Content-Type": "application/json"})
    body = json.dumps({"message": spec["message"], "wait": True, "timeout": spec["timeout"]}).encode()
    attempts = 0
    while True:
        attempts += 1
        status, answer, error = call(f"{spec['url']}/api/agents/{agent}/chat", headers, body, spec["timeout"] + 10)
        answer = answer if isinstance(answer, dict) else {}
        response = answer.get("response")
        result = response.get("result", "") if isinstance(response, dict) else ""
        answered = status == 200 and answer.get("status") == "completed" and spec["expect"] in str(result)
        out[agent] = {"answered": answered, "attempts": attempts,
                      "last": {"status": status, "task_status": answer.get("status", ""),
                               "result": str(result)[:200], "error": error[:300]}}
        if answered or time.monotonic() + 1 >= deadline:
            return
        time.sleep(1)


def main():
    spec = json.load(sys.stdin)
    deadline = time.monotonic() + spec["health_timeout"]
    report = {"health": health(spec, deadline), "agents": {}}
    if report["health"] == 200:
        deadline = time.monotonic() + spec["health_timeout"]
        threads = [threading.Thread(target=round_trip, args=(spec, agent, deadline, report["agents"]))
                   for agent in spec["agents"]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    json.dump(report, sys.stdout)


main()
