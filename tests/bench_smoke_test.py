"""tcpactor-bench smoke test: every mode runs briefly against tcpactor-echo
and ends with a clean RESULT line, TLS included (a real handshake with
certificates made at test time by the openssl command), and a non-loopback
server is refused before any traffic. Keeps the benchmark tooling from
rotting; it measures nothing.

CTest passes TCPACTOR_ECHO and TCPACTOR_BINARY_DIR; the load generator is
$TCPACTOR_BINARY_DIR/apps/tcpactor-bench and the epoll reference server
$TCPACTOR_BINARY_DIR/bench/epoll_echo.
"""

import json
import os
import re
import selectors
import shutil
import subprocess
import tempfile
import unittest

from certs import make_ca, make_leaf

ECHO = os.environ.get("TCPACTOR_ECHO", "")
BINARY_DIR = os.environ.get("TCPACTOR_BINARY_DIR", "")
BENCH = os.path.join(BINARY_DIR, "apps", "tcpactor-bench")
EPOLL_ECHO = os.path.join(BINARY_DIR, "bench", "epoll_echo")

# Generous bounds: the machine has two cores shared with parallel builds.
START_TIMEOUT = 20.0
RUN_TIMEOUT = 60.0
EXIT_TIMEOUT = 10.0

LISTENING = re.compile(rb"listening on (\S+):(\d+)")

# Short runs with few connections: each mode takes about a second.
MODES = {
    "pingpong": ["--connections", "4", "--size", "64"],
    "stream": ["--connections", "2", "--size", "4KiB", "--window", "32KiB"],
    "connect": ["--connections", "4", "--size", "64"],
    "hold": ["--connections", "50", "--size", "64", "--duration", "0.5"],
}


def read_line(proc, timeout):
    """One line from `proc`'s stdout within `timeout` seconds, or None."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return None
    return proc.stdout.readline()


class BenchSmokeTest(unittest.TestCase):

    def setUp(self):
        self.assertTrue(os.access(BENCH, os.X_OK),
                        "no tcpactor-bench at %r (TCPACTOR_BINARY_DIR)"
                        % BENCH)
        self.procs = []

    def tearDown(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.communicate(timeout=EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()

    def start_server(self, *argv):
        """Starts a server on a kernel-picked port; returns the port."""
        proc = subprocess.Popen([*argv, "--port", "0"],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self.procs.append(proc)
        line = read_line(proc, START_TIMEOUT)
        m = LISTENING.search(line or b"")
        self.assertIsNotNone(m, "%s printed no 'listening on' line: %r"
                             % (argv[0], line))
        return int(m.group(2))

    def bench(self, *args):
        """Runs tcpactor-bench; returns (exit code, stdout, stderr)."""
        proc = subprocess.run([BENCH, *args], capture_output=True,
                              timeout=RUN_TIMEOUT)
        return proc.returncode, proc.stdout.decode(), proc.stderr.decode()

    def result(self, out):
        lines = [l for l in out.splitlines() if l.startswith("RESULT ")]
        self.assertEqual(len(lines), 1, "want one RESULT line in:\n" + out)
        return json.loads(lines[0][len("RESULT "):])

    def run_mode(self, port, mode, extra, duration="1", warmup="0.2"):
        args = ["--port", str(port), "--mode", mode, "--duration", duration,
                "--warmup", warmup, *extra]
        rc, out, err = self.bench(*args)
        res = self.result(out)
        ctx = "%s: exit %d\nstdout:\n%s\nstderr:\n%s" % (mode, rc, out, err)
        self.assertEqual(rc, 0, ctx)
        self.assertEqual(res["mode"], mode, ctx)
        self.assertGreater(res["messages"], 0, ctx)
        self.assertGreater(res["bytes"], 0, ctx)
        self.assertEqual(res["errors"], 0, ctx)
        self.assertEqual(res["error_kinds"], {}, ctx)
        self.assertGreater(res["machine"]["cores"], 0, ctx)
        self.assertTrue(res["machine"]["kernel"], ctx)
        self.assertTrue(res["machine"]["build_type"], ctx)
        return res, out

    # -- tests ---------------------------------------------------------------

    def test_every_mode_runs_clean_against_tcpactor_echo(self):
        self.assertTrue(ECHO and os.access(ECHO, os.X_OK),
                        "TCPACTOR_ECHO must name the tcpactor-echo binary")
        port = self.start_server(ECHO, "--log-level", "quiet",
                                 "--io-threads", "1")
        for mode, extra in MODES.items():
            with self.subTest(mode=mode):
                res, out = self.run_mode(port, mode, extra)
                self.assertIn("errors", out)  # the human summary came too
                if mode == "pingpong":
                    lat = res["latency_us"]
                    self.assertGreater(lat["samples"], 0)
                    self.assertLessEqual(lat["p50"], lat["p99"])
                    self.assertLessEqual(lat["p99"], lat["p999"])
                    self.assertLessEqual(lat["p999"], lat["max"])
                    self.assertGreater(res["messages_per_s"], 0)
                if mode == "stream":
                    self.assertGreater(res["mb_per_s"], 0)
                if mode == "connect":
                    self.assertGreater(res["connections_per_s"], 0)
                if mode == "hold":
                    self.assertEqual(res["held"], 50)
                    self.assertEqual(res["messages"], 50)

    def test_json_only_prints_just_the_result_line(self):
        self.assertTrue(ECHO and os.access(ECHO, os.X_OK))
        port = self.start_server(ECHO, "--log-level", "quiet")
        # One second, not less: under ThreadSanitizer a fresh daemon's first
        # echo takes about 0.25 s, and a run without a message exits 1.
        rc, out, err = self.bench("--port", str(port), "--json-only",
                                  "--duration", "1", "--warmup", "0",
                                  "--connections", "2", "--threads", "2")
        self.assertEqual(rc, 0, err + out)
        self.assertEqual(len(out.splitlines()), 1, out)
        self.assertEqual(self.result(out)["threads"], 2)

    def test_epoll_reference_server_echoes(self):
        if not os.access(EPOLL_ECHO, os.X_OK):
            self.skipTest("bench/epoll_echo not built")
        port = self.start_server(EPOLL_ECHO)
        self.run_mode(port, "stream", MODES["stream"])

    def test_non_loopback_address_is_refused_before_any_traffic(self):
        for host in ["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"]:
            with self.subTest(host=host):
                rc, out, err = self.bench("--host", host, "--port", "9",
                                          "--duration", "1")
                self.assertEqual(rc, 2, err)
                self.assertIn("refusing", err)
                self.assertIn("not a loopback address", err)
                self.assertIn("--allow-remote", err)
                self.assertNotIn("RESULT", out)
        # Refused before the first socket exists, not after a connect.
        if shutil.which("strace") is None:
            self.skipTest("strace not installed")
        # LeakSanitizer (the ASan build) stops itself under ptrace.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                               ":detect_leaks=0").lstrip(":")
        proc = subprocess.run(
            ["strace", "-f", "-e", "trace=socket,connect", BENCH,
             "--host", "192.0.2.1", "--port", "9"],
            capture_output=True, timeout=RUN_TIMEOUT, env=env)
        trace = proc.stderr.decode()
        if "PTRACE" in trace or "Operation not permitted" in trace:
            self.skipTest("ptrace not permitted here")
        self.assertEqual(proc.returncode, 2, trace)
        self.assertNotRegex(trace, r"\b(socket|connect)\(", trace)

    def test_tls_every_mode_against_tcpactor_echo(self):
        self.assertTrue(ECHO and os.access(ECHO, os.X_OK),
                        "TCPACTOR_ECHO must name the tcpactor-echo binary")
        if shutil.which("openssl") is None:
            self.skipTest("openssl command not installed")
        with tempfile.TemporaryDirectory() as d:
            make_ca(d, "ca", "bench smoke ca")
            make_ca(d, "other", "bench smoke other")
            make_leaf(d, "server", "localhost", "ca", 2)
            port = self.start_server(
                ECHO, "--log-level", "quiet", "--io-threads", "1",
                "--tls.cert-file", os.path.join(d, "server.pem"),
                "--tls.key-file", os.path.join(d, "server.key"))
            ca = os.path.join(d, "ca.pem")
            # Tiny runs: each proves a handshake and verified echoes.
            cases = {
                "pingpong": ["--tls-ca", ca, "--connections", "4"],
                "stream": ["--tls-ca", ca, "--tls-sni", "localhost",
                           "--tls-version", "1.2", "--connections", "2",
                           "--window", "64KiB"],
                "connect": ["--tls-resume", "--connections", "4"],
                "hold": ["--tls-ca", ca, "--connections", "8",
                         "--duration", "0.2"],
            }
            for mode, extra in cases.items():
                with self.subTest(mode=mode):
                    res, out = self.run_mode(port, mode, ["--tls", *extra],
                                             duration="0.4", warmup="0.1")
                    self.assertTrue(res["tls"], out)
                    self.assertTrue(res["tls_protocol"].startswith("TLSv1"),
                                    out)
                    self.assertTrue(res["tls_cipher"], out)
                    self.assertGreaterEqual(res["tls_handshakes"],
                                            res["connections"], out)
                    self.assertIn("tls ", out)  # the summary's TLS line
                    if mode == "stream":
                        self.assertEqual(res["tls_protocol"], "TLSv1.2")
                    if mode == "connect":
                        self.assertFalse(res["tls_verify"])
                        # Loops after each slot's first resume a session.
                        self.assertGreater(res["tls_resumed"], 0, out)
                    else:
                        self.assertTrue(res["tls_verify"])
            # A server the CA did not sign: every handshake fails, and the
            # summary names OpenSSL's reason.
            rc, out, err = self.bench(
                "--port", str(port), "--tls", "--tls-ca",
                os.path.join(d, "other.pem"), "--connections", "2",
                "--duration", "0.2", "--warmup", "0")
            self.assertEqual(rc, 1, out + err)
            kinds = self.result(out)["error_kinds"]
            self.assertTrue(any(k.startswith("handshake: TLS: certificate "
                                             "verify failed") for k in kinds),
                            kinds)
            # Plain TCP against the TLS port: the server's handshake fails.
            # TLS against a plain server: ours fails, with a reason.
            plain = self.start_server(ECHO, "--log-level", "quiet")
            rc, out, err = self.bench("--port", str(plain), "--tls",
                                      "--connections", "1", "--duration",
                                      "0.2", "--warmup", "0")
            self.assertEqual(rc, 1, out + err)
            self.assertIn("not verified", err)  # the note on stderr
            kinds = self.result(out)["error_kinds"]
            self.assertTrue(any(k.startswith("handshake: ") for k in kinds),
                            kinds)

    def test_bad_options_exit_2(self):
        rc, _, err = self.bench("--port", "9", "--mode", "bogus")
        self.assertEqual(rc, 2)
        self.assertIn("--mode", err)
        rc, _, err = self.bench("--mode", "pingpong")
        self.assertEqual(rc, 2)
        self.assertIn("--port", err)
        rc, _, err = self.bench("--port", "9", "--tls-ca", "ca.pem")
        self.assertEqual(rc, 2)
        self.assertIn("--tls-ca: needs --tls", err)
        rc, _, err = self.bench("--port", "9", "--tls", "--tls-version",
                                "1.1")
        self.assertEqual(rc, 2)
        self.assertIn("--tls-version", err)
        rc, _, err = self.bench("--port", "9", "--tls", "--tls-ca",
                                "/nonexistent/ca.pem")
        self.assertEqual(rc, 2)
        self.assertIn("--tls-ca: /nonexistent/ca.pem", err)
        rc, _, err = self.bench("--port", "9", "--tls", "--tls-ciphersuites",
                                "NOT_A_SUITE")
        self.assertEqual(rc, 2)
        self.assertIn("--tls-ciphersuites", err)
        rc, out, _ = self.bench("--help")
        self.assertEqual(rc, 0)
        for opt in ["--tls", "--tls-ca", "--tls-sni", "--tls-version",
                    "--tls-ciphers", "--tls-ciphersuites", "--tls-resume"]:
            self.assertIn(opt, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
