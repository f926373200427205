"""tcpactor-echo, driven by peers we did not write: Python's socket module
and nc (netcat-openbsd).

CTest passes TCPACTOR_ECHO (the binary) and TCPACTOR_SOURCE_DIR. Every daemon
binds port 0 and the test reads the real port from the "listening on" line on
its stdout, so tests never collide and never sleep to synchronise.
"""

import hashlib
import os
import re
import resource
import signal
import socket
import subprocess
import threading
import time
import unittest

from daemon_helpers import (DEFAULT_CONF, EXIT_TIMEOUT, IO_TIMEOUT,
                            DaemonTestCase, recv_exactly)


class EchoDaemonTest(DaemonTestCase):

    # -- helpers -------------------------------------------------------------

    def echo_roundtrip(self, port, payload):
        """Sends `payload` from one thread while reading from another, so a
        payload larger than the socket buffers cannot deadlock us against
        the server's backpressure."""
        sock = self.connect(port)
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        try:
            return recv_exactly(sock, len(payload))
        finally:
            sender.join(IO_TIMEOUT)

    # -- echo ----------------------------------------------------------------

    def test_small_payload_comes_back_unchanged(self):
        _, port = self.start()
        sock = self.connect(port)
        sock.sendall(b"ping\n")
        self.assertEqual(recv_exactly(sock, 5), b"ping\n")
        binary = bytes(range(256))
        sock.sendall(binary)
        self.assertEqual(recv_exactly(sock, len(binary)), binary)

    def test_one_mebibyte_comes_back_with_the_same_checksum(self):
        _, port = self.start()
        payload = os.urandom(1 << 20)
        echoed = self.echo_roundtrip(port, payload)
        self.assertEqual(len(echoed), len(payload))
        self.assertEqual(hashlib.sha256(echoed).hexdigest(),
                         hashlib.sha256(payload).hexdigest())

    def test_nc_gets_hello_back(self):
        _, port = self.start()
        # -N: shut down the sending side at EOF on stdin, so nc exits once
        # the server has echoed everything and closed.
        out = subprocess.run(
            ["sh", "-c", "printf hello | nc -N 127.0.0.1 %d" % port],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=IO_TIMEOUT, check=True)
        self.assertEqual(out.stdout, b"hello")

    def test_half_close_answers_then_closes(self):
        # With --half-close the FIN reaches the service as its own event; the
        # echo service answers everything before it, then closes.
        _, port = self.start("--half-close=true")
        out = subprocess.run(
            ["sh", "-c", "printf hello | nc -N 127.0.0.1 %d" % port],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=IO_TIMEOUT, check=True)
        self.assertEqual(out.stdout, b"hello")

    def test_twenty_concurrent_clients_each_get_their_own_bytes(self):
        _, port = self.start()
        size = 64 * 1024

        def client(i):
            payload = bytes([i]) * 16 + os.urandom(size)
            if self.echo_roundtrip(port, payload) != payload:
                return "got other bytes back"
            return None

        self.run_clients(20, client)

    def test_default_config_file_starts_and_echoes(self):
        self.assertTrue(os.path.isfile(DEFAULT_CONF), DEFAULT_CONF)
        proc, port = self.start(conf=DEFAULT_CONF)
        sock = self.connect(port)
        sock.sendall(b"defaults")
        self.assertEqual(recv_exactly(sock, 8), b"defaults")

    # -- connection limits ---------------------------------------------------

    def refused(self, port, source="127.0.0.1"):
        """Connects from `source`; True if the daemon reset or closed the
        connection without echoing, False if it echoed."""
        try:
            sock = self.connect_from(source, port)
            sock.sendall(b"?")
            return sock.recv(1) == b""
        except ConnectionResetError:
            # On loopback the reset can beat connect() back to us.
            return True

    def connect_from(self, source, port):
        sock = socket.create_connection(("127.0.0.1", port),
                                        timeout=IO_TIMEOUT,
                                        source_address=(source, 0))
        self.addCleanup(sock.close)
        return sock

    def test_max_connections_resets_the_excess_and_logs_once(self):
        proc, port = self.start("--max-connections", "2")
        held = [self.connect(port) for _ in range(2)]
        for sock in held:
            sock.sendall(b"in")
            self.assertEqual(recv_exactly(sock, 2), b"in")
        for _ in range(5):
            self.assertTrue(self.refused(port))
        # Once one closes, a new client gets in: retried until the daemon
        # has seen the close, within IO_TIMEOUT.
        held.pop().close()
        deadline = time.monotonic() + IO_TIMEOUT
        while self.refused(port):
            self.assertLess(time.monotonic(), deadline, "never admitted again")
        code, err = self.stop(proc)
        self.assertEqual(code, 0, err)
        hits = [l for l in err.splitlines() if "listener limit 2 reached" in l]
        self.assertEqual(len(hits), 1, err)

    def test_per_ip_limit_from_the_config_file(self):
        conf = self.write_conf(
            '[echo]\nlog-level="warning"\nmax-connections-per-ip=1\n')
        _, port = self.start(conf=conf)
        first = self.connect_from("127.0.0.1", port)
        first.sendall(b"a")
        self.assertEqual(recv_exactly(first, 1), b"a")
        self.assertTrue(self.refused(port, "127.0.0.1"))
        other = self.connect_from("127.0.0.2", port)
        other.sendall(b"b")
        self.assertEqual(recv_exactly(other, 1), b"b")

    def test_per_ip_limit_above_the_total_is_rejected_by_name(self):
        code, _, err = self.run_daemon("--max-connections", "1",
                                       "--max-connections-per-ip=2")
        self.assertEqual(code, 2)
        self.assertIn("echo.max-connections-per-ip", err)

    # -- signals -------------------------------------------------------------

    def test_sigterm_exits_zero(self):
        proc, port = self.start()
        # An open, idle connection must not hold up the shutdown.
        sock = self.connect(port)
        sock.sendall(b"x")
        self.assertEqual(recv_exactly(sock, 1), b"x")
        code, err = self.stop(proc)
        self.assertEqual(code, 0, err)

    def test_sigterm_drains_open_connections_without_loss(self):
        conf = self.write_conf('[echo]\nlog-level="info"\n')
        proc, port = self.start("--drain-timeout=20s", conf=conf)
        sock = self.connect(port)
        sock.sendall(b"before")
        self.assertEqual(recv_exactly(sock, 6), b"before")
        proc.send_signal(signal.SIGTERM)
        self.assertTrue(proc.err.wait_for(re.compile("draining"), IO_TIMEOUT),
                        proc.err.text())
        # No new connections while draining...
        deadline = time.monotonic() + IO_TIMEOUT
        refused = False
        while not refused and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                refused = True
        self.assertTrue(refused, "still accepting while draining")
        # ...but the open one goes on, byte for byte.
        payload = hashlib.sha256(b"drain").digest() * 32768  # 1 MiB
        got = bytearray()
        def reader():
            while len(got) < len(payload):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got.extend(chunk)
        t = threading.Thread(target=reader)
        t.start()
        sock.sendall(payload)
        t.join(IO_TIMEOUT)
        self.assertEqual(bytes(got), payload)
        self.assertIsNone(proc.poll(), "exited before the client finished")
        sock.close()
        self.assertEqual(proc.wait(EXIT_TIMEOUT), 0)
        self.assertIn("drained: every connection finished", proc.err.text())

    def test_sigterm_drain_deadline_closes_idle_clients(self):
        proc, port = self.start("--drain-timeout=300ms", "--log-level=info")
        sock = self.connect(port)
        sock.sendall(b"x")
        self.assertEqual(recv_exactly(sock, 1), b"x")
        t0 = time.monotonic()
        code, err = self.stop(proc)
        self.assertEqual(code, 0, err)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.assertIn("closed 1 connection(s)", err)
        self.assertEqual(sock.recv(1), b"")

    def test_sigint_exits_zero(self):
        proc, _ = self.start()
        proc.send_signal(signal.SIGINT)
        self.assertEqual(proc.wait(EXIT_TIMEOUT), 0)

    def test_sighup_is_logged_and_ignored(self):
        conf = self.write_conf('[echo]\nlog-level="debug"\n')
        proc, port = self.start(conf=conf)
        proc.send_signal(signal.SIGHUP)
        # Still serving after the SIGHUP: the echo proves the daemon lives,
        # and ordering it after the signal avoids a sleep.
        sock = self.connect(port)
        sock.sendall(b"still here")
        self.assertEqual(recv_exactly(sock, 10), b"still here")
        self.assertIsNone(proc.poll())
        code, err = self.stop(proc)
        self.assertEqual(code, 0, err)
        self.assertIn("SIGHUP ignored: TLS is not enabled", err)
        self.assertIn("connection 1 opened", err)

    # -- startup errors ------------------------------------------------------

    def test_port_in_use_fails_with_one_line(self):
        _, port = self.start()
        code, out, err = self.run_daemon("--port", str(port))
        self.assertNotEqual(code, 0)
        self.assertEqual(code, 1)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn("Address already in use", err)
        self.assertIn("127.0.0.1:%d" % port, err)
        self.assertNotIn("listening on", out)

    def test_unknown_key_names_file_line_and_key(self):
        conf = self.write_conf(
            "; a comment\n"
            "[echo]\n"
            'host="127.0.0.1"\n'
            "\n"
            "# another comment\n"
            "port=0\n"
            "prot=7000\n")
        code, _, err = self.run_daemon("--config-file", conf)
        self.assertEqual(code, 2)
        self.assertEqual(err.strip(),
                         "tcpactor-echo: %s:7: unknown key 'echo.prot'" % conf)

    def test_unknown_section_is_an_error(self):
        conf = self.write_conf("[ehco]\nport=0\n")
        code, _, err = self.run_daemon("--config-file", conf)
        self.assertEqual(code, 2)
        self.assertIn("%s:1:" % conf, err)
        self.assertIn("[ehco]", err)

    def test_bad_value_in_file_names_the_key(self):
        conf = self.write_conf("[echo]\nport=abc\n")
        code, _, err = self.run_daemon("--config-file", conf)
        self.assertEqual(code, 2)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn("%s:2:" % conf, err)
        self.assertIn("echo.port", err)
        self.assertIn("abc", err)

    def test_wrong_types_in_file_are_errors(self):
        cases = [
            ("[echo]\nport=70000\n", "echo.port"),
            ("[echo]\nhost=127.0.0.1\n", "echo.host"),  # strings are quoted
            ('[echo]\nlog-level="loud"\n', "echo.log-level"),
            ("[connection]\nread-chunk=lots\n", "connection.read-chunk"),
            ("[connection]\nclose-timeout=5\n", "connection.close-timeout"),
            ("[scheduler]\nmax-threads=0\n", "scheduler.max-threads"),
            ("[echo]\nmax-connections=-1\n", "echo.max-connections"),
            ('[echo]\nmax-connections-per-ip="5"\n',
             "echo.max-connections-per-ip"),
        ]
        for text, key in cases:
            with self.subTest(key=key):
                conf = self.write_conf(text)
                code, _, err = self.run_daemon("--config-file", conf)
                self.assertEqual(code, 2, err)
                self.assertIn("%s:2:" % conf, err)
                self.assertIn("'%s'" % key, err)

    def test_bad_command_line_value_names_the_option(self):
        code, _, err = self.run_daemon("--port", "abc")
        self.assertEqual(code, 2)
        self.assertIn("--port", err)
        self.assertIn("abc", err)
        code, _, err = self.run_daemon("--max-unprocessed-bytes=-1")
        self.assertEqual(code, 2)
        self.assertIn("--max-unprocessed-bytes", err)
        code, _, err = self.run_daemon("--prot", "1")
        self.assertEqual(code, 2)
        self.assertIn("--prot", err)

    def test_socket_options_reach_the_kernel(self):
        # ss(8) reads the accepted socket's state from the kernel: the
        # keepalive timer runs with the idle time asked for, and the receive
        # buffer set on the listener (before listen) is the one the
        # connection got (the kernel doubles SO_RCVBUF).
        _, port = self.start("--keepalive=true", "--keepalive-idle=30s",
                             "--keepalive-interval=5s", "--keepalive-count=3",
                             "--user-timeout=20s", "--receive-buffer=48KiB")
        sock = self.connect(port)
        sock.sendall(b"x")
        self.assertEqual(recv_exactly(sock, 1), b"x")
        out = subprocess.run(
            ["ss", "-tnoim", "state", "established",
             "( sport = :%d )" % port],
            capture_output=True, text=True, check=True).stdout
        m = re.search(r"timer:\(keepalive,(\d+)sec", out)
        self.assertTrue(m, out)
        self.assertTrue(20 <= int(m.group(1)) <= 30, out)
        self.assertRegex(out, r"skmem:\(r\d+,rb%d," % (2 * 48 * 1024))

    def test_bad_socket_option_values_name_the_option(self):
        for arg, why in [("--keepalive-count=200", "200"),
                         ("--keepalive-idle=1500ms", "whole number"),
                         ("--keepalive=yes", "not true or false"),
                         ("--receive-buffer=lots", "lots")]:
            with self.subTest(arg=arg):
                code, _, err = self.run_daemon(arg)
                self.assertEqual(code, 2, err)
                self.assertIn(arg.split("=")[0], err)
                self.assertIn(why, err)
        conf = self.write_conf("[connection]\nkeepalive-count=0\n"
                               "user-timeout=-1s\n")
        code, _, err = self.run_daemon("--config-file", conf)
        self.assertEqual(code, 2, err)
        self.assertIn("%s:3:" % conf, err)
        self.assertIn("user-timeout", err)

    def test_inconsistent_limits_are_rejected_by_name(self):
        code, _, err = self.run_daemon("--connection.write-low-watermark=2MiB",
                                       "--write-high-watermark", "1MiB")
        self.assertEqual(code, 2)
        self.assertIn("write-low-watermark", err)

    def test_missing_config_file_is_an_error(self):
        missing = os.path.join(self.tmp.name, "nope.conf")
        code, _, err = self.run_daemon("--config-file", missing)
        self.assertEqual(code, 2)
        self.assertIn(missing, err)

    def test_command_line_overrides_the_file(self):
        conf = self.write_conf("[echo]\nport=1\nlog-level=\"quiet\"\n")
        # The file's port 1 would need root; --port 0 must win.
        proc, port = self.start(conf=conf)
        self.assertNotEqual(port, 1)

    # -- help ----------------------------------------------------------------

    def test_raises_its_descriptor_limit_and_holds_more_clients(self):
        # Started with a soft limit of 128 (children inherit ours), the
        # daemon raises it to the hard limit and holds 300 clients at once.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < 1024:
            self.skipTest("hard descriptor limit %d" % hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
        try:
            d, port = self.start()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        with open("/proc/%d/limits" % d.proc.pid) as f:
            line = next(x for x in f if x.startswith("Max open files"))
        limits = line.split()[3:5]
        self.assertEqual(limits[0], limits[1], line)
        socks = [self.connect(port) for _ in range(300)]
        for i, sock in enumerate(socks):
            sock.sendall(b"%d\n" % i)
        for i, sock in enumerate(socks):
            want = b"%d\n" % i
            self.assertEqual(recv_exactly(sock, len(want)), want)
        for sock in socks:
            sock.close()

    def test_help_lists_every_option(self):
        code, out, err = self.run_daemon("--help")
        self.assertEqual(code, 0, err)
        for flag in ["--help", "--config-file", "--host", "--port",
                     "--io-threads", "--log-level", "--backlog",
                     "--max-unprocessed-bytes", "--scheduler.max-threads",
                     "--max-connections", "--max-connections-per-ip"]:
            self.assertIn(flag, out)
        # Every key of the shipped config file is documented, under both its
        # command-line name and its file location.
        section = None
        keys = 0
        with open(DEFAULT_CONF) as f:
            for line in f:
                line = line.strip()
                if line.startswith("["):
                    section = line.strip("[]")
                elif line and line[0] not in ";#":
                    key = line.split("=", 1)[0].strip()
                    flag = "--" + (key if section == "echo"
                                   else section + "." + key)
                    self.assertRegex(out, r"%s\b" % re.escape(flag))
                    self.assertIn("[%s] %s." % (section, key), out)
                    keys += 1
        self.assertGreaterEqual(keys, 14)
        code, short_out, _ = self.run_daemon("-h")
        self.assertEqual(code, 0)
        self.assertEqual(short_out, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
