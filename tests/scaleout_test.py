"""Scale-out: tcpactor-echo --backend forwarding to tcpactor-worker nodes over
CAF's BASP, three or more real processes on loopback.

The front end echoes through two workers, one echoing and one answering in
upper case, so each reply shows which node served the connection. Clients
are plain Python sockets (and Python's ssl for the front end's own TLS port).
Certificates for TLS between nodes are made at test time with the openssl
command: a CA, certificates for the front end and the workers, and a worker
certificate from a rogue CA.

Each test can be run alone, e.g.
  python3 tests/scaleout_test.py ScaleoutTest.test_worker_killed_mid_load
"""

import os
import re
import resource
import selectors
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from certs import make_ca, make_leaf
from daemon_helpers import (EXIT_TIMEOUT, IO_TIMEOUT, START_TIMEOUT,
                            DaemonTestCase, _Lines, recv_exactly)

WORKER = os.environ.get("TCPACTOR_WORKER", "")
NODE_EXT = ("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
            "extendedKeyUsage=serverAuth,clientAuth\n")


class Worker:
    """A running tcpactor-worker; `port` is the one it published on."""

    def __init__(self, args):
        self.proc = subprocess.Popen([WORKER, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = _Lines(self.proc.stdout)
        self.err = _Lines(self.proc.stderr)
        self.port = None

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.join(EXIT_TIMEOUT)
        self.err.join(EXIT_TIMEOUT)
        for pipe in (self.proc.stdout, self.proc.stderr):
            pipe.close()


class ScaleoutTest(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.TemporaryDirectory(prefix="scaleout_certs.")
        d = cls.certs.name
        make_ca(d, "ca", "tcpactor nodes CA")
        make_ca(d, "rogue-ca", "rogue CA")
        make_leaf(d, "front", "front end", "ca", 2, NODE_EXT)
        make_leaf(d, "worker", "worker", "ca", 3, NODE_EXT)
        make_leaf(d, "rogue", "rogue worker", "rogue-ca", 4, NODE_EXT)
        # 1,000 client sockets here and as many in the front end.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 4096 <= hard or (hard == resource.RLIM_INFINITY and
                                   soft < 4096):
            resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))

    @classmethod
    def tearDownClass(cls):
        cls.certs.cleanup()

    def setUp(self):
        super().setUp()
        self.assertTrue(WORKER and os.access(WORKER, os.X_OK),
                        "TCPACTOR_WORKER must name the tcpactor-worker binary")
        self.workers = []

    def tearDown(self):
        for w in self.workers:
            w.kill()
        super().tearDown()

    # -- helpers -------------------------------------------------------------

    def cert(self, name):
        return os.path.join(self.certs.name, name)

    def tls_args(self, name, ca="ca", flag=""):
        return ["--%scertificate=%s" % (flag, self.cert(name + ".pem")),
                "--%skey=%s" % (flag, self.cert(name + ".key")),
                "--%scafile=%s" % (flag, self.cert(ca + ".pem"))]

    def worker(self, service, port=0, tls=None):
        args = ["--port=%d" % port, "--service=" + service,
                "--log-level=warning"]
        if tls:
            args += self.tls_args(tls)
        w = Worker(args)
        self.workers.append(w)
        m = w.out.wait_for(r"publishing \w+ on 127\.0\.0\.1:(\d+)",
                           START_TIMEOUT)
        if not m:
            w.kill()
            self.fail("worker did not start: %s" % w.err.text())
        w.port = int(m.group(1))
        return w

    def front(self, *workers, extra=(), tls=None, all_up=True):
        """Starts a front end forwarding to `workers`. With `all_up` it checks
        that every worker was linked before the daemon began serving: a node
        linked later misses the first connections, which the tests count."""
        nodes = ",".join("127.0.0.1:%d" % w.port for w in workers)
        conf = self.write_conf('[echo]\nlog-level="debug"\n', "front.conf")
        args = ["--backend=" + nodes, "--backend.request-timeout=10s",
                "--backend.max-backoff=200ms", *extra]
        if tls:
            args += self.tls_args(tls, flag="backend.")
        d, port = self.start(*args, conf=conf)
        if all_up:
            n = len(workers)
            self.assertTrue(d.err.wait_for(r"%d of %d back end\(s\) up" % (n, n),
                                           IO_TIMEOUT), d.err.text())
        return d, port

    def roundtrip(self, port, data):
        sock = self.connect(port)
        sock.sendall(data)
        return recv_exactly(sock, len(data))

    def run_load(self, port, n, rounds, on_progress=None):
        """Opens `n` connections and runs `rounds` request/reply rounds on
        each, all at once on one selector. Each connection's messages are
        unique. Returns {i: "lower"|"upper"|"closed: ..."} naming which node
        answered connection i (or how it ended), and fails on any reply that
        is neither the message nor its upper case, or mixes the two."""
        sel = selectors.DefaultSelector()
        conns = {}
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port),
                                         timeout=IO_TIMEOUT)
            s.setblocking(False)
            self.addCleanup(s.close)
            conns[i] = {"sock": s, "round": 0, "want": b"", "got": b"",
                        "node": None}
            sel.register(s, selectors.EVENT_READ, i)

        def send(i):
            c = conns[i]
            c["want"] = b"conn %d round %d;" % (i, c["round"])
            c["got"] = b""
            c["sock"].sendall(c["want"])

        for i in conns:
            send(i)
        result = {}
        done_rounds = 0
        answered = 0  # connections with at least one reply: node known
        deadline = time.monotonic() + IO_TIMEOUT
        while len(result) < n:
            left = deadline - time.monotonic()
            self.assertGreater(left, 0, "%d connections hang: %s" % (
                n - len(result), sorted(set(conns) - set(result))[:10]))
            for key, _ in sel.select(min(left, 1.0)):
                i = key.data
                c = conns[i]
                try:
                    chunk = c["sock"].recv(65536)
                except (ConnectionResetError, BrokenPipeError) as e:
                    chunk = None
                    why = repr(e)
                if not chunk:
                    result[i] = "closed: %s" % (why if chunk is None
                                                else "eof")
                    sel.unregister(c["sock"])
                    continue
                c["got"] += chunk
                if len(c["got"]) < len(c["want"]):
                    continue
                got = c["got"]
                node = ("lower" if got == c["want"] else
                        "upper" if got == c["want"].upper() else None)
                self.assertIsNotNone(node, "connection %d: sent %r, got %r"
                                     % (i, c["want"], got))
                self.assertIn(c["node"], (None, node),
                              "connection %d changed node" % i)
                if c["node"] is None:
                    answered += 1
                c["node"] = node
                c["round"] += 1
                done_rounds += 1
                if on_progress:
                    on_progress(done_rounds, answered)
                if c["round"] == rounds:
                    result[i] = node
                    sel.unregister(c["sock"])
                else:
                    send(i)
        sel.close()
        return result, {i: c["node"] for i, c in conns.items()}

    # -- tests ---------------------------------------------------------------

    def test_thousand_connections_get_their_own_bytes_in_order(self):
        lower, upper = self.worker("echo"), self.worker("upper")
        d, port = self.front(lower, upper)
        result, _ = self.run_load(port, 1000, 3)
        counts = {k: list(result.values()).count(k) for k in set(
            result.values())}
        # Round robin: half each.
        self.assertEqual(counts, {"lower": 500, "upper": 500}, counts)
        code, err = self.stop(d)
        self.assertEqual(code, 0, err)
        self.assertNotIn("backend_down", err)

    def test_worker_killed_mid_load(self):
        lower, upper = self.worker("echo"), self.worker("upper")
        d, port = self.front(lower, upper)
        killed = []

        def kill_once(done, answered):
            # Only once every connection has its node: the daemon may still
            # be accepting the last ones, and a connection accepted after
            # the kill rightly goes to the node that is left.
            if not killed and done >= 400 and answered == 200:
                lower.kill()
                killed.append(True)

        result, nodes = self.run_load(port, 200, 50, on_progress=kill_once)
        self.assertTrue(killed)
        # Every connection on the dead node ended (none hangs); every other
        # finished all its rounds. Round robin put 100 on each.
        closed = [i for i, r in result.items() if r.startswith("closed")]
        for i in closed:
            self.assertIn(nodes[i], ("lower", None), result[i])
        for i in set(result) - set(closed):
            self.assertEqual(result[i], "upper")
        self.assertEqual(len(closed), 100)
        # The daemon logs each of them failing with backend_down.
        pattern = r"connection \d+ closed .*reason=backend_down: 127\.0\.0\.1:%d" \
            % lower.port
        deadline = time.monotonic() + IO_TIMEOUT
        while True:
            hits = [l for l in d.err.text().splitlines()
                    if re.search(pattern, l)]
            if len(hits) == 100 or time.monotonic() > deadline:
                break
            d.err.wait_for(pattern, 0.2, since=d.err.count())
        self.assertEqual(len(hits), 100, d.err.text()[-3000:])
        # New connections go to the node that is left.
        for _ in range(4):
            self.assertEqual(self.roundtrip(port, b"after"), b"AFTER")

    def test_restarted_worker_is_used_again(self):
        lower, upper = self.worker("echo"), self.worker("upper")
        d, port = self.front(lower, upper)
        old = lower.port
        lower.kill()
        self.assertTrue(d.err.wait_for(
            r"backend 127\.0\.0\.1:%d down" % old, IO_TIMEOUT), d.err.text())
        since = d.err.count()
        self.assertEqual(self.roundtrip(port, b"one"), b"ONE")
        self.worker("echo", port=old)
        self.assertTrue(d.err.wait_for(
            r"backend 127\.0\.0\.1:%d up" % old, IO_TIMEOUT, since=since),
            d.err.text())
        replies = {self.roundtrip(port, b"again") for _ in range(4)}
        self.assertEqual(replies, {b"again", b"AGAIN"})

    def test_tls_between_nodes_and_on_the_front_port(self):
        # The front end runs our asio::ssl listener and libcaf_openssl's
        # BASP in one process.
        lower = self.worker("echo", tls="worker")
        upper = self.worker("upper", tls="worker")
        d, port = self.front(lower, upper, tls="front", extra=[
            "--tls.cert-file=" + self.cert("front.pem"),
            "--tls.key-file=" + self.cert("front.key")])
        self.assertTrue(d.err.wait_for(r"2 of 2 back end\(s\) up \(BASP over "
                                       r"TLS\)", 1.0), d.err.text())
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.cert("ca.pem"))
        seen = set()
        for i in range(20):
            raw = socket.create_connection(("127.0.0.1", port),
                                           timeout=IO_TIMEOUT)
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                msg = b"secret %d" % i
                s.sendall(msg)
                got = recv_exactly(s, len(msg))
                self.assertIn(got, (msg, msg.upper()))
                seen.add(got == msg)
        self.assertEqual(seen, {True, False})
        code, err = self.stop(d)
        self.assertEqual(code, 0, err)

    def test_untrusted_worker_is_refused(self):
        good = self.worker("upper", tls="worker")
        rogue = self.worker("echo", tls="rogue")
        d, port = self.front(good, rogue, tls="front", all_up=False)
        self.assertTrue(d.err.wait_for(
            r"backend 127\.0\.0\.1:%d unreachable" % rogue.port, IO_TIMEOUT),
            d.err.text())
        for _ in range(6):
            self.assertEqual(self.roundtrip(port, b"who"), b"WHO")
        # A front end without certificates cannot use a TLS worker either.
        d2, port2 = self.front(good, all_up=False)
        sock = self.connect(port2)
        sock.sendall(b"plain")
        try:
            self.assertEqual(sock.recv(16), b"")
        except ConnectionResetError:
            pass
        self.assertTrue(d2.err.wait_for(r"reason=backend_down: no back end "
                                        r"is up", IO_TIMEOUT), d2.err.text())
        # The failed handshakes on both ends left OpenSSL errors queued on
        # the BASP threads (libcaf_openssl never clears them); the trusted
        # link must not read them as its own (see openssl_guard.cpp).
        for _ in range(6):
            self.assertEqual(self.roundtrip(port, b"still"), b"STILL")
        self.assertNotIn("backend 127.0.0.1:%d down" % good.port,
                         d.err.text())

    def test_worker_stops_cleanly_on_sigterm(self):
        upper = self.worker("upper")
        d, port = self.front(upper)
        sock = self.connect(port)
        sock.sendall(b"x")
        self.assertEqual(recv_exactly(sock, 1), b"X")
        upper.proc.send_signal(signal.SIGTERM)
        self.assertEqual(upper.proc.wait(timeout=EXIT_TIMEOUT), 0,
                         upper.err.text())
        # Its front end saw the link go and failed the connection on it.
        try:
            self.assertEqual(sock.recv(16), b"")
        except ConnectionResetError:
            pass
        self.assertTrue(d.err.wait_for(
            r"reason=backend_down: 127\.0\.0\.1:%d: link lost" % upper.port,
            IO_TIMEOUT), d.err.text())

    def test_bad_backend_options_name_the_cause(self):
        code, _, err = self.run_daemon("--port=0", "--backend=localhost")
        self.assertEqual(code, 2)
        self.assertIn("backend.nodes: 'localhost' has no port", err)
        code, _, err = self.run_daemon(
            "--port=0", "--backend=127.0.0.1:1",
            "--backend.certificate=/nonexistent/front.pem",
            "--backend.key=" + self.cert("front.key"),
            "--backend.cafile=" + self.cert("ca.pem"))
        self.assertEqual(code, 2)
        self.assertIn("backend.certificate: cannot read "
                      "'/nonexistent/front.pem'", err)
        # A worker checks its files before it publishes anything.
        w = Worker(["--port=0", "--tls=on", "--certificate=" +
                    self.cert("worker.pem"), "--key=" +
                    self.cert("front.key"), "--cafile=" +
                    self.cert("ca.pem")])
        self.workers.append(w)
        self.assertEqual(w.proc.wait(timeout=START_TIMEOUT), 2)
        w.err.join(EXIT_TIMEOUT)
        self.assertIn("--key: '%s' does not match" % self.cert("front.key"),
                      w.err.text())


if __name__ == "__main__":
    unittest.main()
