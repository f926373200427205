"""tcpactor-echo over TLS, driven by peers we did not write: Python's ssl
module (OpenSSL underneath, but its own handshake driver and verification
settings) and the openssl s_client command.

Certificates are made at test time with the openssl command (EC P-256 keys,
which are quick to generate): a CA, a server certificate for localhost and
127.0.0.1, a second one for the SNI name echo.example.test, a client
certificate, and a client certificate from a rogue CA.

Each test is independent and can be run alone, e.g.
  python3 tests/echo_daemon_tls_test.py EchoDaemonTlsTest.test_mtls_require
"""

import os
import selectors
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest

from certs import CLIENT_EXT, make_ca, make_leaf, openssl
from daemon_helpers import (EXIT_TIMEOUT, IO_TIMEOUT, SOURCE_DIR,
                            DaemonTestCase, _Lines, recv_exactly)

SNI_HOST = "echo.example.test"


def server_ext(*names):
    sans = ",".join(names)
    return "subjectAltName=%s\nextendedKeyUsage=serverAuth\n" % sans


class bare(str):
    """A config value written without quotes (durations, booleans)."""


class EchoDaemonTlsTest(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.TemporaryDirectory(prefix="echo_tls_certs.")
        d = cls.certs.name
        make_ca(d, "ca", "tcpactor test CA")
        make_ca(d, "rogue-ca", "rogue CA")
        make_leaf(d, "server", "localhost", "ca", 2,
                  server_ext("DNS:localhost", "IP:127.0.0.1"))
        make_leaf(d, "sni", SNI_HOST, "ca", 3, server_ext("DNS:" + SNI_HOST))
        make_leaf(d, "client", "good client", "ca", 4, CLIENT_EXT)
        make_leaf(d, "rogue", "rogue client", "rogue-ca", 5, CLIENT_EXT)
        make_leaf(d, "renewed", "localhost renewed", "ca", 6,
                  server_ext("DNS:localhost", "IP:127.0.0.1"))
        openssl("pkey", "-in", "server.key", "-aes256", "-passout",
                "pass:s3cret", "-out", "server-enc.key", cwd=d)

    @classmethod
    def tearDownClass(cls):
        cls.certs.cleanup()

    # -- helpers -------------------------------------------------------------

    def cert(self, name):
        return os.path.join(self.certs.name, name)

    def tls_conf(self, **tls):
        """A config file with TLS on (server.pem unless overridden), debug
        logging (the tests wait for log lines, a connection's close among
        them) and extra [tls] keys, given as Python names:
        verify_client="require" -> verify-client="require"."""
        keys = {"cert_file": self.cert("server.pem"),
                "key_file": self.cert("server.key")}
        keys.update(tls)
        lines = ['[echo]', 'log-level="debug"', '[tls]']
        for key, value in keys.items():
            values = value if isinstance(value, list) else [value]
            for v in values:
                fmt = "%s=%s" if isinstance(v, bare) else '%s="%s"'
                lines.append(fmt % (key.replace("_", "-"), v))
        return self.write_conf("\n".join(lines) + "\n", "tls.conf")

    def start_tls(self, **tls):
        d, port = self.start(conf=self.tls_conf(**tls))
        self.assertIn("(TLS)", d.out.text())
        return d, port

    def client_context(self, version=None, alpn=None, cert=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, checks name
        ctx.load_verify_locations(self.cert("ca.pem"))
        if version is not None:
            ctx.minimum_version = version
            ctx.maximum_version = version
        if alpn:
            ctx.set_alpn_protocols(alpn)
        if cert:
            ctx.load_cert_chain(self.cert(cert + ".pem"),
                                self.cert(cert + ".key"))
        return ctx

    def tls_connect(self, port, ctx=None, server_hostname="localhost"):
        """A finished handshake (Python's side of it)."""
        raw = self.connect(port)
        ctx = ctx or self.client_context()
        sock = ctx.wrap_socket(raw, server_hostname=server_hostname)
        self.addCleanup(sock.close)
        return sock

    def assert_echoes(self, sock, payload=b"ping over tls\n"):
        sock.sendall(payload)
        self.assertEqual(recv_exactly(sock, len(payload)), payload)

    def echo_bulk(self, sock, payload):
        """Sends `payload` while reading the echo, in one thread: an SSL
        connection must not be written and read from two threads at once
        (OpenSSL's SSL objects are not thread-safe, and Python releases the
        GIL around SSL_read and SSL_write), and writing it all before
        reading could deadlock against the server's backpressure."""
        sock.setblocking(False)
        want = ssl.SSLWantReadError, ssl.SSLWantWriteError
        sent = 0
        got = bytearray()
        deadline = time.monotonic() + IO_TIMEOUT
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_READ)
            while len(got) < len(payload):
                progress = False
                if sent < len(payload):
                    try:
                        sent += sock.send(payload[sent:sent + 16384])
                        progress = True
                    except want:
                        pass
                try:
                    while True:
                        chunk = sock.recv(1 << 16)
                        if not chunk:
                            raise AssertionError(
                                "peer closed after %d of %d bytes (sent %d)"
                                % (len(got), len(payload), sent))
                        got += chunk
                        progress = True
                except want:
                    pass
                if progress:
                    continue
                events = selectors.EVENT_READ
                if sent < len(payload):
                    events |= selectors.EVENT_WRITE
                sel.modify(sock, events)
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise AssertionError(
                        "stalled: sent %d, got %d of %d bytes"
                        % (sent, len(got), len(payload)))
        sock.settimeout(IO_TIMEOUT)
        return bytes(got)

    def assert_healthy(self, d, port):
        """The daemon runs and a good client still gets its bytes back."""
        self.assertIsNone(d.poll(), d.err.text())
        self.assert_echoes(self.tls_connect(port), b"still healthy")

    def assert_rejected(self, port, ctx):
        """The handshake fails, or (TLS 1.3: the client finishes first and
        learns of the server's alert later) the first read fails or sees the
        connection closed; never an echo."""
        raw = self.connect(port)
        try:
            sock = ctx.wrap_socket(raw, server_hostname="localhost")
        except (ssl.SSLError, ConnectionError):
            return
        self.addCleanup(sock.close)
        try:
            sock.sendall(b"x")
            data = sock.recv(1)
        except (ssl.SSLError, ConnectionError):
            return
        self.assertEqual(data, b"", "rejected client got an echo")

    def peer_cn(self, sock):
        subject = dict(x[0] for x in sock.getpeercert()["subject"])
        return subject["commonName"]

    def sighup_and_wait(self, d, pattern):
        since = d.err.count()
        d.send_signal(signal.SIGHUP)
        m = d.err.wait_for(pattern, IO_TIMEOUT, since=since)
        self.assertIsNotNone(m, "no %r after SIGHUP; stderr:\n%s"
                             % (pattern, d.err.text()))
        return m

    # -- echo, versions, SNI, ALPN ------------------------------------------

    def test_echo_over_tls12_and_tls13_with_hostname_check(self):
        _, port = self.start_tls()
        for version, name in [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                              (ssl.TLSVersion.TLSv1_3, "TLSv1.3")]:
            with self.subTest(version=name):
                sock = self.tls_connect(port, self.client_context(version))
                self.assertEqual(sock.version(), name)
                self.assertEqual(self.peer_cn(sock), "localhost")
                self.assert_echoes(sock)
                big = os.urandom(1 << 20)
                self.assertEqual(self.echo_bulk(sock, big), big)

    def test_wrong_host_name_fails_the_client_check(self):
        _, port = self.start_tls()
        raw = self.connect(port)
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.client_context().wrap_socket(
                raw, server_hostname="not-localhost.test")

    def test_sni_selects_the_second_certificate(self):
        _, port = self.start_tls(
            sni="%s=%s,%s" % (SNI_HOST, self.cert("sni.pem"),
                              self.cert("sni.key")))
        sock = self.tls_connect(port, server_hostname=SNI_HOST)
        self.assertEqual(self.peer_cn(sock), SNI_HOST)
        self.assert_echoes(sock)
        # Any other name gets the default certificate.
        self.assertEqual(self.peer_cn(self.tls_connect(port)), "localhost")

    def test_command_line_sni_list_replaces_the_files(self):
        # The file's entry names files that do not exist; had it been kept,
        # the daemon would refuse to start.
        conf = self.tls_conf(sni="old.example.test=/nonexistent.pem,"
                                 "/nonexistent.key")
        _, port = self.start(
            "--tls.sni", "%s = %s , %s" % (SNI_HOST, self.cert("sni.pem"),
                                           self.cert("sni.key")),
            conf=conf)
        sock = self.tls_connect(port, server_hostname=SNI_HOST)
        self.assertEqual(self.peer_cn(sock), SNI_HOST)

    def test_alpn_picks_the_servers_first_choice_the_client_offers(self):
        _, port = self.start_tls(alpn="echo,http/1.1")
        sock = self.tls_connect(
            port, self.client_context(alpn=["http/1.1", "echo"]))
        self.assertEqual(sock.selected_alpn_protocol(), "echo")
        self.assert_echoes(sock)
        sock = self.tls_connect(port, self.client_context(alpn=["h2"]))
        self.assertIsNone(sock.selected_alpn_protocol())
        self.assert_echoes(sock)

    def test_twenty_concurrent_tls_clients_each_get_their_own_bytes(self):
        _, port = self.start_tls()

        def client(i):
            sock = self.tls_connect(port)
            payload = bytes([i]) * 16 + os.urandom(64 * 1024)
            if self.echo_bulk(sock, payload) != payload:
                return "got other bytes back"
            return None

        self.run_clients(20, client)

    def test_a_tiny_receive_window_gets_every_byte_in_order(self):
        # The server sends a record straight from OpenSSL's buffer when
        # nothing is queued. A 4 KiB receive buffer makes many of those sends
        # partial; their rest and the records after them must queue in order.
        _, port = self.start_tls()
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.settimeout(IO_TIMEOUT)
        raw.connect(("127.0.0.1", port))
        sock = self.client_context().wrap_socket(
            raw, server_hostname="localhost")
        self.addCleanup(sock.close)
        payload = os.urandom(4 << 20)
        self.assertEqual(self.echo_bulk(sock, payload), payload)

    def test_close_notify_is_answered_with_close_notify(self):
        d, port = self.start_tls()
        for version in [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]:
            with self.subTest(version=version.name):
                since = d.err.count()
                sock = self.tls_connect(port, self.client_context(version))
                self.assert_echoes(sock)
                # unwrap() sends close_notify and waits for the server's; a
                # plain TCP close instead raises SSLEOFError.
                sock.unwrap()
                m = d.err.wait_for(r"connection \d+ closed.*", IO_TIMEOUT,
                                   since)
                self.assertIsNotNone(m, d.err.text())
                self.assertNotIn("reason=", m.group(0))

    def test_session_resumption(self):
        _, port = self.start_tls()
        for version in [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]:
            with self.subTest(version=version.name):
                ctx = self.client_context(version)
                first = self.tls_connect(port, ctx)
                # TLS 1.3 tickets come after the handshake; an echo makes
                # sure Python has read them.
                self.assert_echoes(first)
                session = first.session
                self.assertIsNotNone(session)
                raw = self.connect(port)
                second = ctx.wrap_socket(raw, server_hostname="localhost",
                                         session=session)
                self.addCleanup(second.close)
                self.assert_echoes(second)
                self.assertTrue(second.session_reused)

    def test_silent_client_is_dropped_after_the_handshake_timeout(self):
        d, port = self.start_tls(handshake_timeout=bare("300ms"))
        sock = self.connect(port)
        # The daemon, not our timeout, must end this: IO_TIMEOUT is 100
        # times the handshake timeout.
        try:
            self.assertEqual(sock.recv(1), b"")
        except ConnectionError:
            pass
        self.assertIsNotNone(
            d.err.wait_for("tls_handshake_timeout", IO_TIMEOUT), d.err.text())
        self.assert_healthy(d, port)

    def test_example_tls_config_file_starts(self):
        # config/tcpactor-echo-tls.conf names tls/*.pem relative to the
        # directory the daemon runs in, as the README makes them.
        os.mkdir(os.path.join(self.tmp.name, "tls"))
        for name in ["ca.pem", "server.pem", "server.key"]:
            shutil.copy(self.cert(name), os.path.join(self.tmp.name, "tls"))
        conf = os.path.join(SOURCE_DIR, "config", "tcpactor-echo-tls.conf")
        _, port = self.start(conf=conf, cwd=self.tmp.name)
        sock = self.tls_connect(
            port, self.client_context(alpn=["echo"], cert="client"))
        self.assertEqual(sock.selected_alpn_protocol(), "echo")
        self.assert_echoes(sock)

    # -- mTLS ----------------------------------------------------------------

    def test_mtls_require(self):
        d, port = self.start_tls(verify_client="require",
                                 ca_file=self.cert("ca.pem"))
        for version in [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]:
            with self.subTest(version=version.name, client="valid cert"):
                sock = self.tls_connect(
                    port, self.client_context(version, cert="client"))
                self.assert_echoes(sock)
            for cert in [None, "rogue"]:
                with self.subTest(version=version.name, client=cert):
                    since = d.err.count()
                    self.assert_rejected(
                        port, self.client_context(version, cert=cert))
                    self.assertIsNotNone(
                        d.err.wait_for("handshake_failed", IO_TIMEOUT, since),
                        d.err.text())
                    # A good client after the failure proves the daemon
                    # took no harm.
                    sock = self.tls_connect(
                        port, self.client_context(version, cert="client"))
                    self.assert_echoes(sock)
        self.assertIsNone(d.poll())

    def test_mtls_with_a_pkcs12_trust_store(self):
        # The CA as a certificates-only PKCS#12 store, its password read
        # from the environment: good client in, rogue client out.
        store = self.cert("trust.p12")
        openssl("pkcs12", "-export", "-nokeys", "-in", self.cert("ca.pem"),
                "-passout", "pass:storepw", "-out", store,
                cwd=self.certs.name)
        env = dict(os.environ, TRUST_PW="storepw")
        d, port = self.start(
            conf=self.tls_conf(verify_client="require",
                               trust_store_file=store,
                               trust_store_password_env="TRUST_PW"),
            env=env)
        sock = self.tls_connect(port, self.client_context(cert="client"))
        self.assert_echoes(sock)
        self.assert_rejected(port, self.client_context(cert="rogue"))
        self.assertIsNotNone(d.err.wait_for("handshake_failed", IO_TIMEOUT),
                             d.err.text())
        # The wrong password is named at startup.
        env["TRUST_PW"] = "nope"
        code, _, err = self.run_daemon(
            "--config-file",
            self.tls_conf(verify_client="require", trust_store_file=store,
                          trust_store_password_env="TRUST_PW"),
            env=env)
        self.assertEqual(code, 2, err)
        self.assertIn("wrong password", err)
        self.assertIn("trust-store-password-env", err)

    def test_mtls_request_lets_clients_without_a_cert_in(self):
        _, port = self.start_tls(verify_client="request",
                                 ca_file=self.cert("ca.pem"))
        self.assert_echoes(self.tls_connect(port))
        self.assert_echoes(
            self.tls_connect(port, self.client_context(cert="client")))
        self.assert_rejected(port, self.client_context(cert="rogue"))

    # -- not TLS -------------------------------------------------------------

    def test_plain_bytes_to_the_tls_port_close_the_connection(self):
        d, port = self.start_tls()
        sock = self.connect(port)
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        received = b""
        try:
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
        except ConnectionError:
            pass
        # OpenSSL may answer with an alert record (content type 21); it
        # must never echo.
        self.assertNotIn(b"GET", received)
        if received:
            self.assertEqual(received[0], 21, received)
        self.assertIsNotNone(
            d.err.wait_for("handshake_failed", IO_TIMEOUT), d.err.text())
        self.assert_healthy(d, port)

    def test_half_a_client_hello_then_close_or_reset(self):
        d, port = self.start_tls()
        # A TLS 1.2 ClientHello record header announcing 512 bytes, then
        # only a few of them.
        partial = bytes([22, 3, 1, 2, 0, 1, 0, 1, 252, 3, 3]) + b"\0" * 20
        for reset in [False, True]:
            with self.subTest(reset=reset):
                sock = self.connect(port)
                sock.sendall(partial)
                if reset:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                sock.close()
                self.assert_healthy(d, port)

    def test_a_client_that_stops_reading_gets_everything_once_it_reads(self):
        # The server pauses reading while its write queue is full and must
        # resume over TLS, where one socket read is not one record.
        _, port = self.start_tls()
        sock = self.tls_connect(port)
        sock.setblocking(False)
        # Loopback sockets can buffer about 8 MiB here besides the server.
        payload = os.urandom(32 << 20)
        sent = 0
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_WRITE)
            # Write until both directions are full: the select times out
            # once the server has stopped reading.
            while sent < len(payload) and sel.select(1.0):
                try:
                    sent += sock.send(payload[sent:sent + 16384])
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
        # Not all of it: the server did stop reading (its limits are 1 MiB
        # unprocessed and 1 MiB queued, plus the socket buffers).
        self.assertLess(sent, len(payload))
        sock.settimeout(IO_TIMEOUT)
        # Everything sent comes back, so reading resumed once we read.
        self.assertEqual(recv_exactly(sock, sent), payload[:sent])
        self.assert_echoes(sock, b"and after that")

    # -- openssl s_client ----------------------------------------------------

    def s_client(self, port, *args):
        proc = subprocess.Popen(
            ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
             "-CAfile", self.cert("ca.pem"), "-verify_return_error", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)

        def finish():
            if proc.poll() is None:
                proc.kill()
            proc.wait(EXIT_TIMEOUT)
            proc.stdin.close()
            proc.stdout.close()
        self.addCleanup(finish)
        return proc, _Lines(proc.stdout)

    def test_openssl_s_client_echoes_with_sni_and_alpn(self):
        _, port = self.start_tls(
            alpn="echo", sni="%s=%s,%s" % (SNI_HOST, self.cert("sni.pem"),
                                           self.cert("sni.key")))
        proc, out = self.s_client(port, "-servername", SNI_HOST,
                                  "-verify_hostname", SNI_HOST,
                                  "-alpn", "echo")
        self.assertIsNotNone(out.wait_for(r"ALPN protocol: echo", IO_TIMEOUT),
                             out.text())
        proc.stdin.write(b"hello from s_client\n")
        proc.stdin.flush()
        self.assertIsNotNone(
            out.wait_for(r"^hello from s_client$", IO_TIMEOUT), out.text())
        text = out.text()
        self.assertIn("subject=CN = %s" % SNI_HOST, text)
        self.assertIn("Verify return code: 0 (ok)", text)

    def test_openssl_s_client_quiet_echo_with_default_certificate(self):
        _, port = self.start_tls()
        proc, out = self.s_client(port, "-servername", "localhost",
                                  "-verify_hostname", "localhost", "-quiet")
        proc.stdin.write(b"quiet line\n")
        proc.stdin.flush()
        self.assertIsNotNone(out.wait_for(r"^quiet line$", IO_TIMEOUT),
                             out.text())

    # -- SIGHUP reload -------------------------------------------------------

    def test_sighup_reloads_and_a_bad_key_keeps_the_previous_certificate(self):
        live_cert = os.path.join(self.tmp.name, "live.pem")
        live_key = os.path.join(self.tmp.name, "live.key")
        shutil.copy(self.cert("server.pem"), live_cert)
        shutil.copy(self.cert("server.key"), live_key)
        d, port = self.start_tls(cert_file=live_cert, key_file=live_key)
        before = self.tls_connect(port)
        self.assertEqual(self.peer_cn(before), "localhost")
        self.assert_echoes(before)

        shutil.copy(self.cert("renewed.pem"), live_cert)
        shutil.copy(self.cert("renewed.key"), live_key)
        self.sighup_and_wait(d, "SIGHUP: TLS certificates reloaded")
        renewed = self.tls_connect(port)
        self.assertEqual(self.peer_cn(renewed), "localhost renewed")
        self.assertEqual(renewed.getpeercert()["serialNumber"], "06")
        self.assert_echoes(renewed)
        # An open connection keeps the session it had.
        self.assert_echoes(before, b"old session")

        with open(live_key, "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\ngarbage\n"
                    "-----END PRIVATE KEY-----\n")
        m = self.sighup_and_wait(d, "SIGHUP: TLS reload failed.*")
        self.assertIn("tls.key-file", m.group(0))
        self.assertIn(live_key, m.group(0))
        self.assertIsNone(d.poll())
        after = self.tls_connect(port)
        self.assertEqual(self.peer_cn(after), "localhost renewed")
        self.assert_echoes(after)

    # -- passwords -----------------------------------------------------------

    def test_encrypted_key_password_from_env_and_file(self):
        env = dict(os.environ, ECHO_TEST_KEY_PASSWORD="s3cret")
        _, port = self.start(
            conf=self.tls_conf(key_file=self.cert("server-enc.key"),
                               key_password_env="ECHO_TEST_KEY_PASSWORD"),
            env=env)
        self.assert_echoes(self.tls_connect(port))
        pass_file = os.path.join(self.tmp.name, "key.pass")
        with open(pass_file, "w") as f:
            f.write("s3cret\n")
        _, port = self.start(
            conf=self.tls_conf(key_file=self.cert("server-enc.key"),
                               key_password_file=pass_file))
        self.assert_echoes(self.tls_connect(port))

    def test_wrong_or_missing_key_password_exits_2_naming_the_key(self):
        conf = self.tls_conf(key_file=self.cert("server-enc.key"),
                             key_password_env="ECHO_TEST_KEY_PASSWORD")
        code, _, err = self.run_daemon(
            "--port", "0", "--config-file", conf,
            env=dict(os.environ, ECHO_TEST_KEY_PASSWORD="wrong"))
        self.assertEqual(code, 2, err)
        self.assertIn("tls.key-password-env", err)
        env = {k: v for k, v in os.environ.items()
               if k != "ECHO_TEST_KEY_PASSWORD"}
        code, _, err = self.run_daemon("--port", "0", "--config-file", conf,
                                       env=env)
        self.assertEqual(code, 2, err)
        self.assertIn("'ECHO_TEST_KEY_PASSWORD' is not set", err)
        code, _, err = self.run_daemon(
            "--port", "0", "--tls.cert-file", self.cert("server.pem"),
            "--tls.key-file", self.cert("server-enc.key"))
        self.assertEqual(code, 2, err)
        self.assertIn("tls.key-password", err)

    # -- configuration errors ------------------------------------------------

    def test_missing_cert_file_exits_2_naming_key_and_file(self):
        missing = os.path.join(self.tmp.name, "no_such_cert.pem")
        code, out, err = self.run_daemon(
            "--port", "0", "--tls.cert-file", missing,
            "--tls.key-file", self.cert("server.key"))
        self.assertEqual(code, 2, err)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn("tls.cert-file", err)
        self.assertIn(missing, err)  # the underscores of the path survive
        self.assertNotIn("listening on", out)

    def test_key_not_matching_the_cert_is_named(self):
        code, _, err = self.run_daemon(
            "--port", "0", "--tls.cert-file", self.cert("server.pem"),
            "--tls.key-file", self.cert("sni.key"))
        self.assertEqual(code, 2, err)
        self.assertIn("tls.key-file", err)
        self.assertIn("does not match", err)

    def test_bad_tls_values_name_the_key(self):
        cases = [
            ('verify-client="sometimes"', "tls.verify-client"),
            ('min-version="SSLv3"', "tls.min-version"),
            ("handshake-timeout=10", "tls.handshake-timeout"),
            ("session-timeout=1500ms", "tls.session-timeout"),
            ('sni="only-a-host"', "tls.sni"),
            ("cert-file=server.pem", "tls.cert-file"),  # strings are quoted
            ("enabled=maybe", "tls.enabled"),
        ]
        for line, key in cases:
            with self.subTest(key=key):
                conf = self.write_conf("[tls]\n%s\n" % line)
                code, _, err = self.run_daemon("--config-file", conf)
                self.assertEqual(code, 2, err)
                self.assertIn("%s:2:" % conf, err)
                self.assertIn("'%s'" % key, err)

    def test_tls_settings_without_a_certificate_are_an_error(self):
        # Serving plain TCP here would silently drop the client check.
        code, _, err = self.run_daemon("--port", "0",
                                       "--tls.verify-client=require",
                                       "--tls.ca-file", self.cert("ca.pem"))
        self.assertEqual(code, 2, err)
        self.assertIn("tls.verify-client", err)
        self.assertIn("tls.enabled=false", err)
        code, _, err = self.run_daemon("--port", "0", "--tls.enabled=true")
        self.assertEqual(code, 2, err)
        self.assertIn("tls.cert-file", err)

    def test_a_tls_key_at_its_default_value_is_no_error(self):
        # Writing down a default asks for nothing: no certificate needed,
        # plain TCP as without the line (issue 16).
        conf = self.write_conf("[tls]\nverify-client=\"none\"\n")
        d, port = self.start(conf=conf)
        self.assertNotIn("(TLS)", d.out.text())
        sock = self.connect(port)
        sock.sendall(b"plain")
        self.assertEqual(recv_exactly(sock, 5), b"plain")
        # A non-default value still needs the certificate.
        conf = self.write_conf("[tls]\nverify-client=\"require\"\n")
        code, _, err = self.run_daemon("--config-file", conf)
        self.assertEqual(code, 2, err)
        self.assertIn("tls.verify-client", err)

    def test_enabled_false_serves_plain_tcp(self):
        d, port = self.start(conf=self.tls_conf(enabled=bare("false")))
        self.assertNotIn("(TLS)", d.out.text())
        sock = self.connect(port)
        sock.sendall(b"plain")
        self.assertEqual(recv_exactly(sock, 5), b"plain")
        # And SIGHUP has nothing to reload.
        self.sighup_and_wait(d, "SIGHUP ignored: TLS is not enabled")

    def test_help_lists_the_tls_options(self):
        code, out, err = self.run_daemon("--help")
        self.assertEqual(code, 0, err)
        for key in ["enabled", "cert-file", "key-file", "key-password",
                    "key-password-file", "key-password-env", "pkcs12-file",
                    "pkcs12-password", "ca-file", "ca-dir", "verify-client",
                    "min-version", "max-version", "ciphers", "ciphersuites",
                    "alpn", "sni", "handshake-timeout", "session-timeout",
                    "session-resumption"]:
            self.assertIn("--tls.%s " % key, out)
            self.assertIn("[tls] %s." % key, out)
        self.assertIn("SIGHUP", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
