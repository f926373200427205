"""tcpactor-echo --proxy-protocol behind a real HAProxy (Debian's haproxy,
run in the foreground with -db): HAProxy accepts the client, connects to the
daemon and sends the PROXY header (send-proxy: v1, send-proxy-v2: v2) before
the client's bytes. The echo must work through it, and the daemon must name
the real client, not HAProxy: clients bind 127.0.0.2 while HAProxy reaches
the daemon from 127.0.0.1, so the daemon's "opened peer=" line tells them
apart.

CTest passes TCPACTOR_ECHO and TCPACTOR_SOURCE_DIR. Everything binds
loopback; readiness is polled, never slept for. Skipped without haproxy
(scripts/install-deps.sh --test installs it).
"""

import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import unittest

from certs import make_self_signed
from daemon_helpers import (IO_TIMEOUT, START_TIMEOUT, EXIT_TIMEOUT,
                            DaemonTestCase, recv_exactly)

HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)

CLIENT_ADDR = "127.0.0.2"


def free_port():
    """A port nobody listens on right now (HAProxy binds it next; a clash
    shows as HAProxy failing to start, which the test reports)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_from(addr, port, timeout=IO_TIMEOUT):
    """A connection from `addr` to 127.0.0.1:port."""
    sock = socket.socket()
    sock.settimeout(timeout)
    sock.bind((addr, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_until_closed(sock, timeout=IO_TIMEOUT):
    """Reads until EOF or reset; returns what came. Fails on the deadline."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("not closed within %ss" % timeout)
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


@unittest.skipIf(HAPROXY is None, "haproxy is not installed")
class ProxyDaemonTest(DaemonTestCase):

    def start_echo(self, mode, *args):
        return self.start("--proxy-protocol=" + mode, "--log-level=debug",
                          *args)

    def start_haproxy(self, backend_port, send):
        """HAProxy in TCP mode on a free loopback port, in front of the
        daemon, sending `send` (send-proxy or send-proxy-v2). Returns the
        port once it accepts connections."""
        port = free_port()
        cfg = os.path.join(self.tmp.name, "haproxy-%s.cfg" % send)
        with open(cfg, "w") as f:
            f.write("""global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:%d
    default_backend be
backend be
    server echo 127.0.0.1:%d %s
""" % (port, backend_port, send))
        out = open(os.path.join(self.tmp.name, "haproxy-%s.log" % send),
                   "w+b")
        self.addCleanup(out.close)
        proc = subprocess.Popen([HAPROXY, "-db", "-f", cfg],
                                stdout=out, stderr=subprocess.STDOUT)

        def stop():
            if proc.poll() is None:
                proc.kill()
            proc.wait(EXIT_TIMEOUT)
        self.addCleanup(stop)
        # Ready once its port accepts. Polling connects succeed or are
        # refused at once on loopback, so this loop is bounded by the
        # deadline, not by a sleep.
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                out.seek(0)
                self.fail("haproxy exited with %s: %s"
                          % (proc.returncode, out.read().decode(errors="replace")))
            try:
                with socket.create_connection(("127.0.0.1", port),
                                              timeout=IO_TIMEOUT):
                    return port
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    self.fail("haproxy did not listen on %d within %ss"
                              % (port, START_TIMEOUT))

    def expect_peer(self, daemon, name, since=0):
        """The daemon logged a connection from `name`, the client socket's
        own (address, port)."""
        addr, cport = name[:2]
        pattern = r"connection \d+ opened peer=%s:%d\b" % (
            re.escape(addr), cport)
        self.assertTrue(daemon.err.wait_for(pattern, IO_TIMEOUT, since),
                        "no %r in the daemon's log:\n%s"
                        % (pattern, daemon.err.text()))

    def echo_through(self, port, payload):
        sock = client_from(CLIENT_ADDR, port)
        self.addCleanup(sock.close)
        sock.sendall(payload)
        self.assertEqual(recv_exactly(sock, len(payload)), payload)
        return sock

    def check_mode(self, mode, send):
        d, echo_port = self.start_echo(mode)
        self.assertTrue(d.err.wait_for(
            r"PROXY protocol %s header expected" % mode, IO_TIMEOUT))
        port = self.start_haproxy(echo_port, send)
        since = d.err.count()
        for payload in (b"hello through haproxy\n", os.urandom(200000)):
            sock = self.echo_through(port, payload)
            self.expect_peer(d, sock.getsockname(), since)
        # Every header was taken, the readiness probe's included.
        self.assertNotRegex(d.err.text(), r"proxy_failed")
        return d, echo_port, port

    def test_send_proxy_v1(self):
        self.check_mode("v1", "send-proxy")

    def test_send_proxy_v2(self):
        self.check_mode("v2", "send-proxy-v2")

    def test_any_takes_both(self):
        d, echo_port, _ = self.check_mode("any", "send-proxy")
        port2 = self.start_haproxy(echo_port, "send-proxy-v2")
        sock = self.echo_through(port2, b"v2 as well")
        self.expect_peer(d, sock.getsockname())

    def test_wrong_version_and_direct_clients_are_refused(self):
        d, echo_port = self.start_echo("v2")
        port = self.start_haproxy(echo_port, "send-proxy")  # v1: wrong
        sock = client_from(CLIENT_ADDR, port)
        self.addCleanup(sock.close)
        sock.sendall(b"never echoed")
        self.assertEqual(read_until_closed(sock), b"")
        self.assertTrue(d.err.wait_for(
            r"proxy_failed peer=127\.0\.0\.1:\d+ reason=proxy_header_invalid:"
            r" 127\.0\.0\.1:\d+: bad v2 signature", IO_TIMEOUT),
            d.err.text())
        # A client that skips the proxy altogether.
        direct = client_from(CLIENT_ADDR, echo_port)
        self.addCleanup(direct.close)
        direct.sendall(b"GET / HTTP/1.0\r\n\r\n")
        self.assertEqual(read_until_closed(direct), b"")
        self.assertTrue(d.err.wait_for(
            r"proxy_failed peer=127\.0\.0\.2:%d reason=proxy_header_invalid"
            % direct.getsockname()[1], IO_TIMEOUT), d.err.text())

    def test_silent_client_times_out(self):
        d, echo_port = self.start_echo("any", "--proxy-header-timeout=200ms")
        sock = client_from(CLIENT_ADDR, echo_port)
        self.addCleanup(sock.close)
        t0 = time.monotonic()
        self.assertEqual(read_until_closed(sock), b"")
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)
        self.assertTrue(d.err.wait_for(
            r"proxy_failed peer=127\.0\.0\.2:\d+ "
            r"reason=proxy_header_timeout: .*within 200ms", IO_TIMEOUT),
            d.err.text())

    def test_bad_settings_exit_2_naming_the_key(self):
        for args, text in [
                (["--proxy-protocol=v3"],
                 "--proxy-protocol: 'v3' is not one of off, v1, v2, any"),
                (["--proxy-protocol=v1", "--proxy-header-timeout=0s"],
                 "echo.proxy-header-timeout: must be positive"),
                (["--proxy-protocol=any", "--max-connections-per-ip=3"],
                 "echo.max-connections-per-ip: cannot be combined with "
                 "echo.proxy-protocol (any)")]:
            code, _, err = self.run_daemon("--port", "0", *args)
            self.assertEqual(code, 2, err)
            self.assertIn(text, err)

    def test_tls_behind_haproxy(self):
        # HAProxy passes TLS through (mode tcp) after its header; the daemon
        # reads the header, then shakes hands.
        cwd = self.tmp.name
        make_self_signed(cwd, "server", "localhost", "DNS:localhost")
        d, echo_port = self.start_echo(
            "v2", "--tls.cert-file=" + os.path.join(cwd, "server.pem"),
            "--tls.key-file=" + os.path.join(cwd, "server.key"))
        port = self.start_haproxy(echo_port, "send-proxy-v2")
        ctx = ssl.create_default_context(
            cafile=os.path.join(cwd, "server.pem"))
        raw = client_from(CLIENT_ADDR, port)
        name = raw.getsockname()  # wrap_socket detaches `raw`
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"secret through haproxy")
            self.assertEqual(recv_exactly(tls, 22), b"secret through haproxy")
        self.expect_peer(d, name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
