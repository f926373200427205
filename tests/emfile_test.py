"""A listener that runs out of file descriptors (EMFILE) must neither spin
nor leave connections hanging in the backlog, and must recover by itself
(ranch #36, ThousandIsland #206).

CTest passes TCPACTOR_EMFILE_CHILD: tests/emfile_child.cpp, an echo listener
that lowers its own RLIMIT_NOFILE to what it holds plus SPARE descriptors,
prints its port and answers "stats" on stdin. Everything is loopback, and
every wait is bounded by a deadline on a real condition, never a sleep.
"""

import os
import re
import selectors
import socket
import subprocess
import tempfile
import time
import unittest

CHILD = os.environ.get("TCPACTOR_EMFILE_CHILD", "")
SPARE = 8
START_TIMEOUT = 20.0
# A refused connection is reset after at most one accept backoff (100 ms);
# the bound leaves room for a machine shared with parallel builds.
CLOSE_TIMEOUT = 2.0
# The listener retries ten times a second while out of descriptors; spinning
# would show as ~100% of a core. 30% leaves room for a loaded machine while
# still failing on any busy loop.
MAX_CPU_SHARE = 0.30
EMFILE_PHASE = 1.0

LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+) fds=(\d+) limit=(\d+)")
STATS = re.compile(r"stats accepted=(\d+) open=(\d+) no_descriptors=(\d+) "
                   r"over_limit=(\d+) metrics_no_descriptors=(\d+) "
                   r"metrics_accepted=(\d+)")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of `pid`, from /proc/<pid>/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def outcome(sock, timeout):
    """What the server did with `sock` after we sent one byte: "echo",
    "eof", "reset", or "hang" if nothing came within `timeout`. `sock` is
    None if the reset beat connect() back to us, as it can on loopback."""
    if sock is None:
        return "reset"
    sock.settimeout(timeout)
    try:
        sock.sendall(b"x")
        data = sock.recv(16)
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "hang"
    return "echo" if data == b"x" else "eof" if not data else "data"


# UBSan's vptr check asks whether a vtable is readable by writing it into a
# pipe(); out of descriptors that fails, and the check reports the first
# call through every not-yet-seen vtable as "invalid vptr" and aborts. An
# ASan build is checked by hand instead, with -fno-sanitize=vptr.
@unittest.skipIf(os.environ.get("TCPACTOR_SANITIZER") == "asan",
                 "UBSan's vptr check cannot run out of file descriptors")
class EmfileTest(unittest.TestCase):

    def setUp(self):
        self.assertTrue(CHILD and os.access(CHILD, os.X_OK),
                        "TCPACTOR_EMFILE_CHILD must name the helper binary")
        self.err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([CHILD, str(SPARE)],
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=self.err, text=True)
        line = self.read_line(START_TIMEOUT)
        m = LISTENING.search(line or "")
        self.assertIsNotNone(m, "unexpected first line: %r" % line)
        self.port = int(m.group(1))
        self.fds = int(m.group(2))
        self.limit = int(m.group(3))
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)
        self.err.close()

    def read_line(self, timeout):
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                return None
        return self.proc.stdout.readline()

    def stats(self):
        """Asks the child, through its listener actor, for the counters; a
        reply proves the process (scheduler and actors included) is alive."""
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        line = self.read_line(10.0)
        m = STATS.search(line or "")
        self.assertIsNotNone(m, "no stats reply: %r" % line)
        return dict(zip(["accepted", "open", "no_descriptors", "over_limit",
                         "metrics_no_descriptors", "metrics_accepted"],
                        map(int, m.groups())))

    def connect(self):
        """A connected socket, or None if the connection was reset before
        connect() returned."""
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        except ConnectionResetError:
            return None
        self.socks.append(s)
        return s

    def test_out_of_descriptors_resets_new_connections_and_recovers(self):
        # Idle CPU first, for comparison (CAF's idle workers poll). The sleep
        # is a measuring window, not a synchronisation.
        self.stats()
        t0, c0 = time.monotonic(), cpu_seconds(self.proc.pid)
        time.sleep(0.5)
        idle = (cpu_seconds(self.proc.pid) - c0) / (time.monotonic() - t0)

        # Fill the descriptor table: the first SPARE connections are served,
        # the next one is refused, promptly.
        held = []
        for _ in range(SPARE + 1):
            s = self.connect()
            res = outcome(s, CLOSE_TIMEOUT)
            if res != "echo":
                break
            held.append(s)
        # The runtime may hold a spare descriptor itself (ASan does), so
        # the exact count is the process's business; it must be most.
        self.assertGreaterEqual(len(held), SPARE - 2, "served before EMFILE")
        self.assertLessEqual(len(held), SPARE, "served before EMFILE")
        self.assertIn(res, ("reset", "eof"),
                      "connection %d over the fd limit: %s"
                      % (SPARE + 1, res))

        # Under EMFILE for EMFILE_PHASE seconds, with connections arriving
        # in batches: each is closed promptly, at little CPU cost.
        latencies = []
        t0, c0 = time.monotonic(), cpu_seconds(self.proc.pid)
        while time.monotonic() - t0 < EMFILE_PHASE:
            batch = [self.connect() for _ in range(10)]
            for s in batch:
                start = time.monotonic()
                res = outcome(s, CLOSE_TIMEOUT)
                latencies.append(time.monotonic() - start)
                self.assertIn(res, ("reset", "eof"),
                              "connection under EMFILE: %s" % res)
                if s is not None:
                    s.close()
        wall = time.monotonic() - t0
        share = (cpu_seconds(self.proc.pid) - c0) / wall
        print("\nEMFILE: %d connections refused in %.2f s; child CPU %.1f%% "
              "of a core (idle %.1f%%); time to reset: max %.0f ms, "
              "median %.0f ms; RLIMIT_NOFILE %d = %d held at start + %d "
              "spare, %d connections served"
              % (len(latencies), wall, share * 100, idle * 100,
                 max(latencies) * 1000,
                 sorted(latencies)[len(latencies) // 2] * 1000,
                 self.limit, self.fds, SPARE, len(held)))
        self.assertLess(share, MAX_CPU_SHARE)

        st = self.stats()
        self.assertEqual(st["accepted"], len(held))
        self.assertEqual(st["open"], len(held))
        self.assertGreaterEqual(st["no_descriptors"], len(latencies) + 1)
        # runtime::metrics() counts the same refusals and accepts.
        self.assertEqual(st["metrics_no_descriptors"], st["no_descriptors"])
        self.assertEqual(st["metrics_accepted"], st["accepted"])

        # Recovery: once the held connections close, new ones are served.
        for s in held:
            s.close()
        deadline = time.monotonic() + 10
        while st["open"] > 0 and time.monotonic() < deadline:
            st = self.stats()
        self.assertEqual(st["open"], 0)
        for _ in range(3):
            self.assertEqual(outcome(self.connect(), CLOSE_TIMEOUT), "echo")
        refused = self.stats()["no_descriptors"]

        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.assertEqual(self.proc.wait(10), 0)
        self.err.seek(0)
        log = self.err.read()
        # One line when it started, one sum when it ended: none per refusal.
        starts = [l for l in log.splitlines()
                  if "resetting new connections" in l]
        self.assertEqual(len(starts), 1, log)
        self.assertIn("Too many open files", starts[0])
        self.assertIn("%d connections refused for lack of file descriptors"
                      % refused, log)
        self.assertLessEqual(len(log.splitlines()), 3, log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
