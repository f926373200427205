"""tcpactor-bench smoke test: every mode runs briefly against tcpactor-echo
and ends with a clean RESULT line, and a non-loopback server is refused
before any traffic. Keeps the benchmark tooling from rotting; it measures
nothing.

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
import unittest

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

    def run_mode(self, port, mode, extra):
        args = ["--port", str(port), "--mode", mode, "--duration", "1",
                "--warmup", "0.2", *extra]
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
        rc, out, err = self.bench("--port", str(port), "--json-only",
                                  "--duration", "0.3", "--warmup", "0",
                                  "--connections", "2", "--threads", "2")
        self.assertEqual(rc, 0, err)
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

    def test_bad_options_exit_2_and_tls_is_not_yet(self):
        rc, _, err = self.bench("--port", "9", "--mode", "bogus")
        self.assertEqual(rc, 2)
        self.assertIn("--mode", err)
        rc, _, err = self.bench("--mode", "pingpong")
        self.assertEqual(rc, 2)
        self.assertIn("--port", err)
        rc, _, err = self.bench("--port", "9", "--tls")
        self.assertEqual(rc, 2)
        self.assertIn("TLS: not yet", err)
        rc, out, _ = self.bench("--help")
        self.assertEqual(rc, 0)
        self.assertIn("TLS: not yet", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
