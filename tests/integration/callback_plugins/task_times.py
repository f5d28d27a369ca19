# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a playbook's time goes, for scripts/bench: wall time per task, summed over the run by task name."""
from __future__ import annotations

DOCUMENTATION = r"""
name: task_times
type: aggregate
short_description: wall time per task name, written as JSON when the playbook ends
description:
  - Each task's wall time (from its start to the start of the next task or handler, over all its hosts)
    is summed by the task's name with its role, and written to the file that C(LADDR_TASK_TIMES) names, with
    how many times the name ran; the file keeps the runs of earlier playbooks, keyed by the value of
    C(LADDR_TASK_TIMES_LABEL).
  - Used by scripts/bench; not part of the collection's interface.
options: {}
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._times = {}
        self._current = None

    def _close(self):
        if self._current is not None:
            name, started = self._current
            seconds, runs = self._times.get(name, (0.0, 0))
            self._times[name] = (seconds + time.monotonic() - started, runs + 1)
            self._current = None

    def _start(self, task):
        self._close()
        role = task._role.get_name() if task._role else ""
        name = task.get_name().strip()
        self._current = (f"{role} : {name}" if role and not name.startswith(role) else name, time.monotonic())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._start(task)

    def v2_playbook_on_stats(self, stats):
        self._close()
        path = os.environ.get("LADDR_TASK_TIMES")
        if not path:
            return
        try:
            with open(path, encoding="utf-8") as kept:
                runs = json.load(kept)
        except (OSError, ValueError):
            runs = {}
        runs[os.environ.get("LADDR_TASK_TIMES_LABEL", "run")] = {
            name: [round(seconds, 2), count] for name, (seconds, count) in
            sorted(self._times.items(), key=lambda item: -item[1][0])}
        with open(path, "w", encoding="utf-8") as out:
            json.dump(runs, out, indent=1)
