#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: laddr.kafka contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: tls_certificates
short_description: Keep a private CA and the certificates it signs for each host, in a directory
description:
  - Keeps, in one directory (on the controller when run with C(delegate_to=localhost)), a certificate authority
    (C(ca.crt), C(ca.key)) and, per entry of O(certificates), a private key and a certificate signed by that CA
    (C(<name>.key), C(<name>.crt)), as PEM files; keys in PKCS#8, the form that Kafka's C(ssl.keystore.type=PEM) reads.
  - A certificate is issued again when it is missing, does not match its key, was not signed by the CA, lacks a
    subject alternative name asked for or names one no longer asked for, or expires within O(renew_days). A key is
    kept when it is there and sound; O(rotate_keys) makes new keys for every certificate issued in this run.
  - The CA is made when neither its certificate nor its key is there; an operator's own CA (its certificate and key
    copied to those paths) is used as it is. A CA certificate without its key, or a key without its certificate,
    is an error that names the missing file.
  - Directories are made C(0700) and key files C(0600); keys are never returned or logged.
  - Uses the Python C(cryptography) library, which ansible-core itself needs on the controller.
version_added: 0.1.0
author: laddr.kafka team (!UNKNOWN)
options:
  path:
    description:
      - Directory that holds the CA and the certificates.
    type: path
    required: true
  ca_common_name:
    description:
      - Subject common name of a CA made by this module.
    type: str
    default: laddr.kafka CA
  ca_valid_days:
    description:
      - Validity of a CA made by this module, in days.
    type: int
    default: 3650
  certificates:
    description:
      - The certificates to keep, one per host or principal.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: File name stem of the key and certificate (letters, digits, C(.), C(_) and C(-)).
        type: str
        required: true
      common_name:
        description: Subject common name; defaults to O(certificates[].name).
        type: str
      dns_names:
        description: DNS subject alternative names.
        type: list
        elements: str
        default: []
      ip_addresses:
        description: IP address subject alternative names.
        type: list
        elements: str
        default: []
      client:
        description: Also valid for TLS client authentication (brokers talk to each other as clients).
        type: bool
        default: true
  valid_days:
    description:
      - Validity of each certificate issued, in days.
    type: int
    default: 825
  renew_days:
    description:
      - A certificate that expires within this many days is issued again.
    type: int
    default: 30
  rotate_keys:
    description:
      - Make a new key for every certificate issued in this run, instead of keeping the one in place.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports what would be made or issued again, and why, without writing.
  diff_mode:
    support: full
    description: Before and after list each certificate with its serial number, expiry and names.
requirements:
  - cryptography >= 40.0 (Python) where the module runs
notes:
  - Keys made by the module are EC P-256; an operator's own CA key may be RSA or EC (unencrypted PEM).
"""

EXAMPLES = r"""
- name: The lab's CA and a certificate for each broker are in place on the controller
  laddr.kafka.tls_certificates:
    path: "{{ inventory_dir }}/pki"
    certificates:
      - name: lab1
        dns_names: [lab1]
        ip_addresses: [10.77.0.11]
  delegate_to: localhost
  run_once: true
  register: pki
"""

RETURN = r"""
ca:
  description: The CA certificate's path, serial number (hex), expiry (ISO 8601, UTC) and whether it was made in this run.
  returned: always
  type: dict
  sample: {"path": "/srv/pki/ca.crt", "serial": "5f3a...", "not_after": "2036-12-05T10:00:00Z", "made": false}
certificates:
  description:
    - Per name, the paths of the certificate and key, its serial number, expiry, and why it was issued in this run
      (empty when it was kept).
  returned: always
  type: dict
  sample:
    lab1:
      cert: /srv/pki/lab1.crt
      key: /srv/pki/lab1.key
      serial: "2c1e..."
      not_after: "2029-03-12T10:00:00Z"
      issued: ["missing"]
"""

import datetime
import ipaddress
import os
import re

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# A certificate's validity starts a little before now, so that a host whose clock is slightly behind accepts it.
BACKDATE = datetime.timedelta(minutes=5)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def not_after(cert):
    return cert.not_valid_after_utc


def wanted_names(spec):
    """The subject alternative names a certificate must carry, as (kind, text) pairs."""
    names = set(("dns", name.lower()) for name in spec.get("dns_names") or [])
    names |= set(("ip", str(ipaddress.ip_address(address))) for address in spec.get("ip_addresses") or [])
    return names


def names_of(cert):
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return (set(("dns", name.lower()) for name in san.get_values_for_type(x509.DNSName))
            | set(("ip", str(address)) for address in san.get_values_for_type(x509.IPAddress)))


def same_public_key(cert, key):
    form = dict(encoding=serialization.Encoding.DER, format=serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(**form) == key.public_key().public_bytes(**form)


def signed_by(cert, ca_cert):
    if cert.issuer != ca_cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def reasons_to_issue(cert, key, ca_cert, spec, now, renew_days):
    """Why a certificate must be issued again (empty when it is sound): a pure function of what is on disk."""
    if cert is None or key is None:
        return ["missing"]
    reasons = []
    if not same_public_key(cert, key):
        reasons.append("does not match its key")
    if not signed_by(cert, ca_cert):
        reasons.append("not signed by the CA")
    if names_of(cert) != wanted_names(spec):
        reasons.append("names differ")
    if not_after(cert) - now <= datetime.timedelta(days=renew_days):
        reasons.append("expires within %d days" % renew_days)
    return reasons


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(key, common_name, days, now):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))


def issue(key, spec, ca_cert, ca_key, days, now):
    sans = ([x509.DNSName(name) for kind, name in sorted(wanted_names(spec)) if kind == "dns"]
            + [x509.IPAddress(ipaddress.ip_address(name)) for kind, name in sorted(wanted_names(spec)) if kind == "ip"])
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] + ([ExtendedKeyUsageOID.CLIENT_AUTH] if spec.get("client", True) else [])
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, spec.get("common_name") or spec["name"])]))
               .issuer_name(ca_cert.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - BACKDATE)
               .not_valid_after(min(now + datetime.timedelta(days=days), not_after(ca_cert)))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                            crl_sign=False, content_commitment=False, data_encipherment=False,
                                            key_agreement=True, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def summary(cert, path):
    return {"path": path, "serial": "%x" % cert.serial_number, "not_after": iso(not_after(cert)),
            "names": sorted("%s:%s" % pair for pair in names_of(cert))}


class Store(object):
    """The directory: reads PEM files, writes them with the modes above."""

    def __init__(self, module, path):
        self.module = module
        self.path = path

    def file(self, name):
        return os.path.join(self.path, name)

    def read(self, name, loader):
        path = self.file(name)
        if not os.path.exists(path):
            return None
        try:
            with open(path, "rb") as handle:
                return loader(handle.read())
        except ValueError as err:
            kind = "key" if name.endswith(".key") else "certificate"
            self.module.fail_json(msg="%s is not a PEM %s this module can read: %s. Remove it to have it made again, "
                                      "or put a sound one there." % (path, kind, err))

    def read_key(self, name):
        return self.read(name, lambda data: serialization.load_pem_private_key(data, password=None))

    def read_cert(self, name):
        return self.read(name, x509.load_pem_x509_certificate)

    def write(self, name, data, mode):
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        path = self.file(name)
        temporary = path + ".tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.fchmod(descriptor, mode)
            os.write(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)


class Certificates(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.store = Store(module, module.params["path"])

    def ca(self, now):
        ca_cert, ca_key = self.store.read_cert("ca.crt"), self.store.read_key("ca.key")
        if (ca_cert is None) != (ca_key is None):
            missing, present = ("ca.key", "ca.crt") if ca_key is None else ("ca.crt", "ca.key")
            self.module.fail_json(msg="%s is missing beside %s: a CA needs both its certificate and its key. Put the "
                                      "CA's %s there, or remove both to have a new CA made (every certificate is then "
                                      "issued again)." % (self.store.file(missing), self.store.file(present),
                                                          "key" if ca_key is None else "certificate"))
        if ca_cert is not None and not same_public_key(ca_cert, ca_key):
            self.module.fail_json(msg="%s does not match %s; put the CA's own key beside its certificate."
                                      % (self.store.file("ca.key"), self.store.file("ca.crt")))
        made = ca_cert is None
        if made:
            ca_key = new_key()
            ca_cert = make_ca(ca_key, self.params["ca_common_name"], self.params["ca_valid_days"], now)
        return ca_cert, ca_key, made

    def run(self):
        for spec in self.params["certificates"]:
            if not NAME_PATTERN.match(spec["name"]):
                self.module.fail_json(msg="certificates: name %r may hold only letters, digits, '.', '_' and '-', "
                                          "and must not start with '.' or '-'." % spec["name"])
            try:
                wanted_names(spec)
            except ValueError as err:
                self.module.fail_json(msg="certificates: %s: %s" % (spec["name"], err))
        names = [spec["name"] for spec in self.params["certificates"]]
        if len(set(names)) != len(names) or "ca" in names:
            self.module.fail_json(msg="certificates: each name must be unique and not 'ca' (got %s)." % ", ".join(names))
        now = utcnow()
        ca_cert, ca_key, ca_made = self.ca(now)
        writes, before, after, result = [], {}, {}, {}
        if ca_made:
            writes += [("ca.key", key_pem(ca_key), 0o600), ("ca.crt", cert_pem(ca_cert), 0o644)]
        for spec in self.params["certificates"]:
            name = spec["name"]
            cert, key = self.store.read_cert(name + ".crt"), self.store.read_key(name + ".key")
            if cert is not None:
                before[name] = summary(cert, self.store.file(name + ".crt"))
            reasons = reasons_to_issue(cert, key, ca_cert, spec, now, self.params["renew_days"])
            if reasons:
                if key is None or self.params["rotate_keys"] or "does not match its key" in reasons:
                    key = new_key()
                    writes.append((name + ".key", key_pem(key), 0o600))
                cert = issue(key, spec, ca_cert, ca_key, self.params["valid_days"], now)
                writes.append((name + ".crt", cert_pem(cert), 0o644))
            after[name] = summary(cert, self.store.file(name + ".crt"))
            result[name] = dict(after[name], cert=self.store.file(name + ".crt"), key=self.store.file(name + ".key"),
                                issued=reasons)
        changed = bool(writes)
        if changed and not self.module.check_mode:
            for name, data, mode in writes:
                self.store.write(name, data, mode)
        ca = dict(summary(ca_cert, self.store.file("ca.crt")), made=ca_made)
        self.module.exit_json(changed=changed, ca=ca, certificates=result,
                              diff={"before": {"certificates": before}, "after": {"certificates": after}})


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            ca_common_name=dict(type="str", default="laddr.kafka CA"),
            ca_valid_days=dict(type="int", default=3650),
            certificates=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                common_name=dict(type="str"),
                dns_names=dict(type="list", elements="str", default=[]),
                ip_addresses=dict(type="list", elements="str", default=[]),
                client=dict(type="bool", default=True),
            )),
            valid_days=dict(type="int", default=825),
            renew_days=dict(type="int", default=30),
            rotate_keys=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"))
    if module.params["renew_days"] >= module.params["valid_days"]:
        module.fail_json(msg="renew_days (%d) must be less than valid_days (%d), or every run would issue again."
                             % (module.params["renew_days"], module.params["valid_days"]))
    Certificates(module).run()


if __name__ == "__main__":
    main()
