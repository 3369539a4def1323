"""tests/debug/status_page_test.py: the HTML status page (`/`, src/debug/status_page.c) as a browser shows it.

Starts `ekglue serve` on the demo cluster with the debug port, connects a raw ADS client (tests/xds/xdsclient.py)
that ACKs Clusters and NACKs ClusterLoadAssignments, then renders the page in headless Chromium (Debian's
chromium package): --dump-dom gives the DOM after parsing, which must show every cluster name from `ekglue dump`,
the client's node id with its locality and node name (Node.metadata NODE_NAME) in its row, its NACK message, each
type's version from /config_dump, and per cluster whether its clients get zone priorities: "yes" with the reason
(the Service's trafficDistribution) for the demo's shop/frontend, which is PreferClose, "no" for the clusters of
Services without a preference (docs/translation.md, "Zone-aware endpoints"); --screenshot must produce a PNG. The page must need nothing from the network (no external assets: Chromium runs with networking features
off and the DOM is checked for http(s) references other than the server itself).

Set EKG_STATUS_SCREENSHOT=path to keep the screenshot (docs/status-page.png is made this way). Skips, saying
so, only when no chromium binary is installed: an unexpected skip (tests/helpers/skips.py) that fails CI.
Run by ctest with EKGLUE, EKG_SOURCE_DIR and EKG_BUILD_DIR set.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debugclient as dc  # noqa: E402
from debugclient import xc  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import skips  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
import zonerule  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage"]


@unittest.skipIf(CHROMIUM is None, "chromium is not installed (third_party/setup-deps.sh installs it)")
class StatusPageTest(xc.LogOnFailure, unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ekglue-status-")
        self.demo = os.path.join(self.dir, "cluster.yaml")
        shutil.copy(os.path.join(dc.SOURCE_DIR, "deploy", "demo", "cluster.yaml"), self.demo)
        self.server = dc.DebugServer([self.demo])
        self.channel = self.server.channel()

    def tearDown(self):
        self.channel.close()
        self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        xc.check_clean_exit(self, self.server)

    def chromium(self, *args):
        profile = tempfile.mkdtemp(prefix="profile-", dir=self.dir)
        url = "http://127.0.0.1:%d/" % self.server.debug_port
        proc = subprocess.run([CHROMIUM] + CHROME_FLAGS + ["--user-data-dir=" + profile] + list(args) + [url],
                              capture_output=True, timeout=90)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode("utf-8", "replace")[-3000:])
        return proc.stdout.decode("utf-8", "replace")

    def test_page_shows_clusters_clients_and_versions(self):
        # A client with history: Clusters ACKed, ClusterLoadAssignments NACKed with a message.
        s = xc.XdsStream(self.channel)
        s.send(xc.CLUSTER_URL, node_id="status-page-node", locality={"region": "us-east1", "zone": "us-east1-c"},
               metadata={"NODE_NAME": "worker-c1"})
        cds = s.recv(10)
        self.assertIsNotNone(cds)
        s.ack(cds)
        s.send(xc.CLA_URL, names=["shop:frontend:http", "shop:cart:http"])
        eds = s.recv(10)
        self.assertIsNotNone(eds)
        s.send(xc.CLA_URL, names=["shop:frontend:http", "shop:cart:http"], version="", nonce=eds.nonce,
               error="endpoint <b>rejected</b> by test")
        self.assertTrue(dc.wait_until(lambda: any(
            (c.get("types", {}).get(k) or {}).get("nack")
            for c in self.server.get_json("/clients") for k in c.get("types", {})), timeout=5),
            "the NACK never showed in /clients")

        dom = self.chromium("--dump-dom", "--virtual-time-budget=2000")
        self.assertIn("<title>ekglue status</title>", dom)
        self.assertIn("READY", dom)
        ref = dc.dump([self.demo])
        for cluster in ref["clusters"]:
            self.assertIn(cluster["name"], dom)
        versions = self.server.get_json("/config_dump")["version_info"]
        for type_name, version in versions.items():
            self.assertIn(type_name, dom)
            self.assertIn(version, dom)
        self.assertIn("us-east1/us-east1-a", dom)  # endpoints per locality
        self.assertIn("HEALTHY", dom)  # ... and per health
        self.assertIn("status-page-node", dom)
        self.assertIn(cds.version_info, dom)  # the ACKed Cluster version
        # The NACK message is shown, escaped: no <b> element made it into the DOM.
        self.assertIn("endpoint &lt;b&gt;rejected&lt;/b&gt; by test", dom)
        rows = dc.Rows(dom)
        # The client's row: its locality, and its node name next to it.
        header, clients = rows.table("Node id", "Locality", "Node name")
        client = next(r for r in clients if r[0].strip() == "status-page-node")
        self.assertEqual(client[header.index("Locality")].strip(), "us-east1/us-east1-c")
        self.assertEqual(client[header.index("Node name")].strip(), "worker-c1")
        self.assertEqual(header.index("Node name"), header.index("Locality") + 1)
        # Per cluster, whether its clients get zone priorities and why.
        header, clusters = rows.table("Name", "Zone priorities")
        col = header.index("Zone priorities")
        cells = {r[0].strip(): r[col].strip() for r in clusters}
        self.assertEqual(sorted(cells), sorted(c["name"] for c in ref["clusters"]))
        rules = zonerule.Rules(zonerule.load_objects(self.demo), ref["load_assignments"])
        for name, cell in cells.items():
            applies = name in rules.plain and rules.prefers_close(name)[0]
            if applies:
                svc = rules.services[zonerule.service_of(name)]
                self.assertTrue(cell.startswith("yes"), (name, cell))
                self.assertIn("trafficDistribution: " + svc.traffic_distribution, cell)
            else:
                self.assertEqual(cell, "no", name)
        self.assertTrue(cells["shop:frontend:http"].startswith("yes"), cells)
        # Self-contained: no script, no stylesheet link, no external URL.
        self.assertNotIn("<script", dom)
        self.assertNotIn("<link", dom)
        for url in re.findall(r"(?:src|href)=\"(https?://[^\"]*)\"", dom):
            self.fail("external reference %s" % url)

        shot = os.path.join(self.dir, "status.png")
        self.chromium("--screenshot=" + shot, "--window-size=1280,1600", "--hide-scrollbars")
        with open(shot, "rb") as f:
            png = f.read()
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        self.assertGreater(len(png), 10000)
        keep = os.environ.get("EKG_STATUS_SCREENSHOT")
        if keep:
            shutil.copy(shot, keep)
        s.cancel()


if __name__ == "__main__":
    skips.main()
