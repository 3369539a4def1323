#!/usr/bin/env bash
# tests/golden/golden_test.sh: `ekglue dump` end to end. Each case translates tests/golden/demo.yaml (with
# a config) and diffs the output against its expected file; UPDATE_GOLDEN=1 rewrites the expected files
# instead (read the diff before committing them). Then the command line's contract: exit codes (0 ok, 2 usage,
# 3 config with FILE:LINE on stderr), --help, invalid objects skipped with a warning naming them, and output
# independent of the order of the input documents.
# Run by ctest with EKGLUE (the binary) and EKG_SOURCE_DIR set; runs in a private temporary directory.
set -u

: "${EKGLUE:?set EKGLUE to the ekglue binary}"
SRC="${EKG_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
DIR="$SRC/tests/golden"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
failures=0
checks=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

pass() {
    checks=$((checks + 1))
}

# golden NAME EXPECTED_FILE ARGS...: runs `ekglue dump ARGS` and compares stdout with EXPECTED_FILE.
golden() {
    local name="$1" expected="$DIR/$2"
    shift 2
    local out="$TMP/$name.out" err="$TMP/$name.err"
    (cd "$DIR" && "$EKGLUE" dump "$@") >"$out" 2>"$err"
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$name: ekglue dump $* exited $rc"
        cat "$err" >&2
        return
    fi
    if [ -s "$err" ]; then
        fail "$name: unexpected output on stderr:"
        cat "$err" >&2
    fi
    if [ "${UPDATE_GOLDEN:-0}" = 1 ]; then
        cp "$out" "$expected"
        echo "updated $expected"
        pass
        return
    fi
    if [ ! -f "$expected" ]; then
        fail "$name: $expected is missing (run with UPDATE_GOLDEN=1 to create it)"
        return
    fi
    if ! diff -u "$expected" "$out" >"$TMP/$name.diff"; then
        fail "$name: output differs from $expected (UPDATE_GOLDEN=1 rewrites it):"
        cat "$TMP/$name.diff" >&2
        return
    fi
    pass
}

# expect_rc NAME WANT ARGS...: runs `ekglue ARGS`, checks the exit code; stdout/stderr left in $TMP/NAME.*.
expect_rc() {
    local name="$1" want="$2"
    shift 2
    (cd "$TMP" && "$EKGLUE" "$@") >"$TMP/$name.out" 2>"$TMP/$name.err"
    local rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "$name: ekglue $* exited $rc, expected $want; stderr:"
        cat "$TMP/$name.err" >&2
        return 1
    fi
    pass
}

# expect_grep NAME FILE PATTERN: FILE ($TMP/NAME.FILE) matches the extended regex PATTERN.
expect_grep() {
    local name="$1" file="$TMP/$1.$2" pattern="$3"
    if grep -Eq -- "$pattern" "$file"; then
        pass
    else
        fail "$name: $2 does not match /$pattern/; it is:"
        cat "$file" >&2
    fi
}

# --- golden cases ------------------------------------------------------------------------------------------
golden demo demo.json --objects demo.yaml
golden dns dns.json --objects demo.yaml --config config-dns.yaml
golden dns-yaml dns.out.yaml --objects demo.yaml --config config-dns.yaml --format yaml
golden not-ready not-ready.json --objects demo.yaml --config config-not-ready.yaml

if [ "${UPDATE_GOLDEN:-0}" = 1 ]; then
    echo "golden: expected files rewritten; review them with git diff"
    exit $((failures > 0))
fi

# --- the same documents in reverse order, split over two files: the same bytes --------------------------------
python3 - "$DIR/demo.yaml" "$TMP/rev1.yaml" "$TMP/rev2.yaml" <<'PY' || fail "reorder: cannot split demo.yaml"
import sys
docs = [d for d in open(sys.argv[1]).read().split("\n---\n") if d.strip()]
docs.reverse()
half = len(docs) // 2
open(sys.argv[2], "w").write("\n---\n".join(docs[:half]) + "\n")
open(sys.argv[3], "w").write("\n---\n".join(docs[half:]) + "\n")
PY
if "$EKGLUE" dump --objects "$TMP/rev2.yaml" --objects "$TMP/rev1.yaml" >"$TMP/rev.out" 2>"$TMP/rev.err"; then
    # Against this run's own output of the demo case, so that a stale demo.json is reported once, above.
    if diff -u "$TMP/demo.out" "$TMP/rev.out" >"$TMP/rev.diff"; then
        pass
    else
        fail "reorder: the same objects in another order give other output:"
        cat "$TMP/rev.diff" >&2
    fi
else
    fail "reorder: ekglue dump failed"
    cat "$TMP/rev.err" >&2
fi

# --- usage ---------------------------------------------------------------------------------------------------
expect_rc help 0 dump --help && expect_grep help out '^usage: ekglue dump'
expect_rc top-help 0 --help && expect_grep top-help out '^usage: ekglue'
# No objects and no Kubernetes API configured (the environment cannot point at one here): a usage error that says so.
unset KUBECONFIG KUBERNETES_SERVICE_HOST KUBERNETES_SERVICE_PORT
expect_rc no-objects 2 dump && expect_grep no-objects err 'no Kubernetes API server configured'
expect_rc bad-format 2 dump --objects "$DIR/demo.yaml" --format xml && expect_grep bad-format err 'usage'
expect_rc bad-option 2 dump --objects "$DIR/demo.yaml" --no-such-option
expect_rc extra-arg 2 dump --objects "$DIR/demo.yaml" stray
expect_rc bad-level 2 dump --objects "$DIR/demo.yaml" --log-level loud
expect_rc no-command 2
expect_rc bad-command 2 no-such-command

# --- config errors: exit 3, FILE:LINE: key on stderr, nothing on stdout ---------------------------------------
cat >"$TMP/broken.yaml" <<'YAML'
apiVersion: v1alpha
cluster_config:
  base:
    connect_timeout: 2s
    no_such_field: 1
YAML
if expect_rc broken-config 3 dump --objects "$DIR/demo.yaml" --config broken.yaml; then
    expect_grep broken-config err 'broken\.yaml:5: cluster_config\.base\.no_such_field'
    [ -s "$TMP/broken-config.out" ] && fail "broken-config: something was printed on stdout" || pass
fi
cat >"$TMP/broken2.yaml" <<'YAML'
apiVersion: v1alpha
endpoint_config:
  include_not_ready: maybe
YAML
expect_rc broken-config2 3 dump --objects "$DIR/demo.yaml" --config broken2.yaml &&
    expect_grep broken-config2 err 'broken2\.yaml:3: endpoint_config\.include_not_ready'
expect_rc missing-config 3 dump --objects "$DIR/demo.yaml" --config no-such-config.yaml &&
    expect_grep missing-config err 'no-such-config\.yaml'

# --- an invalid object is skipped with a warning naming it; the rest is translated ----------------------------
cat >"$TMP/mixed.yaml" <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: good, namespace: shop}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: broken, namespace: shop}
spec:
  ports: [{name: http, port: 70000}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: good-1
  namespace: shop
  labels: {kubernetes.io/service-name: good}
addressType: IPv4
endpoints: [{addresses: [10.9.0.1]}]
ports: [{name: http, port: 8080}]
YAML
if expect_rc invalid-object 0 dump --objects mixed.yaml; then
    expect_grep invalid-object err 'Service shop/broken'
    expect_grep invalid-object err 'spec\.ports\[0\]\.port'
    expect_grep invalid-object out '"name": "shop:good:http"'
    expect_grep invalid-object out '"address": "10\.9\.0\.1"'
    grep -q 'shop:broken' "$TMP/invalid-object.out" && fail "invalid-object: shop/broken was translated" || pass
fi
expect_rc missing-objects 1 dump --objects no-such-file.yaml && expect_grep missing-objects err 'no-such-file\.yaml'

if [ "$failures" -ne 0 ]; then
    echo "golden: $failures failure(s), $checks check(s) passed" >&2
    exit 1
fi
echo "golden: $checks checks passed"
