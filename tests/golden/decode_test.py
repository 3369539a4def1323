#!/usr/bin/python3
"""tests/golden/decode_test.py: an independent check of ekglue's binary encoding.

ekglue encodes resources with upb and renders its JSON through upb too, so a upb bug could hide in both. This
test decodes `ekglue dump --format binary` (a stream of varint-length-delimited google.protobuf.Any: the
clusters, then the load assignments, each in name order) with Debian's python3-protobuf (the C++ or pure-Python
implementation, not upb), converts every message to proto3 JSON with json_format.MessageToDict and compares it
with the `--format json` dump of the same input, resource by resource, in order.

The descriptor pool is built from $EKG_BUILD_DIR/gen/grpc_descriptors.pb (a FileDescriptorSet of the protos
libgrpc embeds, dependencies first) and $EKG_BUILD_DIR/gen/extra_descriptors.pb (ekglue's proto/ files); Any
payloads inside the resources (typed_extension_protocol_options) need it to expand.

Run by ctest with EKGLUE, EKG_SOURCE_DIR and EKG_BUILD_DIR set. Single-threaded. Exits non-zero on any mismatch.
"""
import json
import os
import subprocess
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.internal import api_implementation

TYPE_PREFIX = "type.googleapis.com/"
CLUSTER = "envoy.config.cluster.v3.Cluster"
LOAD_ASSIGNMENT = "envoy.config.endpoint.v3.ClusterLoadAssignment"

# (name, config file or None): the inputs of the golden cases.
CASES = [
    ("default", None),
    ("dns", "config-dns.yaml"),
    ("not-ready", "config-not-ready.yaml"),
]


def die(msg):
    print("decode: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def env(name):
    value = os.environ.get(name)
    if not value:
        die("%s is not set (run through ctest)" % name)
    return value


def load_pool(build_dir):
    """A pool with every file of both descriptor sets; a file present in both is added once."""
    pool = descriptor_pool.DescriptorPool()
    added = set()
    for name in ("grpc_descriptors.pb", "extra_descriptors.pb"):
        path = os.path.join(build_dir, "gen", name)
        fds = descriptor_pb2.FileDescriptorSet()
        try:
            with open(path, "rb") as f:
                fds.ParseFromString(f.read())
        except OSError as e:
            die("cannot read %s: %s" % (path, e))
        for fdp in fds.file:
            if fdp.name in added:
                continue
            try:
                pool.Add(fdp)
            except Exception as e:  # the C++ pool raises TypeError, the Python one others
                die("%s: cannot add %s to the pool: %s" % (path, fdp.name, e))
            added.add(fdp.name)
    return pool, len(added)


def message_class(factory, pool, full_name):
    desc = pool.FindMessageTypeByName(full_name)
    if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.22
        return message_factory.GetMessageClass(desc)
    return factory.GetPrototype(desc)  # protobuf 3.21 (Debian bookworm)


def read_varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint at byte %d" % pos)
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long at byte %d" % pos)


def split_stream(buf):
    """The length-delimited records of buf, as bytes."""
    records, pos = [], 0
    while pos < len(buf):
        n, pos = read_varint(buf, pos)
        if pos + n > len(buf):
            raise ValueError("record at byte %d claims %d bytes, %d left" % (pos, n, len(buf) - pos))
        records.append(buf[pos:pos + n])
        pos += n
    return records


def run_dump(ekglue, golden_dir, config, fmt):
    args = [ekglue, "dump", "--objects", os.path.join(golden_dir, "demo.yaml"), "--format", fmt]
    if config:
        args += ["--config", os.path.join(golden_dir, config)]
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        die("%s exited %d: %s" % (" ".join(args), proc.returncode, proc.stderr.decode(errors="replace")))
    return proc.stdout


def first_difference(a, b, path="$"):
    """A readable description of the first place where a and b differ, or None."""
    if isinstance(a, dict) != isinstance(b, dict) or isinstance(a, list) != isinstance(b, list) or (
            not isinstance(a, (dict, list)) and type(a) is not type(b)):
        # Scalars must agree in JSON type too: 64-bit integers are strings in proto3 JSON on both sides.
        return "%s: %r (%s) != %r (%s)" % (path, a, type(a).__name__, b, type(b).__name__)
    if isinstance(a, dict):  # OrderedDict (Any expansion) and dict alike
        for key in sorted(set(a) | set(b)):
            if key not in a:
                return "%s.%s: missing on the protobuf side (JSON has %r)" % (path, key, b[key])
            if key not in b:
                return "%s.%s: missing on the JSON side (protobuf has %r)" % (path, key, a[key])
            d = first_difference(a[key], b[key], "%s.%s" % (path, key))
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return "%s: %d items != %d items" % (path, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, "%s[%d]" % (path, i))
            if d:
                return d
        return None
    return None if a == b else "%s: %r != %r" % (path, a, b)


def check_case(name, config, ekglue, golden_dir, pool, factory, any_cls):
    """Returns (resources checked, list of mismatch messages)."""
    binary = run_dump(ekglue, golden_dir, config, "binary")
    doc = json.loads(run_dump(ekglue, golden_dir, config, "json"))
    expected = [(CLUSTER, r) for r in doc["clusters"]] + [(LOAD_ASSIGNMENT, r) for r in doc["load_assignments"]]
    try:
        records = split_stream(binary)
    except ValueError as e:
        return 0, ["%s: the binary stream is malformed: %s" % (name, e)]
    mismatches = []
    if len(records) != len(expected):
        mismatches.append("%s: %d resources in the binary stream, %d in the JSON dump (%d clusters, %d load "
                          "assignments)" % (name, len(records), len(expected), len(doc["clusters"]),
                                            len(doc["load_assignments"])))
    classes = {t: message_class(factory, pool, t) for t in (CLUSTER, LOAD_ASSIGNMENT)}
    names = {CLUSTER: [], LOAD_ASSIGNMENT: []}
    for i, (record, (type_name, want)) in enumerate(zip(records, expected)):
        where = "%s: resource %d" % (name, i)
        any_msg = any_cls()
        try:
            any_msg.ParseFromString(record)
        except Exception as e:
            mismatches.append("%s: not a google.protobuf.Any: %s" % (where, e))
            continue
        if any_msg.type_url != TYPE_PREFIX + type_name:
            mismatches.append("%s: type_url %r, expected %r" % (where, any_msg.type_url, TYPE_PREFIX + type_name))
            continue
        msg = classes[type_name]()
        try:
            msg.ParseFromString(any_msg.value)
        except Exception as e:
            mismatches.append("%s: does not decode as %s: %s" % (where, type_name, e))
            continue
        resource_name = msg.name if type_name == CLUSTER else msg.cluster_name
        names[type_name].append(resource_name)
        where += " (%s)" % resource_name
        # Unknown fields would mean upb wrote something the schema does not have.
        if hasattr(msg, "UnknownFields") and len(msg.UnknownFields()):
            mismatches.append("%s: %d unknown field(s) after decoding" % (where, len(msg.UnknownFields())))
        try:
            got = json_format.MessageToDict(msg, descriptor_pool=pool)
        except Exception as e:
            mismatches.append("%s: json_format cannot convert it: %s" % (where, e))
            continue
        diff = first_difference(got, want)
        if diff:
            mismatches.append("%s: protobuf and ekglue's JSON differ at %s" % (where, diff))
    for type_name, seen in names.items():
        if seen != sorted(seen) or len(set(seen)) != len(seen):
            mismatches.append("%s: %s names are not sorted and unique: %s" % (name, type_name, seen))
    return min(len(records), len(expected)), mismatches


def main():
    ekglue = env("EKGLUE")
    build_dir = env("EKG_BUILD_DIR")
    source_dir = os.environ.get("EKG_SOURCE_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                 "..", "..")
    golden_dir = os.path.join(source_dir, "tests", "golden")
    pool, nfiles = load_pool(build_dir)
    factory = message_factory.MessageFactory(pool)
    any_cls = message_class(factory, pool, "google.protobuf.Any")
    print("decode: python protobuf %s (%s implementation), %d descriptor files" %
          (_pb_version(), api_implementation.Type(), nfiles))
    total, mismatches = 0, []
    for name, config in CASES:
        n, m = check_case(name, config, ekglue, golden_dir, pool, factory, any_cls)
        print("decode: case %s: %d resources" % (name, n))
        total += n
        mismatches += m
    for m in mismatches:
        print("decode: MISMATCH: " + m, file=sys.stderr)
    print("decode: %d resources checked, %d mismatches" % (total, len(mismatches)))
    if total == 0:
        die("nothing was checked")
    sys.exit(1 if mismatches else 0)


def _pb_version():
    import google.protobuf
    return getattr(google.protobuf, "__version__", "?")


if __name__ == "__main__":
    main()
