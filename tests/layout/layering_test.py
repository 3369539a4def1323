"""tests/layout/layering_test.py: the source tree keeps its layers (docs/internals/README.md, "Layers").

Checked over every #include of src/, include/ekglue/ and proto/tools/, from the text alone:
  - calls go down only: a file includes headers of its own folder or of a lower layer, never of a higher one
    nor of a sibling at the same height (xds/ and watch/ do not know each other);
  - one include style: public headers as "ekglue/NAME.h", private ones as "FOLDER/NAME.h" (relative to src/),
    third-party ones by their own paths; never "../", never a bare "name.h";
  - every public header is named for what implements it: include/ekglue/X.h belongs to src/X/, or to
    src/common/X.c for the small leaf modules of common/;
and, over the built library (EKG_BUILD_DIR/libekglue_core.a, with nm): every exported symbol has the ekg_ prefix.

A broken rule fails with every offending file:line. Run by ctest (EKG_SOURCE_DIR, EKG_BUILD_DIR); /usr/bin/python3.
"""
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import skips  # noqa: E402

SOURCE_DIR = os.environ.get("EKG_SOURCE_DIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.environ.get("EKG_BUILD_DIR", "")

# Lowest first. A folder may include its own headers and those of strictly lower layers. Folders on one line
# are siblings: neither may include the other.
LAYERS = [
    ["common"],     # errors, logs, YAML, maps, metrics recording: used by everyone, uses no one
    ["proto"],      # the protobuf registry (reflection from libgrpc plus proto/)
    ["model"],      # typed Services, EndpointSlices, Nodes
    ["resource"],   # encoded resources, resource sets, snapshots: the currency of the layers above
    ["translate"],  # objects -> resources, under the config file
    ["cache"],      # the publish point of snapshots
    ["xds", "watch"],  # the xDS server (reads the cache) | the Kubernetes source (feeds translate and cache)
    ["render"],     # resources as JSON/YAML for people
    ["debug"],      # the operator's HTTP port
    ["cli"],        # the subcommands
    ["main"],       # src/main.c
]
RANK = {folder: height for height, folders in enumerate(LAYERS) for folder in folders}
THIRD_PARTY = ("upb/", "envoy/", "google/", "validate/", "xds/type/", "xds/core/", "udpa/")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def source_files():
    for top in ("src", "include/ekglue", "proto/tools"):
        for dirpath, _, names in os.walk(os.path.join(SOURCE_DIR, top)):
            for name in sorted(names):
                if name.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(dirpath, name), SOURCE_DIR)


def public_header_owner(name):
    """The folder that implements include/ekglue/NAME.h, or None when nothing does."""
    if os.path.isdir(os.path.join(SOURCE_DIR, "src", name)):
        return name
    if os.path.isfile(os.path.join(SOURCE_DIR, "src", "common", name + ".c")):
        return "common"
    return None


def folder_of(path):
    """The layer a repository file belongs to (None: outside the layers, e.g. proto/tools)."""
    parts = path.split("/")
    if parts[0] == "src":
        return "main" if len(parts) == 2 else parts[1]
    if parts[:2] == ["include", "ekglue"]:
        return public_header_owner(os.path.splitext(parts[2])[0])
    return None


def target_of(inc):
    """(layer, problem) for an include as written; layer None for third-party headers."""
    if inc.startswith(THIRD_PARTY) and not os.path.exists(os.path.join(SOURCE_DIR, "src", inc)):
        return None, None
    if ".." in inc.split("/"):
        return None, 'goes up the tree with "..": write it as "FOLDER/NAME.h" from src/'
    if "/" not in inc:
        return None, 'a bare name: write "FOLDER/NAME.h" (private) or "ekglue/NAME.h" (public)'
    head = inc.split("/")[0]
    if head == "ekglue":
        if not os.path.isfile(os.path.join(SOURCE_DIR, "include", inc)):
            return None, "no such public header"
        owner = public_header_owner(os.path.splitext(inc.split("/")[1])[0])
        return owner, None if owner else "a public header that no folder implements"
    if not os.path.isfile(os.path.join(SOURCE_DIR, "src", inc)):
        return None, "no such header under src/"
    return head, None


class Layering(unittest.TestCase):
    def test_the_layers_cover_every_folder(self):
        folders = sorted(d for d in os.listdir(os.path.join(SOURCE_DIR, "src"))
                         if os.path.isdir(os.path.join(SOURCE_DIR, "src", d)))
        self.assertTrue(folders, "no folders under src/")
        self.assertEqual([f for f in folders if f not in RANK], [],
                         "folders of src/ missing from LAYERS: place them")

    def test_public_headers_are_named_for_their_folder(self):
        bad = []
        for name in sorted(os.listdir(os.path.join(SOURCE_DIR, "include", "ekglue"))):
            if public_header_owner(os.path.splitext(name)[0]) is None:
                bad.append("include/ekglue/%s: neither src/%s/ nor src/common/%s.c" %
                           ((name,) + (os.path.splitext(name)[0],) * 2))
        self.assertEqual(bad, [], "\n".join(bad))

    def test_includes_go_down_in_one_style(self):
        problems, checked = [], 0
        for path in source_files():
            mine = folder_of(path)
            with open(os.path.join(SOURCE_DIR, path), encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    checked += 1
                    inc = m.group(1)
                    target, problem = target_of(inc)
                    if problem:
                        problems.append('%s:%d: "%s": %s' % (path, lineno, inc, problem))
                    elif target and mine and target != mine:
                        if RANK[target] > RANK[mine]:
                            problems.append('%s:%d: "%s": %s/ includes %s/, a higher layer' %
                                            (path, lineno, inc, mine, target))
                        elif RANK[target] == RANK[mine]:
                            problems.append('%s:%d: "%s": %s/ includes its sibling %s/' %
                                            (path, lineno, inc, mine, target))
        self.assertGreater(checked, 100, "too few includes found: is EKG_SOURCE_DIR right?")
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_the_checker_sees_a_violation(self):
        """The rules above are not vacuous: an upward, a sibling and a bare include are each caught."""
        self.assertEqual(target_of("ekglue/xds.h"), ("xds", None))
        self.assertGreater(RANK[target_of("ekglue/xds.h")[0]], RANK["translate"])
        self.assertEqual(RANK["xds"], RANK["watch"])
        self.assertIsNotNone(target_of("session.h")[1])
        self.assertIsNotNone(target_of("../common/hash.h")[1])
        self.assertEqual(target_of("upb/def.h"), (None, None))

    def test_exported_symbols_have_the_prefix(self):
        lib = os.path.join(BUILD_DIR, "libekglue_core.a")
        self.assertTrue(os.path.isfile(lib), "no %s: run under ctest (EKG_BUILD_DIR)" % lib)
        out = subprocess.run(["nm", "-g", "--defined-only", lib], capture_output=True, text=True, check=True,
                             timeout=60).stdout
        symbols = [f[2] for f in (line.split() for line in out.splitlines()) if len(f) == 3 and f[1] in "TDBRCV"]
        self.assertGreater(len(symbols), 100, "nm found too few symbols")
        # Sanitizer builds add their own globals (__odr_asan.NAME, __asan_*, ...): the compiler's, not ours.
        ours = [s for s in set(symbols) if not s.startswith(("__odr_asan", "__asan", "__ubsan", "__sancov", "__tsan"))]
        bad = sorted(s for s in ours if not s.startswith("ekg_"))
        self.assertEqual(bad, [], "exported without the ekg_ prefix (make them static, or prefix them)")


if __name__ == "__main__":
    skips.main()
