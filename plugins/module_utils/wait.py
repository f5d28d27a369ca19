# -*- coding: utf-8 -*-
# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one polling loop of the laddr.kafka modules.

A module that can wait (options expect_* and wait_timeout) reads what it observes, lists what is not
yet as expected, and reads again until nothing is missing or the time is up; it then reports what it
saw last, and how long it waited.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

POLL_INTERVAL = 1.0


def wait_until(read, waiting, wait_timeout, interval=POLL_INTERVAL, transient=()):
    """Calls read() until it returns no problems, or until wait_timeout seconds have passed.

    read() returns (observed, problems), problems a list of sentences. While waiting, an exception of a
    class in transient counts as one problem (observed None), unless it has a true attribute permanent;
    when not waiting it is raised. Returns (observed, problems, waited), waited in seconds (0.1 s steps).
    """
    started = time.monotonic()
    deadline = started + max(wait_timeout or 0, 0)
    while True:
        try:
            observed, problems = read()
        except transient as exc:
            if not waiting or getattr(exc, "permanent", False):
                raise
            observed, problems = None, [str(exc)]
        if not problems or not waiting or time.monotonic() >= deadline:
            return observed, problems, round(time.monotonic() - started, 1)
        time.sleep(min(interval, max(deadline - time.monotonic(), 0)))
