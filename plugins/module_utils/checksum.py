# -*- coding: utf-8 -*-
# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The SHA-1 of a file, as the roles compare content: host_state on the hosts, tree_checksums on the controller."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib


def sha1_of(path):
    """Hex SHA-1 of the file at PATH, read in blocks."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(65536), b""):
            digest.update(block)
    return digest.hexdigest()
