# -*- coding: utf-8 -*-
# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Connection options shared by every module that talks to Kafka."""

    DOCUMENTATION = r"""
options:
  bootstrap_servers:
    description:
      - Brokers to ask for the cluster's metadata first, as C(host:port).
      - One reachable broker is enough; the client then talks to the brokers the cluster advertises.
    type: list
    elements: str
    default: ["127.0.0.1:9092"]
  security_protocol:
    description:
      - Protocol of the listener that O(bootstrap_servers) point at.
    type: str
    choices: [PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL]
    default: PLAINTEXT
  sasl_mechanism:
    description:
      - SASL mechanism, used with O(security_protocol=SASL_PLAINTEXT) or O(security_protocol=SASL_SSL).
    type: str
    choices: [PLAIN, SCRAM-SHA-256, SCRAM-SHA-512]
    default: PLAIN
  sasl_username:
    description:
      - SASL user name. Required with the SASL protocols.
    type: str
  sasl_password:
    description:
      - SASL password. Required with the SASL protocols.
    type: str
  ssl_cafile:
    description:
      - PEM file with the CA certificates that signed the brokers' certificates.
      - Without it the system's CA store is used.
    type: path
  ssl_certfile:
    description:
      - PEM file with the client certificate, for brokers that require TLS client authentication.
    type: path
  ssl_keyfile:
    description:
      - PEM file with the private key of O(ssl_certfile).
    type: path
  ssl_keyfile_password:
    description:
      - Password of O(ssl_keyfile), if it is encrypted.
    type: str
  ssl_check_hostname:
    description:
      - Check that the broker's certificate names the host that was connected to.
    type: bool
    default: true
  request_timeout:
    description:
      - Seconds to wait for the cluster to answer one request, and for the first connection.
      - An unreachable cluster, refused credentials or a broker that stops answering fail the task
        after at most this long. Refused credentials fail at once, and brokers that all refuse
        connections after 3 seconds.
    type: float
    default: 10
requirements:
  - confluent-kafka >= 2.3.0 (Python) on the host that runs the module
notes:
  - The module runs on the target host, which must reach the brokers; use C(delegate_to) to run it
    elsewhere.
"""
