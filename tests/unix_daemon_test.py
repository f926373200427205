"""tcpactor-echo on a Unix-domain socket (--unix-path), driven by peers we did
not write: socat, nc -U (netcat-openbsd) and Python's AF_UNIX sockets, plain
and with Python's ssl over the Unix socket.

CTest passes TCPACTOR_ECHO. Each daemon listens in a scratch directory and
prints "listening on PATH" once it accepts, so nothing sleeps to wait.
"""

import hashlib
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import threading
import unittest

from certs import make_ca, make_leaf
from daemon_helpers import (EXIT_TIMEOUT, IO_TIMEOUT, START_TIMEOUT,
                            DaemonTestCase, recv_exactly)


def nc_has_unix():
    nc = shutil.which("nc")
    if not nc:
        return False
    out = subprocess.run([nc, "-h"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=IO_TIMEOUT)
    return b"-U" in out.stdout


class UnixDaemonTest(DaemonTestCase):

    # -- helpers -------------------------------------------------------------

    def start_unix(self, *args, name="echo.sock"):
        """Starts a daemon on a socket file in the scratch directory; returns
        (daemon, path)."""
        path = os.path.join(self.tmp.name, name)
        conf = self.write_conf('[echo]\nlog-level="info"\n')
        d = self.spawn("--unix-path", path, "--config-file", conf,
                       "--drain-timeout=1s", *args)
        m = d.out.wait_for(r"listening on (\S+)", START_TIMEOUT)
        if not m:
            d.kill()
            self.fail("no 'listening on' line; exit %s, stderr: %s"
                      % (d.returncode, d.err.text()))
        self.assertEqual(m.group(1), path)
        return d, path

    def connect_unix(self, path):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(IO_TIMEOUT)
        self.addCleanup(sock.close)
        sock.connect(path)
        return sock

    def run_tool(self, cmd, data):
        return subprocess.run(cmd, input=data, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=IO_TIMEOUT,
                              check=True).stdout

    def stop_daemon(self, d):
        d.send_signal(signal.SIGTERM)
        try:
            return d.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail("daemon did not exit within %ss of SIGTERM"
                      % EXIT_TIMEOUT)

    def make_certs(self):
        """A CA and a server certificate for localhost, by the openssl
        command."""
        d = self.tmp.name
        make_ca(d, "ca", "unix test CA")
        make_leaf(d, "server", "localhost", "ca", 1)
        return (os.path.join(d, "ca.pem"), os.path.join(d, "server.pem"),
                os.path.join(d, "server.key"))

    # -- echo ----------------------------------------------------------------

    def test_python_af_unix_echo_small_and_one_mebibyte(self):
        _, path = self.start_unix()
        sock = self.connect_unix(path)
        sock.sendall(b"ping\n")
        self.assertEqual(recv_exactly(sock, 5), b"ping\n")
        payload = os.urandom(1 << 20)
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        try:
            echoed = recv_exactly(sock, len(payload))
        finally:
            sender.join(IO_TIMEOUT)
        self.assertEqual(hashlib.sha256(echoed).digest(),
                         hashlib.sha256(payload).digest())

    def test_limit_log_names_the_socket_path(self):
        d, path = self.start_unix("--max-connections=1")
        held = self.connect_unix(path)
        held.sendall(b"in")
        self.assertEqual(recv_exactly(held, 2), b"in")
        # The second client is reset at once: it reads the end, no echo.
        extra = self.connect_unix(path)
        try:
            extra.sendall(b"x")
            self.assertEqual(extra.recv(1), b"")
        except OSError:
            pass  # the reset may come first; either way it was refused
        m = d.err.wait_for(r"listener limit 1 reached", IO_TIMEOUT)
        self.assertIsNotNone(m, d.err.text())
        line = [l for l in d.err.text().splitlines()
                if "listener limit 1 reached" in l][0]
        self.assertIn(path + ": ", line)
        self.assertNotIn("port 0", line)

    def test_socat_gets_hello_back(self):
        self.assertTrue(shutil.which("socat"),
                        "socat is missing: scripts/install-deps.sh --test")
        _, path = self.start_unix()
        out = self.run_tool(["socat", "-t", "5", "-", "UNIX-CONNECT:" + path],
                            b"hello over socat")
        self.assertEqual(out, b"hello over socat")

    @unittest.skipUnless(nc_has_unix(), "this nc has no -U")
    def test_nc_u_gets_hello_back(self):
        _, path = self.start_unix()
        out = self.run_tool(["nc", "-N", "-U", path], b"hello over nc")
        self.assertEqual(out, b"hello over nc")

    def test_half_close_over_socat(self):
        # socat ends its side at EOF on stdin and keeps reading: the echo of
        # everything before the FIN still arrives.
        _, path = self.start_unix("--half-close=true")
        out = self.run_tool(["socat", "-t", "5", "-", "UNIX-CONNECT:" + path],
                            b"x" * 100000)
        self.assertEqual(out, b"x" * 100000)

    def test_tls_over_the_unix_socket_with_python_ssl(self):
        ca, cert, key = self.make_certs()
        _, path = self.start_unix("--tls.cert-file", cert,
                                  "--tls.key-file", key)
        ctx = ssl.create_default_context(cafile=ca)
        raw = self.connect_unix(path)
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            self.assertEqual(tls.version(), "TLSv1.3")
            tls.sendall(b"secret")
            self.assertEqual(recv_exactly(tls, 6), b"secret")

    # -- the socket file -------------------------------------------------------

    def test_unix_mode_from_flag_and_config_file(self):
        _, path = self.start_unix("--unix-mode=0660")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o660)
        self.assertTrue(stat.S_ISSOCK(os.stat(path).st_mode))
        path2 = os.path.join(self.tmp.name, "conf.sock")
        conf = self.write_conf('[echo]\nunix-path="%s"\nunix-mode="0600"\n'
                               % path2, name="unix.conf")
        d = self.spawn("--config-file", conf)
        self.assertTrue(d.out.wait_for(r"listening on " + path2,
                                       START_TIMEOUT), d.err.text())
        self.assertEqual(stat.S_IMODE(os.stat(path2).st_mode), 0o600)
        sock = self.connect_unix(path2)
        sock.sendall(b"conf")
        self.assertEqual(recv_exactly(sock, 4), b"conf")

    def test_file_removed_on_sigterm_and_sigint(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            d, path = self.start_unix()
            self.assertTrue(os.path.exists(path))
            d.send_signal(sig)
            self.assertEqual(d.wait(EXIT_TIMEOUT), 0, d.err.text())
            self.assertFalse(os.path.exists(path))

    def test_stale_socket_file_is_replaced(self):
        path = os.path.join(self.tmp.name, "echo.sock")
        crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        crashed.bind(path)
        crashed.listen(1)
        crashed.close()  # the file stays, nobody listens: stale
        d, _ = self.start_unix()
        self.assertTrue(d.err.wait_for("removed stale socket file " + path,
                                       START_TIMEOUT), d.err.text())
        sock = self.connect_unix(path)
        sock.sendall(b"fresh")
        self.assertEqual(recv_exactly(sock, 5), b"fresh")

    def test_live_socket_is_in_use_and_left_alone(self):
        _, path = self.start_unix()
        code, _, err = self.run_daemon("--unix-path", path)
        self.assertEqual(code, 1, err)
        self.assertIn(path, err)
        self.assertIn("address in use", err)
        # The first daemon still serves on its file.
        sock = self.connect_unix(path)
        sock.sendall(b"first")
        self.assertEqual(recv_exactly(sock, 5), b"first")

    def test_a_file_that_is_no_socket_is_refused_and_untouched(self):
        path = os.path.join(self.tmp.name, "notes.txt")
        with open(path, "w") as f:
            f.write("keep me")
        code, _, err = self.run_daemon("--unix-path", path)
        self.assertEqual(code, 1, err)
        self.assertIn(path, err)
        self.assertIn("not a socket", err)
        with open(path) as f:
            self.assertEqual(f.read(), "keep me")

    def test_too_long_path_is_a_config_error(self):
        path = "/tmp/" + "p" * 103
        code, _, err = self.run_daemon("--unix-path", path)
        self.assertEqual(code, 2, err)
        self.assertIn("echo.unix-path", err)
        self.assertIn("107", err)
        code, _, err = self.run_daemon("--unix-path", "/tmp/x.sock",
                                       "--unix-mode=0999")
        self.assertEqual(code, 2, err)
        self.assertIn("octal", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
