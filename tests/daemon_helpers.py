"""Shared by the tests that drive tcpactor-echo: start a daemon on port 0,
learn its port from the "listening on HOST:PORT" line, watch its output
without sleeping, and always kill it at the end.

CTest passes TCPACTOR_ECHO (the binary) and TCPACTOR_SOURCE_DIR.
"""

import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

ECHO = os.environ.get("TCPACTOR_ECHO", "")
SOURCE_DIR = os.environ.get(
    "TCPACTOR_SOURCE_DIR",
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_CONF = os.path.join(SOURCE_DIR, "config", "tcpactor-echo.conf")

# Generous bounds: the machine has two cores shared with parallel builds.
START_TIMEOUT = 20.0
IO_TIMEOUT = 30.0
EXIT_TIMEOUT = 10.0

LISTENING = re.compile(r"listening on (\S+):(\d+)")


def recv_exactly(sock, n):
    chunks = []
    got = 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise AssertionError(
                "peer closed after %d of %d bytes" % (got, n))
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class _Lines:
    """Collects the lines of one pipe on a thread, so a chatty daemon never
    blocks on a full pipe and a test can wait for a line with a deadline."""

    def __init__(self, pipe):
        self._pipe = pipe
        self._lines = []
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        for raw in iter(self._pipe.readline, b""):
            with self._cond:
                self._lines.append(raw.decode(errors="replace"))
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def count(self):
        with self._cond:
            return len(self._lines)

    def text(self):
        with self._cond:
            return "".join(self._lines)

    def wait_for(self, pattern, timeout, since=0):
        """Returns the first match of `pattern` (a regex) in a line with index
        >= `since`, or None once `timeout` passed or the pipe closed."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            i = since
            while True:
                while i < len(self._lines):
                    m = regex.search(self._lines[i])
                    if m:
                        return m
                    i += 1
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    return None
                self._cond.wait(left)

    def join(self, timeout):
        self._thread.join(timeout)


class Daemon:
    """A running tcpactor-echo whose stdout and stderr are read as they
    come."""

    def __init__(self, args, env=None, cwd=None):
        self.proc = subprocess.Popen([ECHO, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=cwd)
        self.out = _Lines(self.proc.stdout)
        self.err = _Lines(self.proc.stderr)

    @property
    def returncode(self):
        return self.proc.returncode

    def poll(self):
        return self.proc.poll()

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Waits for the exit and the end of both pipes; raises
        subprocess.TimeoutExpired."""
        self.proc.wait(timeout=timeout)
        self.out.join(timeout)
        self.err.join(timeout)
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        for pipe in (self.proc.stdout, self.proc.stderr):
            pipe.close()


class DaemonTestCase(unittest.TestCase):
    """Starts daemons in a scratch directory and kills them in tearDown."""

    def setUp(self):
        self.assertTrue(ECHO and os.access(ECHO, os.X_OK),
                        "TCPACTOR_ECHO must name the tcpactor-echo binary")
        self.daemons = []
        self.tmp = tempfile.TemporaryDirectory(
            prefix=type(self).__name__ + ".")

    def tearDown(self):
        for d in self.daemons:
            d.kill()
        self.tmp.cleanup()

    def write_conf(self, text, name="echo.conf"):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def spawn(self, *args, env=None, cwd=None):
        d = Daemon(args, env=env, cwd=cwd)
        self.daemons.append(d)
        return d

    def start(self, *args, conf=None, env=None, cwd=None):
        """Starts a daemon on a kernel-picked port and returns
        (daemon, port)."""
        if conf is None:
            conf = self.write_conf('[echo]\nlog-level="warning"\n')
        # SIGTERM drains open connections; a short deadline keeps stop()
        # quick for tests that leave a client connected. Later arguments
        # override it.
        d = self.spawn("--port", "0", "--config-file", conf,
                       "--drain-timeout=1s", *args, env=env, cwd=cwd)
        m = d.out.wait_for(LISTENING, START_TIMEOUT)
        if not m:
            d.kill()
            self.fail("no 'listening on' line; exit %s, stdout: %r, "
                      "stderr: %s" % (d.returncode, d.out.text(),
                                      d.err.text()))
        self.assertEqual(m.group(1), "127.0.0.1")
        port = int(m.group(2))
        self.assertNotEqual(port, 0)
        return d, port

    def run_daemon(self, *args, env=None):
        """Runs a daemon expected to exit by itself; returns
        (exit code, stdout, stderr)."""
        d = self.spawn(*args, env=env)
        try:
            d.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail("daemon %r did not exit within %ss"
                      % (args, START_TIMEOUT))
        return d.returncode, d.out.text(), d.err.text()

    def connect(self, port):
        sock = socket.create_connection(("127.0.0.1", port),
                                        timeout=IO_TIMEOUT)
        self.addCleanup(sock.close)
        return sock

    def run_clients(self, n, client):
        """Runs client(i) for i in range(n) on n threads at once and fails
        with every exception or message they returned."""
        errors = []

        def run(i):
            try:
                err = client(i)
                if err:
                    errors.append("client %d: %s" % (i, err))
            except Exception as e:  # reported below, in the main thread
                errors.append("client %d: %r" % (i, e))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(IO_TIMEOUT * 2)
        self.assertFalse(any(t.is_alive() for t in threads),
                         "clients still running")
        self.assertEqual(errors, [])

    def stop(self, d):
        """SIGTERM; returns (exit code, stderr)."""
        d.send_signal(signal.SIGTERM)
        try:
            d.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail("daemon did not exit within %ss of SIGTERM"
                      % EXIT_TIMEOUT)
        return d.returncode, d.err.text()
