# -*- coding: utf-8 -*-
# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Kafka admin client shared by the laddr.kafka modules.

All network I/O of the modules goes through KafkaAdmin. Every call carries a
request timeout and every future is awaited with one, so an unreachable or
silent cluster ends in KafkaClientError instead of a hang.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import concurrent.futures
import logging
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ConfigSource,
        NewPartitions,
        NewTopic,
        OffsetSpec,
        ResourcePatternType,
        ResourceType,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialDeletion,
        UserScramCredentialUpsertion,
    )
except ImportError:
    HAS_CONFLUENT_KAFKA = False
    CONFLUENT_KAFKA_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_CONFLUENT_KAFKA = True
    CONFLUENT_KAFKA_IMPORT_ERROR = None


def kafka_argument_spec():
    """Connection options; documented in the laddr.kafka.kafka doc fragment."""
    return dict(
        bootstrap_servers=dict(type="list", elements="str", default=["127.0.0.1:9092"]),
        security_protocol=dict(type="str", default="PLAINTEXT",
                               choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]),
        sasl_mechanism=dict(type="str", default="PLAIN", choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
        sasl_username=dict(type="str"),
        sasl_password=dict(type="str", no_log=True),
        ssl_cafile=dict(type="path"),
        ssl_certfile=dict(type="path"),
        ssl_keyfile=dict(type="path", no_log=False),
        ssl_keyfile_password=dict(type="str", no_log=True),
        ssl_check_hostname=dict(type="bool", default=True),
        request_timeout=dict(type="float", default=10),
    )


# Keyword arguments for AnsibleModule that belong with kafka_argument_spec().
KAFKA_REQUIRED_IF = [
    ("security_protocol", "SASL_PLAINTEXT", ("sasl_username", "sasl_password")),
    ("security_protocol", "SASL_SSL", ("sasl_username", "sasl_password")),
]
KAFKA_REQUIRED_TOGETHER = [("ssl_certfile", "ssl_keyfile")]


def client_config(params):
    """librdkafka settings for the connection options (pure; no secrets are logged by it)."""
    timeout_ms = int(max(params["request_timeout"], 1) * 1000)
    conf = {
        "bootstrap.servers": ",".join(params["bootstrap_servers"]),
        "security.protocol": params["security_protocol"],
        "client.id": "laddr.kafka-ansible",
        "socket.timeout.ms": timeout_ms,
        "socket.connection.setup.timeout.ms": timeout_ms,
        # Waits follow brokers through restarts: reconnect within a second, not after minutes.
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1000,
    }
    if params["security_protocol"].startswith("SASL_"):
        conf["sasl.mechanism"] = params["sasl_mechanism"]
        conf["sasl.username"] = params["sasl_username"]
        conf["sasl.password"] = params["sasl_password"]
    if params["security_protocol"] in ("SSL", "SASL_SSL"):
        for option, key in (("ssl_cafile", "ssl.ca.location"), ("ssl_certfile", "ssl.certificate.location"),
                            ("ssl_keyfile", "ssl.key.location"), ("ssl_keyfile_password", "ssl.key.password")):
            if params.get(option):
                conf[key] = params[option]
        conf["ssl.endpoint.identification.algorithm"] = "https" if params["ssl_check_hostname"] else "none"
    return conf


# Seconds a client keeps trying while every broker refuses or drops its connections: enough to
# ride out a dropped connection, short enough that a wrong address or a stopped cluster fails fast.
ALL_DOWN_GRACE = 3.0

# What a group's coordinator answers while the group moves to another broker (a broker restarted, or
# leadership of __consumer_offsets changed) or while it loads the group. Kafka's Java admin client
# looks the coordinator up again and retries; librdkafka hands these to the caller, so group calls
# retry them after these pauses (seconds) before they count as failed.
COORDINATOR_MOVING = ("NOT_COORDINATOR", "COORDINATOR_LOAD_IN_PROGRESS", "COORDINATOR_NOT_AVAILABLE")
COORDINATOR_PAUSES = (0.5, 1.0, 2.0)


class KafkaClientError(Exception):
    """A Kafka call failed; the message says what was asked, of whom, and what came back.

    permanent: retrying cannot help (refused credentials or TLS), so waits stop at once.
    """

    def __init__(self, msg, permanent=False):
        super().__init__(msg)
        self.permanent = permanent


def error_text(error):
    """'NAME: description' for a KafkaError, a KafkaException or anything else."""
    if HAS_CONFLUENT_KAFKA and isinstance(error, KafkaException) and error.args:
        error = error.args[0]
    if HAS_CONFLUENT_KAFKA and isinstance(error, KafkaError):
        return "%s: %s" % (error.name(), error.str())
    return str(error) or type(error).__name__


def _quiet_logger():
    # Without a logger librdkafka writes every failed connection attempt to
    # stderr; the errors that matter reach us through error_cb instead.
    logger = logging.getLogger("laddr.kafka.librdkafka")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def require_confluent_kafka(module):
    if not HAS_CONFLUENT_KAFKA:
        module.fail_json(msg=missing_required_lib("confluent-kafka"), exception=CONFLUENT_KAFKA_IMPORT_ERROR)


class KafkaAdmin(object):
    """Admin and offset reads and writes against one cluster, with timeouts on everything."""

    def __init__(self, params):
        self.timeout = float(params["request_timeout"])
        self.bootstrap = ",".join(params["bootstrap_servers"])
        self._client_errors = []
        conf = client_config(params)
        conf["error_cb"] = self._client_errors.append
        conf["logger"] = _quiet_logger()
        try:
            self.admin = AdminClient(conf)
        except (KafkaException, ValueError, TypeError) as exc:
            raise KafkaClientError("Cannot set up a Kafka client for %s: %s" % (self.bootstrap, error_text(exc)),
                                   permanent=True)

    # -- connection -----------------------------------------------------------------

    def _fatal_client_error(self, since=0):
        for error in self._client_errors[since:]:
            if error.fatal() or error.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL):
                return error
        return None

    def _all_brokers_down(self, since=0):
        return any(error.code() == KafkaError._ALL_BROKERS_DOWN for error in self._client_errors[since:])

    def _recent_client_errors(self, since=0, limit=3):
        texts = []
        for error in reversed(self._client_errors[since:]):
            if error.code() == KafkaError._ALL_BROKERS_DOWN:
                continue
            text = error.str()
            if text not in texts:
                texts.append(text)
            if len(texts) == limit:
                break
        return texts

    def metadata(self, timeout=None):
        """Cluster metadata of all topics: brokers, controller, partitions, replicas, ISR.

        Asks for all topics rather than by name: a metadata request naming a
        topic can create it on clusters with auto.create.topics.enable.
        Attempts start short and grow, so refused credentials fail at once and
        brokers that all refuse connections fail after ALL_DOWN_GRACE, while a
        slow or silent cluster still gets the whole timeout.
        """
        timeout = self.timeout if timeout is None else timeout
        started = time.monotonic()
        deadline = started + timeout
        since = len(self._client_errors)
        attempt = 1.0
        last = None
        while True:
            remaining = deadline - time.monotonic()
            try:
                return self.admin.list_topics(timeout=max(min(attempt, remaining), 0.1))
            except KafkaException as exc:
                last = exc
            self.admin.poll(0)
            fatal = self._fatal_client_error(since)
            if fatal is not None:
                raise KafkaClientError("Kafka at %s refused the connection: %s" % (self.bootstrap, fatal.str()),
                                       permanent=True)
            now = time.monotonic()
            if self._all_brokers_down(since) and now - started >= min(ALL_DOWN_GRACE, timeout):
                raise KafkaClientError("Kafka at %s is not reachable (no broker took a connection for %.0fs): %s"
                                       % (self.bootstrap, now - started,
                                          "; ".join(self._recent_client_errors(since) or [error_text(last)])))
            if now >= deadline:
                seen = self._recent_client_errors(since) or [error_text(last)]
                raise KafkaClientError("Kafka at %s did not answer within %gs: %s"
                                       % (self.bootstrap, timeout, "; ".join(seen)))
            attempt *= 2

    # -- futures --------------------------------------------------------------------

    def _collect(self, futures):
        """{key: (result, error text or None)} for a dict of futures, never waiting forever."""
        outcome = {}
        for key, future in futures.items():
            try:
                outcome[key] = (future.result(timeout=self.timeout + 5), None)
            except concurrent.futures.TimeoutError:
                outcome[key] = (None, "no answer within %gs" % self.timeout)
            except KafkaException as exc:
                outcome[key] = (None, error_text(exc))
        return outcome

    def _one(self, what, future):
        result, error = self._collect({what: future})[what]
        if error is not None:
            raise KafkaClientError("%s failed on %s: %s" % (what, self.bootstrap, error))
        return result

    def _call(self, what, method, *args, **kwargs):
        """Starts an admin call; errors raised before any request is sent become KafkaClientError."""
        try:
            return method(*args, **kwargs)
        except (KafkaException, ValueError, TypeError) as exc:
            raise KafkaClientError("%s failed on %s: %s" % (what, self.bootstrap, error_text(exc)))

    # -- configs --------------------------------------------------------------------

    def topic_configs(self, names):
        """{topic: {key: {"value", "source", "is_default"}}} for the topics (one batched request).

        A topic that vanished in between is left out.
        """
        if not names:
            return {}
        resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
        futures = self._call("Describing topic configs", self.admin.describe_configs, resources,
                             request_timeout=self.timeout)
        configs = {}
        failures = []
        for resource, (entries, error) in self._collect(futures).items():
            if error is None:
                configs[resource.name] = dict(
                    (key, {"value": entry.value, "source": ConfigSource(entry.source).name,
                           "is_default": entry.is_default})
                    for key, entry in entries.items())
            elif not error.startswith("UNKNOWN_TOPIC_OR_PART"):
                failures.append("%s: %s" % (resource.name, error))
        if failures:
            raise KafkaClientError("Describing topic configs failed on %s: %s" % (self.bootstrap, "; ".join(failures)))
        return configs

    def broker_config(self, broker_id):
        resource = ConfigResource(ResourceType.BROKER, str(broker_id))
        futures = self._call("Describing broker %s configs" % broker_id, self.admin.describe_configs, [resource],
                             request_timeout=self.timeout)
        entries = self._one("Describing broker %s configs" % broker_id, futures[resource])
        return dict((key, entry.value) for key, entry in entries.items())

    # -- topic changes: each takes many topics in one request, returns {topic: error or None} --

    def create_topics(self, specs, validate_only=False):
        """specs: [{"name", "partitions" (-1: broker default), "replication_factor" (-1), "configs"}]."""
        if not specs:
            return {}
        new_topics = [NewTopic(spec["name"], spec["partitions"], spec["replication_factor"],
                               config=dict(spec["configs"])) for spec in specs]
        futures = self._call("Creating topics", self.admin.create_topics, new_topics,
                             operation_timeout=self.timeout, request_timeout=self.timeout,
                             validate_only=validate_only)
        return dict((name, error) for name, (dummy, error) in self._collect(futures).items())

    def create_partitions(self, totals, validate_only=False):
        """totals: {topic: new total partition count}."""
        if not totals:
            return {}
        new_partitions = [NewPartitions(name, count) for name, count in totals.items()]
        futures = self._call("Adding partitions", self.admin.create_partitions, new_partitions,
                             operation_timeout=self.timeout, request_timeout=self.timeout,
                             validate_only=validate_only)
        return dict((name, error) for name, (dummy, error) in self._collect(futures).items())

    def alter_topic_configs(self, changes, validate_only=False):
        """changes: {topic: {key: value, or None to remove the topic-level value}}; other keys stay."""
        if not changes:
            return {}
        resources = []
        for name, keys in changes.items():
            entries = [ConfigEntry(key, value,
                                   incremental_operation=AlterConfigOpType.DELETE if value is None
                                   else AlterConfigOpType.SET)
                       for key, value in sorted(keys.items())]
            resources.append(ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries))
        futures = self._call("Changing topic configs", self.admin.incremental_alter_configs, resources,
                             request_timeout=self.timeout, validate_only=validate_only)
        return dict((resource.name, error) for resource, (dummy, error) in self._collect(futures).items())

    def delete_topics(self, names):
        if not names:
            return {}
        futures = self._call("Deleting topics", self.admin.delete_topics, list(names),
                             operation_timeout=self.timeout, request_timeout=self.timeout)
        return dict((name, error) for name, (dummy, error) in self._collect(futures).items())

    # -- consumer groups and offsets ----------------------------------------------------

    def _group_call(self, what, method, request, key):
        """One group request, asked again while the group's coordinator is moving (COORDINATOR_MOVING)."""
        pauses = list(COORDINATOR_PAUSES)
        while True:
            futures = self._call(what, method, [request], request_timeout=self.timeout)
            result, error = self._collect({key: futures[key]})[key]
            if error is None:
                return result
            if not pauses or not error.startswith(COORDINATOR_MOVING):
                raise KafkaClientError("%s failed on %s: %s" % (what, self.bootstrap, error))
            time.sleep(pauses.pop(0))

    def describe_group(self, group_id):
        return self._group_call("Describing consumer group %r" % group_id, self.admin.describe_consumer_groups,
                                group_id, group_id)

    def committed_offsets(self, group_id, partitions=None):
        """{(topic, partition): committed offset or None}; all the group's commits when partitions is None."""
        what = "Reading the committed offsets of consumer group %r" % group_id
        request = ConsumerGroupTopicPartitions(
            group_id, [TopicPartition(topic, partition) for topic, partition in partitions]
            if partitions else None)
        answer = self._group_call(what, self.admin.list_consumer_group_offsets, request, group_id)
        committed = {}
        for tp in answer.topic_partitions or []:
            if tp.error is not None:
                raise KafkaClientError("%s failed for %s[%d]: %s" % (what, tp.topic, tp.partition, error_text(tp.error)))
            committed[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
        return committed

    def log_offsets(self, partitions):
        """({(topic, partition): log start offset}, {(topic, partition): end offset}), two batched requests."""
        if not partitions:
            return {}, {}
        found = []
        for spec in (OffsetSpec.earliest(), OffsetSpec.latest()):
            request = dict((TopicPartition(topic, partition), spec) for topic, partition in partitions)
            futures = self._call("Reading log offsets", self.admin.list_offsets, request,
                                 request_timeout=self.timeout)
            offsets = {}
            failures = []
            for tp, (info, error) in self._collect(futures).items():
                if error is None:
                    offsets[(tp.topic, tp.partition)] = info.offset
                else:
                    failures.append("%s[%d]: %s" % (tp.topic, tp.partition, error))
            if failures:
                raise KafkaClientError("Reading log offsets failed on %s: %s" % (self.bootstrap, "; ".join(failures[:5])))
            found.append(offsets)
        return found[0], found[1]

    # -- SCRAM credentials -------------------------------------------------------------

    def authenticates(self, timeout=None):
        """True when the cluster takes this client's SASL credentials, False when it refuses them; an unreachable
        cluster raises KafkaClientError."""
        since = len(self._client_errors)
        try:
            self.metadata(timeout)
            return True
        except KafkaClientError:
            if any(error.code() == KafkaError._AUTHENTICATION for error in self._client_errors[since:]):
                return False
            raise

    def scram_credentials(self, users):
        """{user: {mechanism name: iterations}} for USERS (one request); a user without credentials maps to {}."""
        if not users:
            return {}
        futures = self._call("Describing SCRAM credentials", self.admin.describe_user_scram_credentials, list(users),
                             request_timeout=self.timeout)
        found = {}
        for user, (description, error) in self._collect(futures).items():
            if error is None:
                found[user] = dict((scram_mechanism_name(info.mechanism), info.iterations)
                                   for info in description.scram_credential_infos)
            elif error.startswith("RESOURCE_NOT_FOUND"):
                found[user] = {}
            else:
                raise KafkaClientError("Describing the SCRAM credentials of %r failed on %s: %s"
                                       % (user, self.bootstrap, error))
        return found

    def alter_scram_credentials(self, upserts, deletions):
        """upserts: [(user, mechanism name, iterations, password)]; deletions: [(user, mechanism name)].
        Returns {user: error or None} (one request)."""
        alterations = [UserScramCredentialUpsertion(user, ScramCredentialInfo(scram_mechanism(mechanism), iterations),
                                                    password.encode("utf-8"))
                       for user, mechanism, iterations, password in upserts]
        alterations += [UserScramCredentialDeletion(user, scram_mechanism(mechanism)) for user, mechanism in deletions]
        if not alterations:
            return {}
        futures = self._call("Changing SCRAM credentials", self.admin.alter_user_scram_credentials, alterations,
                             request_timeout=self.timeout)
        return dict((user, error) for user, (dummy, error) in self._collect(futures).items())

    # -- ACLs (bindings as acl_key tuples) --------------------------------------------

    def acls(self):
        """Every ACL of the cluster as a set of acl_key tuples (one request)."""
        any_acl = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                   AclOperation.ANY, AclPermissionType.ANY)
        what = "Describing ACLs"
        future = self._call(what, self.admin.describe_acls, any_acl, request_timeout=self.timeout)
        try:
            return set(acl_key(binding) for binding in self._one(what, future))
        except KafkaClientError as exc:
            if "SECURITY_DISABLED" in str(exc):
                raise KafkaClientError("Kafka at %s has no authorizer (authorizer.class.name is not set), so it keeps "
                                       "no ACLs: %s" % (self.bootstrap, exc), permanent=True)
            raise

    def _keyed_call(self, what, method, keys, request_of):
        """One batched request of request_of(key) for each key; {key: error or None}."""
        if not keys:
            return {}
        requests = dict((request_of(key), key) for key in keys)
        futures = self._call(what, method, list(requests), request_timeout=self.timeout)
        return dict((requests[request], error) for request, (dummy, error) in self._collect(futures).items())

    def create_acls(self, keys):
        """{key: error or None} for the bindings created (one request)."""
        return self._keyed_call("Creating ACLs", self.admin.create_acls, keys, acl_binding)

    def delete_acls(self, keys):
        """{key: error or None} for the exact bindings deleted (one request)."""
        return self._keyed_call("Deleting ACLs", self.admin.delete_acls, keys, acl_filter)


def scram_mechanism(name):
    """ScramMechanism of a SASL mechanism name (SCRAM-SHA-512)."""
    return ScramMechanism[name.replace("-", "_")]


def scram_mechanism_name(mechanism):
    """The SASL mechanism name (SCRAM-SHA-512) of a ScramMechanism."""
    return mechanism.name.replace("_", "-")


# -- ACLs: one binding as a tuple of names (pure) ----------------------------------------

ACL_FIELDS = ("principal", "host", "operation", "permission", "resource_type", "resource_name", "pattern_type")
# Kafka names the cluster resource BROKER in its admin API, always with this name.
CLUSTER_RESOURCE_NAME = "kafka-cluster"


def acl_key(binding):
    """(principal, host, OPERATION, PERMISSION, RESOURCE_TYPE, resource name, PATTERN_TYPE) of an AclBinding."""
    return (binding.principal, binding.host, binding.operation.name, binding.permission_type.name,
            binding.restype.name, binding.name, binding.resource_pattern_type.name)


def _acl_enums(key):
    principal, host, operation, permission, restype, name, pattern = key
    return (ResourceType[restype], name, ResourcePatternType[pattern], principal, host,
            AclOperation[operation], AclPermissionType[permission])


def acl_binding(key):
    return AclBinding(*_acl_enums(key))


def acl_filter(key):
    """A filter that matches exactly the binding KEY."""
    return AclBindingFilter(*_acl_enums(key))


def metadata_topics(metadata):
    """{topic: {"partitions": {id: {"leader", "replicas", "isr"}}}} from ClusterMetadata (pure)."""
    topics = {}
    for name, topic in metadata.topics.items():
        if topic.error is not None and topic.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            continue
        topics[name] = {"partitions": dict(
            (pid, {"leader": p.leader, "replicas": list(p.replicas), "isr": list(p.isrs)})
            for pid, p in topic.partitions.items())}
    return topics


def metadata_brokers(metadata):
    return sorted(({"id": b.id, "host": b.host, "port": b.port} for b in metadata.brokers.values()),
                  key=lambda b: b["id"])


def run_manager(module, manager_class):
    """Runs a module's manager on a client built from the module's parameters; a client error
    becomes the module's failure message."""
    require_confluent_kafka(module)
    try:
        manager_class(module, KafkaAdmin(module.params)).run()
    except KafkaClientError as exc:
        module.fail_json(msg=str(exc))


def run_kafka_module(manager_class, options, **module_kwargs):
    """The main() of a module that talks to Kafka: the connection options of kafka_argument_spec() and
    OPTIONS, check mode supported, MODULE_KWARGS (mutually_exclusive, required_one_of...) added to the
    connection options' own rules; then MANAGER_CLASS runs (see run_manager)."""
    argument_spec = kafka_argument_spec()
    argument_spec.update(options)
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=KAFKA_REQUIRED_IF,
        required_together=KAFKA_REQUIRED_TOGETHER,
        supports_check_mode=True,
        **module_kwargs
    )
    run_manager(module, manager_class)
