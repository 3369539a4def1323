#!/usr/bin/python3
"""tests/deploy/deploy_test.py: static checks of ekglue's deploy artifacts (deploy/docker, deploy/kustomize,
deploy/helm) and of the examples in docs/getting-started.md. Nothing here needs a cluster, Docker or Helm.

  Dockerfile   stages (debian:bookworm builder running third_party/setup-deps.sh and a CMake Release build;
               debian:bookworm-slim runtime), no remote ADD, a numeric non-root USER, EXPOSE 18000 18001, the
               ENTRYPOINT, no build tools in the runtime stage, libgrpc29 pinned to the builder's version; every
               runtime package exists (`apt-cache show`), and every library `ldd ekglue` resolves belongs
               (`dpkg -S`) to a runtime package or to its Depends closure (`apt-cache depends --recurse`), each
               directly linked library's package being listed by name. Under strace (third_party/setup-deps.sh
               installs it), `ekglue serve` opens nothing for writing and creates nothing: it runs on a
               read-only root filesystem; stopped by SIGTERM, it exits 0 without a sanitizer report.
  kustomize    `kubectl kustomize` (or `kustomize build`) of base and overlays/monitoring (an allowed skip,
               tests/helpers/skips.py, without kubectl >= 1.21 or kustomize >= 4: Debian bookworm has neither):
               the kinds and names, namespaces, RBAC exactly get/list/watch on services, nodes and
               discovery.k8s.io endpointslices, bindings, securityContext, probes, resources, spreading, PDB,
               Service and container ports, the mounted ConfigMap, the command line (every flag is one of
               `ekglue serve`'s), prometheus.io annotations (base) versus the PodMonitor (overlay).
  ports        (docs/operations.md, "Ports") in kustomize's base, overlay and components/publish-metrics and in
               the chart: the debug port's views bound to 127.0.0.1 only (no container port, no branch of a
               template elsewhere), the metrics port on the pod IP, every probe on gRPC health of the xDS port or
               the metrics port's /healthz and /readyz, scraping on the metrics port, and the Service publishing
               xDS only (whatever its type) unless service.publishMetrics / the component adds the metrics port.
  Helm         Chart.yaml (appVersion = CMake's project version = kustomize's image tag), values.yaml against
               values.schema.json (a small draft-07 validator for the keywords the schema uses, and
               python3-jsonschema's) and schema violations that must be refused; every .Values path
               in the templates exists in values.yaml and in the schema, every value is used, no bare .Values
               inside range/with; the templates' YAML parses with the template actions stripped; the (kind,
               name) set equals kustomize's (base; + overlay with podMonitor.enabled), and the static parts of
               the Deployment, Service, RBAC and PDB equal kustomize's.
  config       the kustomize ekglue.yaml and the chart's inline config are the same and pass
               `ekglue check-config`.
  docs         every yaml/json block of docs/getting-started.md parses; the Envoy bootstrap uses ADS over gRPC
               (V3) with CDS from ADS (and its DELTA_GRPC fragment the same ADS cluster) and routes to clusters that `ekglue dump` of the demo cluster produces;
               the gRPC bootstrap names an xds_v3 server on port 18000.

Run by ctest (EKGLUE, EKG_SOURCE_DIR set), or directly: /usr/bin/python3 tests/deploy/deploy_test.py. Only
the two reasons in tests/helpers/skips.py's ALLOWED may skip in CI (kubectl, ptrace).
"""
import copy
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

import yaml
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import skips  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("EKG_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
DOCKERFILE = os.path.join(SRC, "deploy/docker/Dockerfile")
KUSTOMIZE_BASE = os.path.join(SRC, "deploy/kustomize/base")
KUSTOMIZE_MONITORING = os.path.join(SRC, "deploy/kustomize/overlays/monitoring")
CHART = os.path.join(SRC, "deploy/helm/ekglue")
GETTING_STARTED = os.path.join(SRC, "docs/getting-started.md")
DEMO_CLUSTER = os.path.join(SRC, "deploy/demo/cluster.yaml")

NAMESPACE = "ekglue-system"
BINARY = "/usr/local/bin/ekglue"
# xDS on the pod IP; the debug port (the topology views) on loopback only; the metrics port (/metrics, /healthz,
# /readyz) on the pod IP (docs/operations.md, "Ports").
XDS_PORT, DEBUG_PORT, METRICS_PORT = 18000, 18001, 18002
RUNTIME_PACKAGES = {"libgrpc29", "libcurl4", "libcjson1", "libyaml-0-2", "libmicrohttpd12", "ca-certificates"}
RBAC_WANT = {(g, r, v) for g, r in (("", "services"), ("", "nodes"), ("discovery.k8s.io", "endpointslices"))
             for v in ("get", "list", "watch")}
BASE_KINDS = {("Namespace", NAMESPACE), ("ServiceAccount", "ekglue"), ("ClusterRole", "ekglue"),
              ("ClusterRoleBinding", "ekglue"), ("ConfigMap", "ekglue-config"), ("Deployment", "ekglue"),
              ("PodDisruptionBudget", "ekglue"), ("Service", "ekglue")}
# `ekglue serve`'s flags, each taking a value; `ekglue serve --help` must list every one the manifests use.
SERVE_FLAGS = {"objects", "config", "xds-listen", "log-level", "threads", "kubeconfig", "context", "master",
               "namespace", "service-selector", "coalesce-ms", "coalesce-max-ms", "debug-listen", "tls-cert",
               "tls-key", "tls-client-ca", "metrics-listen"}
SANITIZER_LIBS = re.compile(r"^lib(asan|ubsan|tsan|lsan)\.so")


def ekglue_binary():
    """The ekglue binary ctest built (EKGLUE), else the newest build/*/ekglue, else None."""
    path = os.environ.get("EKGLUE")
    if path and os.access(path, os.X_OK):
        return os.path.abspath(path)
    found = [p for p in glob.glob(os.path.join(SRC, "build", "*", "ekglue")) if os.access(p, os.X_OK)]
    return max(found, key=os.path.getmtime) if found else None


def need_binary(testcase):
    """The ekglue binary, or an (unexpected: CI fails) skip when none is built; ctest always sets EKGLUE."""
    binary = ekglue_binary()
    if not binary:
        testcase.skipTest("no ekglue binary built (set EKGLUE, or build one under build/)")
    return binary


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=kw.pop("timeout", 120), **kw)


def project_version():
    with open(os.path.join(SRC, "CMakeLists.txt")) as f:
        m = re.search(r"project\(ekglue\s+VERSION\s+([0-9.]+)", f.read())
    return m.group(1)


# --- Dockerfile ------------------------------------------------------------------------------------------------

def parse_dockerfile(path):
    """[{'from': image, 'name': stage name or None, 'ins': [(INSTRUCTION, args), ...]}], continuations joined,
    comment lines (also inside continuations) dropped."""
    with open(path) as f:
        lines = f.read().split("\n")
    logical, cur = [], ""
    for line in lines:
        if line.strip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        if cur.strip():
            logical.append(cur.strip())
        cur = ""
    if cur.strip():
        logical.append(cur.strip())
    stages = []
    for line in logical:
        ins, _, args = line.partition(" ")
        ins, args = ins.upper(), args.strip()
        if ins == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append({"from": words[0], "name": name, "ins": []})
        elif stages:
            stages[-1]["ins"].append((ins, args))
        elif ins != "ARG":
            raise AssertionError("instruction before the first FROM: " + line)
    return stages


def apt_installs(run_args):
    """Packages (names without =version, quotes removed) of every `apt-get install` in a RUN."""
    pkgs = []
    for m in re.finditer(r"apt-get\s+install\b(.*?)(?:;|&&|\|\||$)", run_args):
        for tok in m.group(1).split():
            tok = tok.strip("'\"")
            if not tok or tok.startswith("-"):
                continue
            pkgs.append(tok.split("=", 1)[0])
    return pkgs


def setup_deps_packages():
    with open(os.path.join(SRC, "third_party/setup-deps.sh")) as f:
        m = re.search(r"^packages=\((.*?)^\)", f.read(), re.S | re.M)
    return {w for line in m.group(1).split("\n") for w in line.split("#", 1)[0].split()}


def path_variants(path):
    """A library path, its /usr twin (usrmerge: dpkg knows one of them) and its real path."""
    out = [path, "/usr" + path if path.startswith("/lib") else path[4:] if path.startswith("/usr/lib") else path]
    real = os.path.realpath(path)
    return out + [real, "/usr" + real if real.startswith("/lib") else real]


def dpkg_owners(paths):
    """{path: owning package or None}, with one `dpkg -S` for all of them."""
    variants = {p: path_variants(p) for p in paths}
    r = run(["dpkg", "-S"] + sorted({v for vs in variants.values() for v in vs}))
    owner = {}
    for line in r.stdout.split("\n"):
        pkgs, sep, path = line.partition(": ")
        if sep:
            owner[path.strip()] = pkgs.split(",")[0].split(":")[0].strip()
    return {p: next((owner[v] for v in vs if v in owner), None) for p, vs in variants.items()}


def depends_closure(pkgs):
    """pkgs plus everything they Depend/Pre-Depend on, recursively, per apt's cache."""
    r = run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
             "--no-breaks", "--no-replaces", "--no-enhances"] + sorted(pkgs))
    if r.returncode != 0:
        raise AssertionError("apt-cache depends failed: " + r.stderr)
    out = set()
    for line in r.stdout.split("\n"):
        if line and not line[0].isspace():
            out.add(line.strip().strip("<>").split(":", 1)[0])
        m = re.match(r"\s+\|?(?:Pre)?Depends:\s+<?([^>\s]+)>?", line)
        if m:
            out.add(m.group(1).split(":", 1)[0])
    return out


class DockerfileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stages = parse_dockerfile(DOCKERFILE)
        cls.builder, cls.final = cls.stages[0], cls.stages[-1]
        cls.runtime_pkgs = [p for ins, a in cls.final["ins"] if ins == "RUN" for p in apt_installs(a)]

    def test_stages(self):
        self.assertGreaterEqual(len(self.stages), 2)
        self.assertEqual(self.builder["from"], "debian:bookworm")
        self.assertEqual(self.builder["name"], "builder")
        self.assertEqual(self.final["from"], "debian:bookworm-slim")

    def test_no_remote_add(self):
        for st in self.stages:
            for ins, args in st["ins"]:
                if ins == "ADD":
                    self.assertNotRegex(args, r"(https?|ftp|git)://|git@", "ADD of a remote URL: " + args)

    def test_builder_installs_setup_deps_and_builds_release(self):
        runs = " ".join(a for ins, a in self.builder["ins"] if ins == "RUN")
        copies = " ".join(a for ins, a in self.builder["ins"] if ins == "COPY")
        if "setup-deps.sh" in runs:
            self.assertIn("third_party/setup-deps.sh", copies, "setup-deps.sh run but not copied in")
        else:
            missing = setup_deps_packages() - set(apt_installs(runs))
            self.assertFalse(missing, "builder lacks setup-deps.sh packages: %s" % sorted(missing))
        self.assertRegex(runs, r"cmake\s+.*-DCMAKE_BUILD_TYPE=Release\b")
        self.assertRegex(runs, r"cmake\s+--build\b")

    def test_runtime_stage(self):
        ins = self.final["ins"]
        users = [a for i, a in ins if i == "USER"]
        self.assertTrue(users, "no USER in the runtime stage")
        user = users[-1].split(":")
        self.assertRegex(user[0], r"^[0-9]+$", "USER must be numeric (runAsNonRoot checks the image's uid)")
        self.assertEqual(int(user[0]), 65532)
        if len(user) > 1:
            self.assertNotEqual(int(user[1]), 0)
        last_run = max(i for i, (n, _) in enumerate(ins) if n == "RUN")
        last_user = max(i for i, (n, _) in enumerate(ins) if n == "USER")
        self.assertGreater(last_user, last_run, "USER must come after the last RUN")
        exposed = {int(p.split("/")[0]) for i, a in ins if i == "EXPOSE" for p in a.split()}
        self.assertEqual(exposed, {XDS_PORT, METRICS_PORT})
        entry = [a for i, a in ins if i == "ENTRYPOINT"]
        self.assertEqual(len(entry), 1)
        self.assertEqual(json.loads(entry[0]), [BINARY, "serve"])
        copies = [a for i, a in ins if i == "COPY"]
        self.assertTrue(any(a.startswith("--from=builder") and a.split()[-1] == BINARY for a in copies),
                        "the binary is not copied from the builder to " + BINARY)
        self.assertFalse([i for i, _ in ins if i == "VOLUME"], "no VOLUME: nothing is written at runtime")
        runs = " ".join(a for i, a in ins if i == "RUN")
        self.assertIn("rm -rf /var/lib/apt/lists", runs)
        self.assertRegex(runs, r"--no-install-recommends")
        self.assertRegex(runs, r"libgrpc29=\$\{?grpc_version", "libgrpc29 must be pinned to the builder's")

    def test_runtime_packages_listed_and_no_build_tools(self):
        self.assertEqual(len(self.runtime_pkgs), len(set(self.runtime_pkgs)))
        self.assertTrue(RUNTIME_PACKAGES <= set(self.runtime_pkgs),
                        "missing: %s" % sorted(RUNTIME_PACKAGES - set(self.runtime_pkgs)))
        for p in self.runtime_pkgs:
            self.assertFalse(p.endswith("-dev") or p in ("build-essential", "cmake", "gcc", "clang", "make"),
                             "build tool in the runtime stage: " + p)

    def test_runtime_packages_exist(self):
        if not shutil.which("apt-cache"):
            self.skipTest("apt-cache not available (not a Debian system?)")
        for p in self.runtime_pkgs:
            r = run(["apt-cache", "show", p])
            self.assertEqual(r.returncode, 0, "apt-cache show %s: %s" % (p, r.stderr.strip()))
            self.assertIn("Package: " + p, r.stdout)

    def test_ldd_covered_by_runtime_packages(self):
        binary = need_binary(self)
        if not (shutil.which("ldd") and shutil.which("dpkg") and shutil.which("apt-cache")):
            self.skipTest("ldd, dpkg or apt-cache not available (not a Debian system?)")
        r = run(["ldd", binary])
        self.assertEqual(r.returncode, 0, r.stderr)
        closure = depends_closure(self.runtime_pkgs)
        needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run(["readelf", "-d", binary]).stdout))
        libs = []
        for line in r.stdout.split("\n"):
            m = re.match(r"\s*(\S+)\s+=>\s+(\S+)\s+\(", line)
            if not m:
                self.assertNotIn("not found", line)
            elif not SANITIZER_LIBS.match(m.group(1)):  # an ASan/TSan build's runtime; the image's has none
                libs.append(m.groups())
        owners = dpkg_owners([path for _, path in libs])
        checked = 0
        for soname, path in libs:
            pkg = owners[path]
            self.assertIsNotNone(pkg, "no package owns %s (%s)" % (soname, path))
            self.assertIn(pkg, closure, "%s comes from %s, which the runtime stage does not install" % (soname, pkg))
            if soname in needed and pkg not in ("libc6",):
                self.assertIn(pkg, self.runtime_pkgs, "%s is linked directly: list %s by name" % (soname, pkg))
            checked += 1
        self.assertGreater(checked, 5)
        self.assertIn("libmicrohttpd.so.12", needed, "the debug port's libmicrohttpd12 is installed but not linked")

    def test_dockerignore(self):
        with open(DOCKERFILE + ".dockerignore") as f:
            entries = {l.strip() for l in f if l.strip() and not l.startswith("#")}
        self.assertIn("build", entries)
        self.assertIn(".git", entries)

    def test_serve_writes_nothing(self):
        """The image runs with readOnlyRootFilesystem: `ekglue serve` must not create or open files for writing.
        Kubernetes mode (with an unreachable API, so the watcher retries) and file mode, with the debug port,
        for 2.5 s each; then SIGTERM, and the exit status must be 0 with no sanitizer report."""
        binary = need_binary(self)
        if not shutil.which("strace"):
            self.skipTest("strace is not installed (third_party/setup-deps.sh installs it)")
        probe = run(["strace", "-f", "-o", "/dev/null", "true"])
        if probe.returncode != 0:
            if "Operation not permitted" not in probe.stderr:
                self.fail("strace cannot run: " + probe.stderr)
            skips.allowed("ptrace", probe.stderr.strip().split("\n")[-1])
        # LeakSanitizer stops the world with ptrace, which cannot work under strace ("LeakSanitizer does not work
        # under ptrace"): no leak check here (every other test that stops ekglue has one); any other report counts.
        env = {"PATH": "/usr/bin:/bin", "UBSAN_OPTIONS": os.environ.get("UBSAN_OPTIONS", ""),
               "ASAN_OPTIONS": ":".join(o for o in (os.environ.get("ASAN_OPTIONS"), "detect_leaks=0") if o)}
        extra = ["--debug-listen", "127.0.0.1:0"]
        for args in (["--master", "http://127.0.0.1:9"] + extra, ["--objects", DEMO_CLUSTER] + extra):
            with tempfile.TemporaryDirectory() as tmp:
                log = os.path.join(tmp, "trace")
                # timeout(1) sends ekglue its SIGTERM (a signal to strace would only detach it) and, with
                # --preserve-status, exits with ekglue's status, which strace passes on; the session is killed
                # whole should anything hang. ekglue's stderr (and strace's) is kept for failures. The file is
                # opened here: ekglue itself must not open it.
                with open(os.path.join(tmp, "stderr"), "w+b") as err:
                    p = subprocess.Popen(["strace", "-f", "-qq", "-o", log, "-e",
                                          "trace=open,openat,creat,mkdir,mkdirat,unlink,unlinkat,rename,renameat,"
                                          "renameat2,truncate", "timeout", "--preserve-status", "-s", "TERM",
                                          "-k", "10", "2.5", binary, "serve", "--xds-listen", "127.0.0.1:0"] + args,
                                         stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=tmp,
                                         start_new_session=True)
                    hung = False
                    try:
                        p.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        os.killpg(p.pid, signal.SIGKILL)
                        p.wait()
                        hung = True
                    err.seek(0)
                    errtext = err.read().decode("utf-8", "replace")
                    stderr = ("\n--- stderr of ekglue serve %s under strace (exit %s) ---\n%s\n--- end ---" %
                              (" ".join(args), p.returncode, errtext))
                if hung:
                    self.fail("ekglue serve %s did not stop on SIGTERM%s" % (" ".join(args), stderr))
                self.assertEqual(p.returncode, 0, "ekglue serve %s did not exit 0 on SIGTERM%s" %
                                 (" ".join(args), stderr))
                for marker in ("Sanitizer", "runtime error:"):
                    self.assertNotIn(marker, errtext, "a sanitizer report" + stderr)
                with open(log) as f:
                    trace = f.read()
            self.assertRegex(trace, r"open(at)?\(.*libgrpc\.so", "the trace saw nothing" + stderr)
            if "--objects" in args:
                self.assertIn(DEMO_CLUSTER, trace)
            bad = []
            for line in trace.split("\n"):
                if re.search(r"\b(creat|mkdir|mkdirat|unlink|unlinkat|rename|renameat|renameat2|truncate)\(", line):
                    bad.append(line)
                elif re.search(r"\bopen(at)?\(.*O_(WRONLY|RDWR|CREAT)", line):
                    if not re.search(r'"/(dev|proc|sys)/', line):
                        bad.append(line)
            self.assertFalse(bad, "ekglue serve %s writes files:\n%s%s" % (" ".join(args), "\n".join(bad[:10]),
                                                                       stderr))


# --- kustomize ----------------------------------------------------------------------------------------------

def kustomize_command():
    """(argv prefix, None) to render a kustomization, or (None, why not). kubectl embeds kustomize v4+ from
    1.21 on; older ones (Debian bookworm's kubernetes-client is 1.20, kustomize v2.0.3) lack `patches`."""
    if shutil.which("kubectl"):
        r = run(["kubectl", "version", "--client", "-o", "json"])
        try:
            v = json.loads(r.stdout)["clientVersion"]
            major, minor = int(v["major"]), int(re.match(r"[0-9]+", v["minor"]).group(0))
        except (ValueError, KeyError, AttributeError):
            major, minor = 0, 0
        if (major, minor) >= (1, 21):
            return ["kubectl", "kustomize"], None
        why = "kubectl %s.%s embeds a kustomize older than v4" % (major, minor)
    else:
        why = "kubectl not found"
    if shutil.which("kustomize"):
        return ["kustomize", "build"], None
    return None, why + "; no kustomize on PATH"


KUSTOMIZE, NO_KUSTOMIZE = kustomize_command()


def kustomize(path):
    r = run(KUSTOMIZE + [path])
    if r.returncode != 0:
        raise AssertionError("%s %s: %s" % (" ".join(KUSTOMIZE), path, r.stderr))
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def find(docs, kind, name=None):
    got = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    if len(got) != 1:
        raise AssertionError("expected one %s %s, found %d" % (kind, name or "", len(got)))
    return got[0]


def strip_hash(kind, name):
    """kustomize's configMapGenerator appends -<10 char content hash>."""
    return re.sub(r"-[a-z0-9]{10}$", "", name) if kind == "ConfigMap" else name


def kind_names(docs):
    return {(d["kind"], strip_hash(d["kind"], d["metadata"]["name"])) for d in docs}


def rbac_triples(role):
    out = set()
    for rule in role["rules"]:
        if set(rule) - {"apiGroups", "resources", "verbs"}:
            raise AssertionError("unexpected rule keys (resourceNames, nonResourceURLs?): %s" % rule)
        for g in rule["apiGroups"]:
            for r in rule["resources"]:
                for v in rule["verbs"]:
                    out.add((g, r, v))
    return out


def quantity(q):
    q = str(q)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    for u, f in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if q.endswith(u):
            return float(q[:-len(u)]) * f
    return float(q)


def parse_args(args):
    """[(flag, value)] of a command line after `serve`; every flag takes a value (--x=v or --x v)."""
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--"):
            raise AssertionError("stray argument %r" % a)
        if "=" in a:
            k, v = a[2:].split("=", 1)
        else:
            k, v = a[2:], args[i + 1]
            i += 1
        out.append((k, v))
        i += 1
    return out


def serve_help_flags(testcase):
    r = run([need_binary(testcase), "serve", "--help"])
    testcase.assertEqual(r.returncode, 0, "ekglue serve --help: " + r.stderr)
    return set(re.findall(r"^\s+--([a-z][a-z-]*)", r.stdout + r.stderr, re.M))


def check_flags(testcase, flags):
    """Every flag is one SERVE_FLAGS knows and one `ekglue serve --help` of the built binary lists."""
    for k, _ in flags:
        testcase.assertIn(k, SERVE_FLAGS, "unknown ekglue serve flag --" + k)
    documented = serve_help_flags(testcase)
    for k, _ in flags:
        testcase.assertIn(k, documented, "--%s is not in `ekglue serve --help`" % k)


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def check_deployment(t, dep, docs, namespace):
    spec, pod = dep["spec"], dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    t.assertEqual(spec["replicas"], 2)
    t.assertTrue(selects(spec["selector"]["matchLabels"], labels))
    t.assertEqual(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0)
    sa = find(docs, "ServiceAccount", pod["serviceAccountName"])
    t.assertEqual(sa["metadata"]["namespace"], namespace)
    t.assertNotEqual(pod.get("automountServiceAccountToken"), False, "ekglue needs its token in-cluster")
    psc = pod["securityContext"]
    t.assertIs(psc["runAsNonRoot"], True)
    t.assertEqual(psc["runAsUser"], 65532)
    t.assertEqual(psc["seccompProfile"]["type"], "RuntimeDefault")
    t.assertFalse(pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"))
    # Spread over zones: topologySpreadConstraints or pod anti-affinity on the zone label.
    zone = "topology.kubernetes.io/zone"
    tsc = [c for c in pod.get("topologySpreadConstraints", []) if c["topologyKey"] == zone]
    anti = pod.get("affinity", {}).get("podAntiAffinity", {})
    anti_terms = [x.get("podAffinityTerm", x) for k in anti.values() for x in k]
    t.assertTrue(tsc or any(x["topologyKey"] == zone for x in anti_terms), "replicas not spread over zones")
    for c in tsc:
        t.assertTrue(selects(c["labelSelector"]["matchLabels"], labels))
    t.assertEqual(len(pod["containers"]), 1)
    c = pod["containers"][0]
    t.assertEqual(c["command"], [BINARY], "command must be the binary alone, args start with serve "
                  "(ENTRYPOINT is [ekglue, serve]; args alone would be appended to it)")
    t.assertEqual(c["args"][0], "serve")
    flags = parse_args(c["args"][1:])
    check_flags(t, flags)
    fl = dict(flags)
    t.assertEqual(fl.get("xds-listen", "0.0.0.0:18000"), "0.0.0.0:%d" % XDS_PORT)
    t.assertEqual(fl.get("debug-listen"), "127.0.0.1:%d" % DEBUG_PORT)
    t.assertEqual(fl.get("metrics-listen"), "0.0.0.0:%d" % METRICS_PORT)
    # The config file comes from a mounted ConfigMap holding that key.
    cfg = fl["config"]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    mp = os.path.dirname(cfg)
    t.assertIn(mp, mounts)
    t.assertTrue(mounts[mp].get("readOnly"))
    vol = {v["name"]: v for v in pod["volumes"]}[mounts[mp]["name"]]
    t.assertFalse([v for v in pod["volumes"] if "hostPath" in v])
    cm = find(docs, "ConfigMap", vol["configMap"]["name"])
    t.assertIn(os.path.basename(cfg), cm["data"])
    # Ports.
    ports = {p["name"]: p for p in c["ports"]}
    t.assertEqual(ports["grpc"]["containerPort"], XDS_PORT)
    t.assertEqual(ports["metrics"]["containerPort"], METRICS_PORT)
    # Probes: gRPC health on the xDS port (readiness = first sync done).
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        t.assertIn(probe, c)
        t.assertEqual(c[probe].get("grpc"), {"port": XDS_PORT}, probe)
        t.assertNotIn("service", c[probe]["grpc"])
    t.assertGreaterEqual(c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"], 60,
                         "the first sync of a big cluster needs time before liveness counts")
    # Resources.
    res = c["resources"]
    for r in ("cpu", "memory"):
        t.assertIn(r, res["requests"])
        t.assertIn(r, res["limits"])
        t.assertLessEqual(quantity(res["requests"][r]), quantity(res["limits"][r]))
    # Container securityContext.
    sc = c["securityContext"]
    t.assertIs(sc["runAsNonRoot"], True)
    t.assertIs(sc["readOnlyRootFilesystem"], True)
    t.assertIs(sc["allowPrivilegeEscalation"], False)
    t.assertFalse(sc.get("privileged", False))
    t.assertEqual(sc["capabilities"]["drop"], ["ALL"])
    t.assertFalse(sc["capabilities"].get("add"))
    t.assertEqual(sc["seccompProfile"]["type"], "RuntimeDefault")
    t.assertNotEqual(sc.get("runAsUser", psc.get("runAsUser")), 0)
    return labels


class KustomizeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if KUSTOMIZE:
            cls.base = kustomize(KUSTOMIZE_BASE)
            cls.mon = kustomize(KUSTOMIZE_MONITORING)

    def setUp(self):
        if not KUSTOMIZE:
            skips.allowed("kubectl", NO_KUSTOMIZE)

    def test_kinds_and_namespaces(self):
        self.assertEqual(kind_names(self.base), BASE_KINDS)
        self.assertEqual(kind_names(self.mon), BASE_KINDS | {("PodMonitor", "ekglue")})
        cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
        for d in self.base + self.mon:
            if d["kind"] in cluster_scoped:
                self.assertNotIn("namespace", d["metadata"])
            else:
                self.assertEqual(d["metadata"].get("namespace"), NAMESPACE, d["kind"])

    def test_rbac(self):
        role = find(self.base, "ClusterRole")
        self.assertEqual(rbac_triples(role), RBAC_WANT)
        binding = find(self.base, "ClusterRoleBinding")
        self.assertEqual(binding["roleRef"], {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                              "name": role["metadata"]["name"]})
        self.assertEqual(binding["subjects"], [{"kind": "ServiceAccount", "name": "ekglue", "namespace": NAMESPACE}])
        self.assertFalse([d for d in self.base if d["kind"] in ("Role", "RoleBinding")])

    def test_deployment(self):
        dep = find(self.base, "Deployment", "ekglue")
        check_deployment(self, dep, self.base, NAMESPACE)
        self.assertEqual(dep["spec"]["template"]["spec"]["containers"][0]["image"], "ekglue:" + project_version())
        ann = dep["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(ann["prometheus.io/scrape"], "true")
        self.assertEqual(ann["prometheus.io/port"], str(METRICS_PORT))
        self.assertEqual(ann["prometheus.io/path"], "/metrics")

    def test_pdb(self):
        dep = find(self.base, "Deployment", "ekglue")
        pdb = find(self.base, "PodDisruptionBudget")
        self.assertEqual(pdb["apiVersion"], "policy/v1")
        self.assertEqual(pdb["spec"]["minAvailable"], 1)
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"], dep["spec"]["selector"]["matchLabels"])
        self.assertGreater(dep["spec"]["replicas"], pdb["spec"]["minAvailable"], "the PDB would block drains")

    def test_service(self):
        dep = find(self.base, "Deployment", "ekglue")
        svc = find(self.base, "Service", "ekglue")
        self.assertTrue(selects(svc["spec"]["selector"], dep["spec"]["template"]["metadata"]["labels"]))
        cports = {p["name"]: p["containerPort"] for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]}
        got = {}
        for p in svc["spec"]["ports"]:
            self.assertEqual(p.get("protocol", "TCP"), "TCP")
            tp = p["targetPort"]
            got[p["name"]] = (p["port"], cports[tp] if isinstance(tp, str) else tp)
        self.assertEqual(got, {"grpc": (XDS_PORT, XDS_PORT)})

    def test_config(self):
        cm = find(self.base, "ConfigMap")
        cfg = yaml.safe_load(cm["data"]["ekglue.yaml"])
        self.assertEqual(cfg["apiVersion"], "v1alpha")

    def test_monitoring_overlay(self):
        pm = find(self.mon, "PodMonitor", "ekglue")
        self.assertEqual(pm["apiVersion"], "monitoring.coreos.com/v1")
        dep = find(self.mon, "Deployment", "ekglue")
        labels = dep["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(selects(pm["spec"]["selector"]["matchLabels"], labels))
        eps = pm["spec"]["podMetricsEndpoints"]
        self.assertEqual(len(eps), 1)
        cports = {p["name"]: p["containerPort"] for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]}
        self.assertEqual(cports[eps[0]["port"]], METRICS_PORT)
        self.assertEqual(eps[0]["path"], "/metrics")
        ann = dep["spec"]["template"]["metadata"].get("annotations") or {}
        self.assertFalse([k for k in ann if k.startswith("prometheus.io/")], "scraped twice: annotations + PodMonitor")
        # Apart from the annotations, the overlay's objects are the base's.
        base = {(d["kind"], d["metadata"]["name"]): d for d in self.base}
        for d in self.mon:
            if d["kind"] == "PodMonitor":
                continue
            want = copy.deepcopy(base[(d["kind"], d["metadata"]["name"])])
            if d["kind"] == "Deployment":
                want["spec"]["template"]["metadata"]["annotations"] = ann
            self.assertEqual(d, want, d["kind"])

    # --- who sees what, on which port (docs/operations.md, "Ports") ---

    def with_publish_metrics(self, overlay):
        """overlay + components/publish-metrics, rendered from a kustomization in a temporary directory."""
        with tempfile.TemporaryDirectory() as tmp:
            rel = os.path.relpath(SRC, tmp)  # kustomize refuses absolute paths
            with open(os.path.join(tmp, "kustomization.yaml"), "w") as f:
                yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                                "resources": [os.path.join(rel, overlay)],
                                "components": [os.path.join(rel, "deploy/kustomize/components/publish-metrics")]}, f)
            return kustomize(tmp)

    def check_ports(self, docs, published):
        """The topology views are bound to loopback only; the pod IP has xDS and the metrics port; probes and
        scraping use those; the Service publishes xDS, plus the metrics port when published."""
        dep = find(docs, "Deployment", "ekglue")
        c = dep["spec"]["template"]["spec"]["containers"][0]
        cports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(cports, {"grpc": XDS_PORT, "metrics": METRICS_PORT},
                         "the debug port is loopback only: no container port for it")
        listens = {k: v for k, v in parse_args(c["args"][1:]) if k.endswith("-listen")}
        self.assertEqual(listens, {"xds-listen": "0.0.0.0:%d" % XDS_PORT, "metrics-listen": "0.0.0.0:%d" % METRICS_PORT,
                                   "debug-listen": "127.0.0.1:%d" % DEBUG_PORT})
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = c[probe]
            if "httpGet" in p:
                port = p["httpGet"]["port"]
                self.assertEqual(cports.get(port, port), METRICS_PORT, probe)
                self.assertIn(p["httpGet"]["path"], ("/healthz", "/readyz"), probe)
            else:
                self.assertEqual(p["grpc"], {"port": XDS_PORT}, probe)
        ann = dep["spec"]["template"]["metadata"].get("annotations") or {}
        if "prometheus.io/port" in ann:
            self.assertEqual(ann["prometheus.io/port"], str(METRICS_PORT))
        for pm in (d for d in docs if d["kind"] == "PodMonitor"):
            for ep in pm["spec"]["podMetricsEndpoints"]:
                self.assertEqual(cports.get(ep["port"]), METRICS_PORT)
        services = [d for d in docs if d["kind"] == "Service"]
        self.assertEqual(len(services), 1)
        got = {p["name"]: (p["port"], cports.get(p["targetPort"], p["targetPort"])) for p in services[0]["spec"]["ports"]}
        want = {"grpc": (XDS_PORT, XDS_PORT)}
        if published:
            want["metrics"] = (METRICS_PORT, METRICS_PORT)
        self.assertEqual(got, want)
        self.assertFalse([d["kind"] for d in docs if d["kind"] in ("Ingress", "Route", "HTTPRoute", "NetworkPolicy")])

    def test_ports_base_and_monitoring(self):
        self.check_ports(self.base, published=False)
        self.check_ports(self.mon, published=False)

    def test_publish_metrics_component(self):
        for overlay in ("deploy/kustomize/base", "deploy/kustomize/overlays/monitoring"):
            docs = self.with_publish_metrics(overlay)
            self.check_ports(docs, published=True)
            # Only the Service changed.
            plain = {(d["kind"], d["metadata"]["name"]): d for d in kustomize(os.path.join(SRC, overlay))}
            for d in docs:
                if d["kind"] != "Service":
                    self.assertEqual(d, plain[(d["kind"], d["metadata"]["name"])], d["kind"])


# --- JSON Schema (the draft-07 subset values.schema.json uses) ----------------------------------------------

TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def type_ok(v, t):
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return isinstance(v, TYPES[t])


SUPPORTED = {"$schema", "title", "description", "type", "properties", "required", "additionalProperties",
             "items", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern", "uniqueItems", "if", "then",
             "else"}


def validate(v, s, path="$"):
    """Errors (list of strings) of value v against schema s."""
    unknown = set(s) - SUPPORTED
    if unknown:
        raise AssertionError("validator does not support %s at %s" % (sorted(unknown), path))
    errs = []
    if "type" in s:
        ts = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if not any(type_ok(v, t) for t in ts):
            return ["%s: %r is not of type %s" % (path, v, "|".join(ts))]
    if "enum" in s and v not in s["enum"]:
        errs.append("%s: %r not in %s" % (path, v, s["enum"]))
    if isinstance(v, str):
        if len(v) < s.get("minLength", 0):
            errs.append("%s: shorter than %d" % (path, s["minLength"]))
        if "maxLength" in s and len(v) > s["maxLength"]:
            errs.append("%s: longer than %d" % (path, s["maxLength"]))
        if "pattern" in s and not re.search(s["pattern"], v):
            errs.append("%s: %r does not match %s" % (path, v, s["pattern"]))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if "minimum" in s and v < s["minimum"]:
            errs.append("%s: %r < %r" % (path, v, s["minimum"]))
        if "maximum" in s and v > s["maximum"]:
            errs.append("%s: %r > %r" % (path, v, s["maximum"]))
    if isinstance(v, dict):
        for k in s.get("required", []):
            if k not in v:
                errs.append("%s: %s is required" % (path, k))
        props = s.get("properties", {})
        for k, x in v.items():
            if k in props:
                errs += validate(x, props[k], "%s.%s" % (path, k))
            elif s.get("additionalProperties") is False:
                errs.append("%s: unknown key %s" % (path, k))
            elif isinstance(s.get("additionalProperties"), dict):
                errs += validate(x, s["additionalProperties"], "%s.%s" % (path, k))
    if isinstance(v, list):
        if "items" in s:
            for i, x in enumerate(v):
                errs += validate(x, s["items"], "%s[%d]" % (path, i))
        if s.get("uniqueItems") and len({json.dumps(x, sort_keys=True) for x in v}) != len(v):
            errs.append("%s: items not unique" % path)
    if "if" in s:
        if not validate(v, s["if"], path):
            errs += validate(v, s.get("then", {}), path)
        else:
            errs += validate(v, s.get("else", {}), path)
    return errs


# --- Helm ---------------------------------------------------------------------------------------------------

ACTION = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)
BLOCK_OPEN = re.compile(r"^(if|range|with|define|block)\b")


def read_templates():
    out = {}
    for p in sorted(glob.glob(os.path.join(CHART, "templates", "*"))):
        with open(p) as f:
            out[os.path.basename(p)] = f.read()
    return out


def values_paths(text):
    """{(path tuple, bare)} of every .Values.a.b in text; bare: not written $.Values."""
    out = set()
    for m in re.finditer(r"(\$?)\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
        out.add((tuple(m.group(2)[1:].split(".")), m.group(1) == ""))
    return out


def strip_template(text, release="ekglue", namespace=NAMESPACE):
    """The template's static YAML: lines holding only actions dropped, .Release.Name/.Namespace substituted,
    other inline actions replaced by a placeholder scalar."""
    out = []
    for line in text.split("\n"):
        if line.strip() and not ACTION.sub("", line).strip():
            continue
        line = re.sub(r"{{-?\s*\.Release\.Name\s*-?}}", release, line)
        line = re.sub(r"{{-?\s*\.Release\.Namespace\s*-?}}", namespace, line)
        line = ACTION.sub("TEMPLATED", line)
        out.append(line)
    return "\n".join(out)


# Values that values.schema.json must refuse: (dotted path, value).
SCHEMA_VIOLATIONS = [
    ("replicaCount", 0), ("replicaCount", "two"), ("nosuchkey", 1), ("logLevel", "verbose"),
    ("image.pullPolicy", "Sometimes"), ("image.repository", ""), ("tls.enabled", "yes"),
    ("tls.enabled", True),  # without secretName
    ("config.apiVersion", "v1"), ("config.cluster_confg", {}), ("watchNamespaces", ["Shop"]),
    ("watchNamespaces", ["a", "a"]), ("extraArgs", ["serve"]), ("podMonitor.interval", "30"),
    ("podDisruptionBudget.enabled", None), ("resources.request", {}),
]


def file_guard(text):
    """The .Values path of a whole-file `{{- if .Values.x.y }} ... {{- end }}`, or None."""
    lines = [l for l in text.strip().split("\n") if l.strip()]
    m = re.match(r"^{{-?\s*if\s+\.Values\.([A-Za-z0-9_.]+)\s*-?}}$", lines[0].strip())
    if m and re.match(r"^{{-?\s*end\s*-?}}$", lines[-1].strip()):
        return tuple(m.group(1).split("."))
    return None


def lookup(d, path):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            raise KeyError(".".join(path))
        d = d[k]
    return d


def schema_lookup(s, path):
    for k in path:
        props = s.get("properties", {})
        if k not in props:
            raise KeyError(".".join(path))
        s = props[k]
    return s


class HelmTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(CHART, "Chart.yaml")) as f:
            cls.chart = yaml.safe_load(f)
        with open(os.path.join(CHART, "values.yaml")) as f:
            cls.values = yaml.safe_load(f)
        with open(os.path.join(CHART, "values.schema.json")) as f:
            cls.schema = json.load(f)
        cls.templates = read_templates()
        cls.docs = {}  # template file -> static docs
        for name, text in cls.templates.items():
            if name.endswith(".yaml"):
                cls.docs[name] = [d for d in yaml.safe_load_all(strip_template(text)) if d]

    def helm_objects(self, values):
        """(kind, name) of what the chart renders for these values (whole-file guards evaluated)."""
        out = set()
        for name, docs in self.docs.items():
            guard = file_guard(self.templates[name])
            if guard and not lookup(values, guard):
                continue
            out |= {(d["kind"], d["metadata"]["name"]) for d in docs}
        return out

    def helm_doc(self, kind):
        got = [d for docs in self.docs.values() for d in docs if d["kind"] == kind]
        self.assertEqual(len(got), 1, kind)
        return got[0]

    def test_chart(self):
        self.assertEqual(self.chart["apiVersion"], "v2")
        self.assertEqual(self.chart["name"], "ekglue")
        self.assertRegex(self.chart["version"], r"^[0-9]+\.[0-9]+\.[0-9]+")
        self.assertEqual(self.chart["appVersion"], project_version())
        with open(os.path.join(KUSTOMIZE_BASE, "kustomization.yaml")) as f:
            kz = yaml.safe_load(f)
        self.assertEqual([i["newTag"] for i in kz["images"] if i["name"] == "ekglue"], [project_version()])
        self.assertIn("NOTES.txt", self.templates)

    def test_values_match_schema(self):
        self.assertEqual(validate(self.values, self.schema), [])
        self.assertEqual(set(self.values), set(self.schema["properties"]),
                         "every schema property has a default in values.yaml and vice versa")

    def violations(self):
        """values.yaml with one violation of the schema each (path, value, the values)."""
        for path, val in SCHEMA_VIOLATIONS:
            v = copy.deepcopy(self.values)
            *parent, last = path.split(".")
            lookup(v, parent)[last] = val
            yield path, val, v

    def good_variant(self):
        v = copy.deepcopy(self.values)
        v["tls"] = {"enabled": True, "secretName": "ekglue-tls", "clientCA": True}
        v["watchNamespaces"] = ["shop", "payments"]
        v["podMonitor"]["enabled"] = True
        return v

    def test_schema_refuses(self):
        for path, val, v in self.violations():
            self.assertTrue(validate(v, self.schema), "schema accepts %s=%r" % (path, val))
        self.assertEqual(validate(self.good_variant(), self.schema), [])

    def test_schema_with_jsonschema(self):
        """The same verdicts from an independent draft-07 validator (Helm's own is a Go one)."""
        try:
            import jsonschema
        except ImportError:
            self.skipTest("python3-jsonschema is not installed (third_party/setup-deps.sh installs it)")
        jsonschema.Draft7Validator.check_schema(self.schema)
        validator = jsonschema.Draft7Validator(self.schema)
        self.assertEqual([e.message for e in validator.iter_errors(self.values)], [])
        self.assertEqual([e.message for e in validator.iter_errors(self.good_variant())], [])
        for path, val, v in self.violations():
            self.assertFalse(validator.is_valid(v), "jsonschema accepts %s=%r" % (path, val))

    def test_template_values_paths(self):
        used = set()
        for name, text in self.templates.items():
            for path, _ in values_paths(text):
                used.add(path[0])
                try:
                    lookup(self.values, path)
                except KeyError:
                    self.fail("%s uses .Values.%s, which values.yaml lacks" % (name, ".".join(path)))
                try:
                    schema_lookup(self.schema, path)
                except KeyError:
                    self.fail("%s uses .Values.%s, which the schema lacks" % (name, ".".join(path)))
        self.assertEqual(used, set(self.values), "values.yaml keys no template uses: %s" % (set(self.values) - used))

    def test_template_blocks(self):
        """Balanced blocks, and no bare .Values where range/with rebinds the dot."""
        for name, text in self.templates.items():
            stack = []
            for m in ACTION.finditer(text):
                act = m.group(1)
                if act.startswith("/*"):
                    continue
                if BLOCK_OPEN.match(act):
                    stack.append(BLOCK_OPEN.match(act).group(1))
                elif re.match(r"^end\b", act):
                    self.assertTrue(stack, "%s: unbalanced end" % name)
                    stack.pop()
                if any(b in ("range", "with") for b in stack) and not BLOCK_OPEN.match(act):
                    bare = [p for p, b in values_paths(act) if b]
                    self.assertFalse(bare, "%s: .Values inside range/with (use $.Values): %s" % (name, act))
            self.assertEqual(stack, [], "%s: unclosed %s" % (name, stack))

    def test_parity_with_kustomize(self):
        if not KUSTOMIZE:
            skips.allowed("kubectl", NO_KUSTOMIZE)
        # Helm does not create its release namespace (helm install --create-namespace does).
        base = kind_names(kustomize(KUSTOMIZE_BASE)) - {("Namespace", NAMESPACE)}
        mon = kind_names(kustomize(KUSTOMIZE_MONITORING)) - {("Namespace", NAMESPACE)}
        self.assertEqual(self.helm_objects(self.values), base)
        v = copy.deepcopy(self.values)
        v["podMonitor"]["enabled"] = True
        self.assertEqual(self.helm_objects(v), mon)

    def test_static_parts_equal_kustomize(self):
        if not KUSTOMIZE:
            skips.allowed("kubectl", NO_KUSTOMIZE)
        kz = kustomize(KUSTOMIZE_MONITORING)
        kdep, hdep = find(kz, "Deployment"), self.helm_doc("Deployment")
        kpod, hpod = kdep["spec"]["template"]["spec"], hdep["spec"]["template"]["spec"]
        for key in ("securityContext", "topologySpreadConstraints", "serviceAccountName",
                    "automountServiceAccountToken", "enableServiceLinks", "terminationGracePeriodSeconds"):
            self.assertEqual(hpod[key], kpod[key], key)
        self.assertEqual(hdep["spec"]["strategy"], kdep["spec"]["strategy"])
        self.assertEqual(hdep["spec"]["selector"], kdep["spec"]["selector"])
        kc, hc = kpod["containers"][0], hpod["containers"][0]
        for key in ("name", "command", "ports", "securityContext", "lifecycle"):
            self.assertEqual(hc[key], kc[key], key)
        # Static args equal kustomize's, apart from log level's value.
        hstatic = [a for a in hc["args"] if "TEMPLATED" not in a and not a.startswith("--tls-")]
        self.assertEqual(hstatic, [a for a in kc["args"] if not a.startswith("--log-level")])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            h = dict(hc[probe])
            self.assertEqual(h.pop("grpc"), kc[probe]["grpc"])
            self.assertIn(h.pop("httpGet")["port"], [p["name"] for p in hc["ports"]])  # the TLS branch
            self.assertEqual(h, {k: x for k, x in kc[probe].items() if k != "grpc"}, probe)
        self.assertEqual(self.values["resources"], kc["resources"])
        # Service, RBAC, PDB and PodMonitor.
        for kind in ("Service", "PodDisruptionBudget", "PodMonitor"):
            h, k = self.helm_doc(kind), find(kz, kind)
            h, k = copy.deepcopy(h["spec"]), copy.deepcopy(k["spec"])
            if kind == "Service":
                h = self.service_spec(self.values)  # default values: the metrics port is not published
                self.assertEqual(h.pop("type"), "TEMPLATED")
                k.pop("type", None)
            if kind == "PodDisruptionBudget":
                self.assertEqual(self.values["podDisruptionBudget"]["minAvailable"], k.pop("minAvailable"))
                h.pop("minAvailable")
            if kind == "PodMonitor":
                for key in ("interval", "scrapeTimeout"):
                    self.assertEqual(self.values["podMonitor"][key], k["podMetricsEndpoints"][0].pop(key))
                    h["podMetricsEndpoints"][0].pop(key)
            self.assertEqual(h, k, kind)
        self.assertEqual(rbac_triples(self.helm_doc("ClusterRole")), RBAC_WANT)
        binding = self.helm_doc("ClusterRoleBinding")
        self.assertEqual(binding["roleRef"]["name"], self.helm_doc("ClusterRole")["metadata"]["name"])
        self.assertEqual(binding["subjects"][0]["name"], hpod["serviceAccountName"])
        self.assertEqual(self.values["replicaCount"], kdep["spec"]["replicas"])

    def test_deployment_flags_and_tls(self):
        dep = self.helm_doc("Deployment")
        c = dep["spec"]["template"]["spec"]["containers"][0]
        text = self.templates["deployment.yaml"]
        # Every flag the template can emit, static or conditional, is an ekglue serve flag.
        flags = set(re.findall(r"--([a-z][a-z-]+)=", text))
        check_flags(self, [(f, "") for f in flags])
        for f in ("namespace", "service-selector", "tls-cert", "tls-key", "tls-client-ca", "debug-listen"):
            self.assertIn(f, flags)
        # TLS files live under the mount of the Secret named by tls.secretName.
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        self.assertIn("tls", vols)
        self.assertIn(".Values.tls.secretName", text)
        for a in c["args"]:
            if a.startswith("--tls-"):
                self.assertTrue(a.split("=", 1)[1].startswith(mounts["tls"] + "/"), a)
        self.assertNotEqual(os.path.dirname(mounts["tls"]), mounts["config"].rstrip("/"),
                            "no mount inside the read-only ConfigMap mount")
        self.assertIn("checksum/config", dep["spec"]["template"]["metadata"]["annotations"])

    # --- who sees what, on which port (docs/operations.md, "Ports") ---

    @staticmethod
    def eval_guards(text, values):
        """text with the lines inside `{{- if .Values.a.b }}` (or `if not ...`) blocks whose condition is false
        for values dropped ({{- else }} flips it); other blocks are kept whole, as strip_template does."""
        out, stack = [], []
        for line in text.split("\n"):
            act = ACTION.fullmatch(line.strip())
            act = act.group(1) if act else None
            m = act and re.match(r"^if\s+(not\s+)?\.Values\.([A-Za-z0-9_.]+)$", act)
            if m:
                stack.append(bool(lookup(values, m.group(2).split("."))) != bool(m.group(1)))
            elif act and BLOCK_OPEN.match(act):
                stack.append(None)
            elif act == "else" and stack:
                stack[-1] = None if stack[-1] is None else not stack[-1]
            elif act and re.match(r"^end\b", act):
                stack.pop()
            elif all(c is not False for c in stack):
                out.append(line)
        return "\n".join(out)

    def service_spec(self, values):
        """The Service's spec for values (guards evaluated, other actions stripped)."""
        docs = [d for d in yaml.safe_load_all(strip_template(self.eval_guards(self.templates["service.yaml"], values)))
                if d]
        self.assertEqual(len(docs), 1)
        return docs[0]["spec"]

    def test_ports_who_sees_what(self):
        dep = self.helm_doc("Deployment")
        c = dep["spec"]["template"]["spec"]["containers"][0]
        cports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(cports, {"grpc": XDS_PORT, "metrics": METRICS_PORT},
                         "the debug port is loopback only: no container port for it")
        listens = {k: v for k, v in parse_args([a for a in c["args"][1:] if "TEMPLATED" not in a])
                   if k.endswith("-listen")}
        self.assertEqual(listens, {"xds-listen": "0.0.0.0:%d" % XDS_PORT, "metrics-listen": "0.0.0.0:%d" % METRICS_PORT,
                                   "debug-listen": "127.0.0.1:%d" % DEBUG_PORT})
        text = self.templates["deployment.yaml"]
        self.assertEqual(re.findall(r"--debug-listen=(\S+)", text), ["127.0.0.1:%d" % DEBUG_PORT],
                         "no branch of the template binds the topology views elsewhere")
        self.assertEqual(self.values["extraArgs"], [])
        # Probes: gRPC health on the xDS port, or (TLS on) the metrics port's /readyz and /healthz.
        for probe, path in (("startupProbe", "/readyz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            self.assertEqual(c[probe]["grpc"], {"port": XDS_PORT}, probe)
            port = c[probe]["httpGet"]["port"]
            self.assertEqual(cports.get(port, port), METRICS_PORT, probe)
            self.assertEqual(c[probe]["httpGet"]["path"], path, probe)
        self.assertEqual(dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"], str(METRICS_PORT))
        pm = self.helm_doc("PodMonitor")
        self.assertEqual([cports[ep["port"]] for ep in pm["spec"]["podMetricsEndpoints"]], [METRICS_PORT])
        # The Service: xDS only by default, whatever its type; the metrics port only with service.publishMetrics.
        self.assertIs(self.values["service"]["publishMetrics"], False)
        for stype in ("ClusterIP", "NodePort", "LoadBalancer"):
            v = copy.deepcopy(self.values)
            v["service"]["type"] = stype
            self.assertEqual(validate(v, self.schema), [])
            ports = {p["name"]: (p["port"], cports[p["targetPort"]]) for p in self.service_spec(v)["ports"]}
            self.assertEqual(ports, {"grpc": (XDS_PORT, XDS_PORT)}, stype)
            v["service"]["publishMetrics"] = True
            self.assertEqual(validate(v, self.schema), [])
            ports = {p["name"]: (p["port"], cports[p["targetPort"]]) for p in self.service_spec(v)["ports"]}
            self.assertEqual(ports, {"grpc": (XDS_PORT, XDS_PORT), "metrics": (METRICS_PORT, METRICS_PORT)}, stype)
        v = copy.deepcopy(self.values)
        v["service"]["publishMetrics"] = "yes"
        self.assertTrue(validate(v, self.schema), "the schema accepts service.publishMetrics=yes")
        notes = self.templates["NOTES.txt"]
        self.assertNotRegex(notes, r"(scrapes|port) :?%d" % DEBUG_PORT, "NOTES.txt sends Prometheus to the debug port")

    def test_publish_metrics_parity_with_kustomize(self):
        """service.publishMetrics adds the very port kustomize's components/publish-metrics adds."""
        if not KUSTOMIZE:
            skips.allowed("kubectl", NO_KUSTOMIZE)
        v = copy.deepcopy(self.values)
        v["service"]["publishMetrics"] = True
        with tempfile.TemporaryDirectory() as tmp:
            rel = os.path.relpath(SRC, tmp)
            with open(os.path.join(tmp, "kustomization.yaml"), "w") as f:
                yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                                "resources": [os.path.join(rel, "deploy/kustomize/base")],
                                "components": [os.path.join(rel, "deploy/kustomize/components/publish-metrics")]}, f)
            k = copy.deepcopy(find(kustomize(tmp), "Service")["spec"])
        h = self.service_spec(v)
        self.assertEqual(h.pop("type"), "TEMPLATED")
        k.pop("type", None)
        self.assertEqual(h, k)


# --- ekglue config and docs ---------------------------------------------------------------------------------

def code_blocks(path):
    with open(path) as f:
        text = f.read()
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)]


class ConfigAndDocsTest(unittest.TestCase):
    def test_configs_equal_and_valid(self):
        with open(os.path.join(KUSTOMIZE_BASE, "ekglue.yaml")) as f:
            kcfg = yaml.safe_load(f)
        with open(os.path.join(CHART, "values.yaml")) as f:
            hcfg = yaml.safe_load(f)["config"]
        self.assertEqual(kcfg, hcfg, "kustomize's ekglue.yaml and the chart's config differ")
        binary = need_binary(self)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as tmp:
            yaml.safe_dump(hcfg, tmp)  # as Helm's toYaml would write it
            tmp.flush()
            for path in (os.path.join(KUSTOMIZE_BASE, "ekglue.yaml"), tmp.name):
                r = run([binary, "check-config", path])
                self.assertEqual(r.returncode, 0, "check-config %s: %s" % (path, r.stderr))

    def test_getting_started_examples(self):
        blocks = code_blocks(GETTING_STARTED)
        parsed = []
        for lang, body in blocks:
            if lang == "yaml":
                parsed.append(("yaml", list(yaml.safe_load_all(body))))
            elif lang == "json":
                parsed.append(("json", [json.loads(body)]))
        dynamic = [d for _, ds in parsed for d in ds if isinstance(d, dict) and "dynamic_resources" in d]
        envoy = [d for d in dynamic if "node" in d]
        self.assertEqual(len(envoy), 1, "one whole Envoy bootstrap")
        # The incremental variant is a fragment of the same bootstrap: only api_type differs.
        delta = [d for d in dynamic if "node" not in d]
        self.assertEqual(len(delta), 1, "one DELTA_GRPC fragment")
        dads = delta[0]["dynamic_resources"]["ads_config"]
        self.assertEqual(dads["api_type"], "DELTA_GRPC")
        self.assertEqual(dads["grpc_services"], envoy[0]["dynamic_resources"]["ads_config"]["grpc_services"])
        self.assertEqual(delta[0]["dynamic_resources"]["cds_config"], {"ads": {}, "resource_api_version": "V3"})
        b = envoy[0]
        self.assertTrue(b["node"]["id"] and b["node"]["cluster"])
        ads = b["dynamic_resources"]["ads_config"]
        self.assertEqual(ads["api_type"], "GRPC")
        self.assertEqual(ads["transport_api_version"], "V3")
        self.assertEqual(b["dynamic_resources"]["cds_config"], {"ads": {}, "resource_api_version": "V3"})
        static = {c["name"]: c for c in b["static_resources"]["clusters"]}
        xds = static[ads["grpc_services"][0]["envoy_grpc"]["cluster_name"]]
        ports = [e["endpoint"]["address"]["socket_address"]["port_value"]
                 for le in xds["load_assignment"]["endpoints"] for e in le["lb_endpoints"]]
        self.assertEqual(ports, [XDS_PORT])
        route_clusters = set()

        def walk(x):
            if isinstance(x, dict):
                if isinstance(x.get("route"), dict) and "cluster" in x["route"]:
                    route_clusters.add(x["route"]["cluster"])
                for y in x.values():
                    walk(y)
            elif isinstance(x, list):
                for y in x:
                    walk(y)
        walk(b["static_resources"]["listeners"])
        self.assertTrue(route_clusters)
        for c in route_clusters:
            self.assertRegex(c, r"^[a-z0-9-]+:[a-z0-9-]+:[a-z0-9-]+$")
        r = run([need_binary(self), "dump", "--objects", DEMO_CLUSTER])
        self.assertEqual(r.returncode, 0, r.stderr)
        names = {c["name"] for c in json.loads(r.stdout)["clusters"]}
        self.assertFalse(route_clusters - names, "routes to clusters the demo cluster does not have")
        grpc = [d for _, ds in parsed for d in ds if isinstance(d, dict) and "xds_servers" in d]
        self.assertEqual(len(grpc), 1, "one gRPC bootstrap")
        srv = grpc[0]["xds_servers"][0]
        self.assertTrue(srv["server_uri"].endswith(":%d" % XDS_PORT))
        self.assertIn("xds_v3", srv["server_features"])
        self.assertEqual(srv["channel_creds"][0]["type"], "insecure")
        self.assertTrue(grpc[0]["node"]["id"])


if __name__ == "__main__":
    skips.main()
