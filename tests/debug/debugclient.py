"""tests/debug/debugclient.py: shared helpers for the debug-port tests (not a test itself).

- DebugServer is tests/xds/xdsclient.py's EkglueServer (`ekglue serve` on 127.0.0.1, xDS port read from the log)
  started with `--debug-listen 127.0.0.1:0`; it also reads the debug port from the log line
  `msg="debug server listening port=N ..."` (bounded wait). stop(), check_clean_exit() and the LogOnFailure
  test mixin (the server's whole stderr on any failure) are xdsclient's.
- get() is one HTTP request with a timeout, returning (status, headers, body) for any status.
- Rows(html) is every table row of a page as the list of its cells' text; Rows.table(*headers) finds one table.
- dump() is `ekglue dump --format json` of the same files, with extra arguments if any (xdsclient.run_ekglue:
  its stderr on failure): the independent reference for the documents.

Every wait is bounded. Run with /usr/bin/python3.
"""
import html.parser
import http.client
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "xds"))
import xdsclient as xc  # noqa: E402

EKGLUE = xc.EKGLUE
SOURCE_DIR = xc.SOURCE_DIR


class DebugServer(xc.EkglueServer):
    def __init__(self, objects=(), extra_args=(), log_level="debug"):
        super().__init__(objects, ["--debug-listen", "127.0.0.1:0"] + list(extra_args), log_level=log_level)
        line = self.wait_log(r"debug server listening port=\d+", timeout=10)
        if line is None:
            self.stop()
            raise xc.StartError("no debug port in the log:" + xc.failure_log(self), self)
        self.debug_port = int(re.search(r"debug server listening port=(\d+)", line).group(1))

    def get(self, path, method="GET", timeout=10.0):
        return get(self.debug_port, path, method, timeout)

    def get_json(self, path):
        status, headers, body = self.get(path)
        if status != 200:
            raise AssertionError("GET %s: %d %s" % (path, status, body[:500]))
        return json.loads(body)


def get(port, path, method="GET", timeout=10.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read().decode("utf-8")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def dump(objects, *extra):
    args = ["dump", "--format", "json"] + list(extra)
    for path in objects:
        args += ["--objects", path]
    return json.loads(xc.run_ekglue(args))


class Rows(html.parser.HTMLParser):
    """Every table row of a document as the list of its cells' text (a row inside a cell is a row of its own)."""

    def __init__(self, text):
        super().__init__()
        self.rows, self._open = [], []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._open.append([])
        elif tag in ("td", "th") and self._open:
            self._open[-1].append("")

    def handle_endtag(self, tag):
        if tag == "tr" and self._open:
            self.rows.append(self._open.pop())

    def handle_data(self, data):
        if self._open and self._open[-1]:
            self._open[-1][-1] += data

    def table(self, *headers):
        """(header row, data rows) of the first table whose header row has all these headers; the rows are the
        ones of that width that follow it."""
        for i, row in enumerate(self.rows):
            if all(h in row for h in headers):
                return row, [r for r in self.rows[i + 1:] if len(r) == len(row)]
        raise AssertionError("no table with headers %s" % (headers,))


def wait_until(fn, timeout=5.0, interval=0.05):
    """Calls fn until it returns something true; returns that, or the last value after timeout."""
    deadline = time.monotonic() + timeout
    value = fn()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = fn()
    return value
