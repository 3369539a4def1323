"""tests/helpers/skips.py: how a Python test script skips, says why, and is counted (not a test itself).

A skipped test must never look like a passed one. Every Python test script ends with `skips.main()` instead of
`unittest.main()`; it runs the script's tests as unittest.main would, then:
  - prints every skipped test with its reason on stderr, each marked "allowed" or "NOT ALLOWED";
  - writes the same list to $EKG_SKIP_DIR/<folder>-<script>.skips (one `test id<TAB>allowed|unexpected<TAB>
    reason` line per skip; ctest sets EKG_SKIP_DIR, tests/run.sh reads it for its final summary);
  - exits 1 when a test failed or errored (or none ran), else 77 when a test skipped (ctest shows the script
    as "Skipped": its SKIP_RETURN_CODE in CMakeLists.txt), else 0.

What may skip: only what Debian bookworm cannot provide. ALLOWED lists those reasons, each with a key; a test
skips for one of them with `skips.allowed(key, detail)`. Any other skip (self.skipTest(), @unittest.skipIf,
a tool third_party/setup-deps.sh installs being absent) is "unexpected": shown and counted the same way, and
tests/run.sh (CI) fails on it. A behaviour of ekglue itself is never a reason to skip: assert it.
"""
import os
import sys
import unittest

# key -> why Debian bookworm cannot give CI what the test needs. Keep this list short; every entry is printed in
# tests/run.sh's summary each time it is used.
ALLOWED = {
    "kubectl": "kubectl >= 1.21 (kustomize >= 4 embedded) is not in Debian bookworm, whose kubernetes-client "
               "is 1.20 with kustomize v2.0.3; install kubectl >= 1.21 or kustomize >= 4 to run this",
    "ptrace": "this container's seccomp profile blocks ptrace (containerd's and Podman's defaults did, Docker's "
              "allows it on kernels >= 4.8), so strace (installed by third_party/setup-deps.sh) cannot trace",
}

_TAG = "allowed skip [%s]: "


def allowed(key, detail=""):
    """Raises unittest.SkipTest for one of the ALLOWED reasons (detail: what this machine has instead)."""
    if key not in ALLOWED:
        raise KeyError("no allowed skip reason %r (skips.ALLOWED)" % key)
    raise unittest.SkipTest(_TAG % key + ALLOWED[key] + (" (%s)" % detail if detail else ""))


def classify(reason):
    """'allowed' for a reason made by allowed(), else 'unexpected'."""
    for key, why in ALLOWED.items():
        if reason.startswith(_TAG % key + why):
            return "allowed"
    return "unexpected"


def _script_name():
    """<folder>-<script> of the running test script, e.g. deploy-deploy_test (its ctest name is folder/script)."""
    path = os.path.abspath(sys.argv[0])
    return "%s-%s" % (os.path.basename(os.path.dirname(path)), os.path.splitext(os.path.basename(path))[0])


def _record(skipped):
    directory = os.environ.get("EKG_SKIP_DIR")
    if not directory:
        return
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, _script_name() + ".skips")
    if not skipped:
        if os.path.exists(path):
            os.unlink(path)
        return
    with open(path + ".tmp", "w") as f:
        for test_id, reason in skipped:
            f.write("%s\t%s\t%s\n" % (test_id, classify(reason), " ".join(reason.split())))
    os.replace(path + ".tmp", path)


def report(skipped):
    """The text that lists skipped tests [(test id, reason)], grouped by reason, each reason said once."""
    unexpected = sum(1 for _, reason in skipped if classify(reason) == "unexpected")
    lines = ["SKIPPED: %d test(s) of %s did not run, %d of them NOT ALLOWED in CI (tests/helpers/skips.py)" %
             (len(skipped), _script_name(), unexpected)]
    reasons = {}
    for test_id, reason in skipped:
        reasons.setdefault(reason, []).append(test_id)
    for reason, ids in reasons.items():
        mark = "allowed" if classify(reason) == "allowed" else "NOT ALLOWED"
        lines.append("  %s, %d test(s): %s" % (mark, len(ids), reason))
        lines += ["    " + test_id for test_id in ids]
    return "\n".join(lines)


def main():
    """unittest.main(verbosity=2) for the script's module, then the skip report and the exit code above."""
    prog = unittest.main(module="__main__", verbosity=2, exit=False)
    result = prog.result
    module = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    skipped = [(test.id().replace("__main__.", module + ".", 1), str(reason)) for test, reason in result.skipped]
    _record(skipped)
    if skipped:
        sys.stderr.write("\n" + report(skipped) + "\n")
        sys.stderr.flush()
    if not result.wasSuccessful():
        sys.exit(1)
    if result.testsRun == 0 and not skipped:
        sys.stderr.write("no test ran\n")
        sys.exit(1)
    sys.exit(77 if skipped else 0)
