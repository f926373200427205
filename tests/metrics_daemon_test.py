"""tcpactor-echo --metrics: real connections, scraped with curl, checked by
value and by promtool (Prometheus' own linter); a hand-written HTTP peer
sends what curl never would."""

import re
import shutil
import socket
import subprocess
import time
import unittest

from daemon_helpers import (DaemonTestCase, IO_TIMEOUT, START_TIMEOUT,
                            recv_exactly)

METRICS_ON = re.compile(r"metrics on (\S+):(\d+)")
SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")


def parse_samples(text):
    """{(name, labels): value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


class MetricsDaemonTest(DaemonTestCase):

    def setUp(self):
        super().setUp()
        for tool in ("curl", "promtool"):
            if not shutil.which(tool):
                self.skipTest("%s is missing (scripts/install-deps.sh --test)"
                              % tool)

    def start_with_metrics(self, *args):
        d, port = self.start("--metrics=127.0.0.1:0", *args)
        m = d.out.wait_for(METRICS_ON, START_TIMEOUT)
        self.assertIsNotNone(m, "no 'metrics on' line: %r" % d.out.text())
        self.assertEqual(m.group(1), "127.0.0.1")
        return d, port, int(m.group(2))

    def curl(self, mport, path="/metrics", *extra):
        res = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "-D", "-",
             "http://127.0.0.1:%d%s" % (mport, path), *extra],
            capture_output=True, timeout=IO_TIMEOUT)
        self.assertEqual(res.returncode, 0, res.stderr.decode())
        head, _, body = res.stdout.decode().partition("\r\n\r\n")
        return head, body

    def scrape(self, mport):
        head, body = self.curl(mport)
        self.assertTrue(head.startswith("HTTP/1.1 200 OK"), head)
        self.assertIn("Content-Type: text/plain; version=0.0.4", head)
        self.assertIn("Connection: close", head)
        return body

    def scrape_until(self, mport, pred, what):
        """Scrapes until pred(samples) holds: the counters are summed when
        asked, so a close the client saw may take a moment to show."""
        deadline = time.monotonic() + IO_TIMEOUT
        while True:
            samples = parse_samples(self.scrape(mport))
            if pred(samples):
                return samples
            if time.monotonic() > deadline:
                self.fail("%s never held: %r" % (what, samples))
            time.sleep(0.02)

    def raw_request(self, mport, data):
        """Sends `data` and returns everything until the server closes."""
        with socket.create_connection(("127.0.0.1", mport),
                                      timeout=IO_TIMEOUT) as s:
            s.sendall(data)
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)

    def test_counts_connections_bytes_and_reasons_and_promtool_accepts_it(self):
        d, port, mport = self.start_with_metrics("--max-connections=3")
        # The endpoint has a runtime of its own: scraping counts nothing.
        before = parse_samples(self.scrape(mport))
        self.assertEqual(before[("tcpactor_connections_accepted_total", "")], 0)
        sizes = [1, 1000, 100000]
        for n in sizes:
            with socket.create_connection(("127.0.0.1", port),
                                          timeout=IO_TIMEOUT) as s:
                s.sendall(b"z" * n)
                self.assertEqual(recv_exactly(s, n), b"z" * n)
        closed = 'tcpactor_connections_closed_total'
        # Closed on the server too, before the limit of 3 is tested.
        self.scrape_until(mport, lambda s: s[(closed, '{reason="clean"}')] == 3,
                          "3 clean closes")
        # One reset, one refused over the limit of 3.
        held = [self.connect(port) for _ in range(3)]
        for s in held:
            s.sendall(b"hi")
            self.assertEqual(recv_exactly(s, 2), b"hi")
        with self.assertRaises(ConnectionResetError):
            # On loopback the reset can beat connect() back to us.
            extra = self.connect(port)
            extra.recv(1)
        held[0].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                           b"\x01\x00\x00\x00\x00\x00\x00\x00")
        held[0].close()
        total = sum(sizes) + 3 * 2
        s = self.scrape_until(
            mport,
            lambda s: s[(closed, '{reason="clean"}')] == 3 and
            s[(closed, '{reason="connection_reset"}')] == 1 and
            s[("tcpactor_sent_bytes_total", "")] == total,
            "3 clean closes, 1 reset, every byte sent")
        self.assertEqual(s[("tcpactor_connections_accepted_total", "")], 6)
        self.assertEqual(s[("tcpactor_connections_open", "")], 2)
        self.assertEqual(s[("tcpactor_connections_refused_total",
                            '{cause="over_limit"}')], 1)
        self.assertEqual(s[("tcpactor_received_bytes_total", "")], total)
        self.assertEqual(s[("tcpactor_sent_bytes_total", "")], total)
        self.assertEqual(s[("tcpactor_queued_bytes", "")], 0)
        self.assertEqual(
            s[("tcpactor_connection_lifetime_seconds_count", "")], 4)
        self.assertEqual(s[("tcpactor_connection_lifetime_seconds_bucket",
                            '{le="+Inf"}')], 4)
        self.assertEqual(
            s[("tcpactor_tls_handshake_duration_seconds_count", "")], 0)
        body = self.scrape(mport)
        lint = subprocess.run(["promtool", "check", "metrics"],
                              input=body.encode(), capture_output=True,
                              timeout=IO_TIMEOUT)
        self.assertEqual(lint.returncode, 0,
                         (lint.stdout + lint.stderr).decode() + body)

    def test_other_paths_methods_and_garbage_get_errors_and_it_survives(self):
        d, port, mport = self.start_with_metrics()
        head, body = self.curl(mport, "/")
        self.assertTrue(head.startswith("HTTP/1.1 404 Not Found"), head)
        head, body = self.curl(mport, "/metricsx")
        self.assertTrue(head.startswith("HTTP/1.1 404"), head)
        head, _ = self.curl(mport, "/metrics", "-X", "POST", "-d", "a=b")
        self.assertTrue(head.startswith("HTTP/1.1 405"), head)
        self.assertIn("Allow: GET, HEAD", head)
        # A query string is not part of the path.
        head, body = self.curl(mport, "/metrics?x=1")
        self.assertTrue(head.startswith("HTTP/1.1 200"), head)
        for garbage in [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                        b"HELLO\r\n\r\n",
                        b"GET /metrics\r\n\r\n",
                        b"GET /metrics HTTP/2.0\r\n\r\n",
                        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
                        b"GET /" + b"a" * 9000]:
            reply = self.raw_request(mport, garbage)
            self.assertTrue(reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"),
                            "%r -> %r" % (garbage[:40], reply[:80]))
            self.assertIn(b"Connection: close", reply)
        # HTTP/1.0 and HEAD work; the head of a HEAD has no body after it.
        reply = self.raw_request(mport, b"HEAD /metrics HTTP/1.0\r\n\r\n")
        self.assertTrue(reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply)
        self.assertTrue(reply.endswith(b"\r\n\r\n"), reply[-80:])
        # A request cut into pieces still gets its answer.
        with socket.create_connection(("127.0.0.1", mport),
                                      timeout=IO_TIMEOUT) as s:
            for piece in [b"GE", b"T /metr", b"ics HTTP/1.1\r\nHost: x\r\n",
                          b"\r\n"]:
                s.sendall(piece)
            reply = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        self.assertTrue(reply.startswith(b"HTTP/1.1 200 OK"), reply[:80])
        self.assertIn(b"tcpactor_connections_open 0", reply)
        # The echo service and the endpoint still work.
        with socket.create_connection(("127.0.0.1", port),
                                      timeout=IO_TIMEOUT) as s:
            s.sendall(b"still here")
            self.assertEqual(recv_exactly(s, 10), b"still here")
        self.scrape(mport)
        self.assertIsNone(d.poll())

    def test_a_silent_scraper_is_cut_off(self):
        d, port, mport = self.start_with_metrics()
        with socket.create_connection(("127.0.0.1", mport),
                                      timeout=IO_TIMEOUT) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never the end
            t0 = time.monotonic()
            self.assertEqual(s.recv(1), b"")
            took = time.monotonic() - t0
        self.assertLess(took, 15, "the endpoint held a silent client")
        self.scrape(mport)

    def test_bad_metrics_address_names_the_option(self):
        for bad in ["7000", "127.0.0.1:http", "::1:9100", "127.0.0.1:70000"]:
            code, _, err = self.run_daemon("--metrics=" + bad)
            self.assertEqual(code, 2, err)
            self.assertIn("metrics", err)

    def test_a_metrics_port_in_use_fails_with_one_line(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            busy = taken.getsockname()[1]
            code, out, err = self.run_daemon(
                "--port=0", "--metrics=127.0.0.1:%d" % busy)
        self.assertEqual(code, 1, err)
        self.assertIn("cannot serve metrics on 127.0.0.1:%d" % busy, err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
