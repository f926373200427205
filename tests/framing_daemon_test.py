"""tcpactor-echo --framing, driven by peers we did not write: Python's socket
and struct modules, nc (netcat-openbsd), Erlang's gen_tcp with {packet, 4}
and tcpactor-bench --framing.

With a codec the daemon echoes every whole frame as one frame: nothing of a
partial frame comes back, a frame over `max` or cut short by the peer's end
closes the connection and is logged (frame_too_large, frame_truncated).

CTest passes TCPACTOR_ECHO, TCPACTOR_SOURCE_DIR and TCPACTOR_BINARY_DIR (the
load generator is $TCPACTOR_BINARY_DIR/apps/tcpactor-bench). Every daemon
binds port 0 on loopback; waits are deadlines, never sleeps.
"""

import json
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
import unittest

from daemon_helpers import IO_TIMEOUT, DaemonTestCase, recv_exactly

BINARY_DIR = os.environ.get("TCPACTOR_BINARY_DIR", "")
BENCH = os.path.join(BINARY_DIR, "apps", "tcpactor-bench")

# How long a test waits to be sure that nothing comes back (a partial frame
# must not be echoed). Long enough for a loopback echo on a busy machine.
QUIET_WINDOW = 0.5

HEADER_FORMAT = {1: "B", 2: "H", 4: "I", 8: "Q"}


def frame(payload, size=4, order=">"):
    """`payload` behind a `size`-byte length in byte order `order`."""
    return struct.pack(order + HEADER_FORMAT[size], len(payload)) + payload


def read_frame(sock, size=4, order=">"):
    """Reads one frame and returns its payload."""
    (length,) = struct.unpack(order + HEADER_FORMAT[size],
                              recv_exactly(sock, size))
    return recv_exactly(sock, length)


def read_until_closed(sock, timeout=IO_TIMEOUT):
    """Reads until the peer closes (FIN or RST); returns (bytes, how) with
    how "eof" or "reset". Fails on the deadline."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("the daemon did not close the connection "
                                 "within %ss; got %r" % (timeout, data[:200]))
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 16)
        except ConnectionResetError:
            return data, "reset"
        except socket.timeout:
            continue
        if not chunk:
            return data, "eof"
        data += chunk


class FramingDaemonTest(DaemonTestCase):

    # -- helpers -------------------------------------------------------------

    def start_framed(self, spec, *args):
        """A daemon with --framing=`spec` logging at debug (connection closes
        and their reasons); returns (daemon, port)."""
        conf = self.write_conf('[echo]\nlog-level="debug"\n')
        return self.start("--framing=" + spec, *args, conf=conf)

    def assert_nothing_arrives(self, sock, what):
        readable, _, _ = select.select([sock], [], [], QUIET_WINDOW)
        if readable:
            try:
                data = sock.recv(1 << 16)
            except ConnectionResetError:
                data = b"<reset>"
            self.fail("%s: got %r within %ss" % (what, data[:64],
                                                 QUIET_WINDOW))

    def roundtrip(self, sock, wire, expected_len):
        """Sends `wire` from a thread while reading `expected_len` bytes, so
        big frames cannot deadlock against the daemon's backpressure."""
        sender = threading.Thread(target=sock.sendall, args=(wire,))
        sender.start()
        try:
            return recv_exactly(sock, expected_len)
        finally:
            sender.join(IO_TIMEOUT)

    def assert_logged(self, daemon, pattern):
        self.assertTrue(daemon.err.wait_for(pattern, IO_TIMEOUT),
                        "no %r in the daemon's log:\n%s"
                        % (pattern, daemon.err.text()))

    # -- length:N ------------------------------------------------------------

    def test_frame_written_a_byte_at_a_time_comes_back_as_one_frame(self):
        _, port = self.start_framed("length:4")
        sock = self.connect(port)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = bytes(range(200))
        wire = frame(payload)
        for b in wire[:-1]:
            sock.send(bytes([b]))
        self.assert_nothing_arrives(sock, "echo of a partial frame")
        sock.send(wire[-1:])
        self.assertEqual(read_frame(sock), payload)
        # Exactly one echo: the next bytes are the next frame's.
        sock.sendall(frame(b"next"))
        self.assertEqual(read_frame(sock), b"next")

    def test_hundred_frames_in_one_write_come_back_in_order(self):
        _, port = self.start_framed("length:4")
        sock = self.connect(port)
        payloads = [bytes([i]) * (i * 37 % 1000 + 1) for i in range(100)]
        wire = b"".join(frame(p) for p in payloads)
        echoed = self.roundtrip(sock, wire, len(wire))
        got = []
        view = memoryview(echoed)
        while view:
            (n,) = struct.unpack(">I", view[:4])
            got.append(bytes(view[4:4 + n]))
            view = view[4 + n:]
        self.assertEqual(len(got), 100)
        self.assertEqual(got, payloads)

    def test_empty_frame_comes_back_empty(self):
        _, port = self.start_framed("length:4")
        sock = self.connect(port)
        sock.sendall(frame(b"") + frame(b"after"))
        first = read_frame(sock)
        self.assertEqual(first, b"", "the empty frame was not echoed: the "
                         "next frame's payload came first")
        self.assertEqual(read_frame(sock), b"after")

    def test_frame_of_100_kib_comes_back_whole(self):
        _, port = self.start_framed("length:4")
        sock = self.connect(port)
        payload = os.urandom(100 * 1024)
        echoed = self.roundtrip(sock, frame(payload), 4 + len(payload))
        self.assertEqual(echoed, frame(payload))

    def test_two_byte_little_endian_length(self):
        _, port = self.start_framed("length:2:le")
        sock = self.connect(port)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # No empty frame here: test_empty_frame_comes_back_empty has it.
        payloads = [b"x" * 300, os.urandom(65535), b"tail"]
        # 300 is 0x012c: a big-endian reader would wait for 11265 bytes.
        wire = b"".join(frame(p, 2, "<") for p in payloads)
        echoed = self.roundtrip(sock, wire, len(wire))
        self.assertEqual(echoed, wire)
        # The header's first byte alone is no frame yet.
        sock.send(frame(b"ab", 2, "<")[:1])
        self.assert_nothing_arrives(sock, "echo of half a header")
        sock.send(frame(b"ab", 2, "<")[1:])
        self.assertEqual(read_frame(sock, 2, "<"), b"ab")

    def test_oversized_frame_closes_after_the_good_ones_are_echoed(self):
        d, port = self.start_framed("length:4,max=1k")
        sock = self.connect(port)
        good = [b"first", os.urandom(1024)]  # 1 KiB: exactly the limit
        sock.sendall(b"".join(frame(p) for p in good) +
                     struct.pack(">I", 5000))
        data, how = read_until_closed(sock)
        expected = b"".join(frame(p) for p in good)
        self.assertEqual(data[:len(expected)], expected,
                         "the frames before the oversized one come first")
        self.assertEqual(data, expected, "nothing after them (%s)" % how)
        self.assert_logged(d, r"frame_too_large")

    def test_frame_cut_short_by_eof_closes_and_is_logged(self):
        d, port = self.start_framed("length:4")
        sock = self.connect(port)
        sock.sendall(struct.pack(">I", 10) + b"abc")
        sock.shutdown(socket.SHUT_WR)
        data, _ = read_until_closed(sock)
        self.assertEqual(data, b"", "a partial frame must not be echoed")
        self.assert_logged(d, r"frame_truncated")

    # -- line ----------------------------------------------------------------

    def nc(self, port, text):
        if shutil.which("nc") is None:
            self.fail("nc (netcat-openbsd) not found")
        # -N: shut down the sending side at EOF on stdin, so nc exits once
        # the daemon has echoed everything and closed.
        out = subprocess.run(["nc", "-N", "127.0.0.1", str(port)],
                             input=text, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=IO_TIMEOUT,
                             check=True)
        return out.stdout

    def test_nc_lines_come_back(self):
        _, port = self.start_framed("line")
        self.assertEqual(self.nc(port, b"hello\nworld\n"), b"hello\nworld\n")

    def test_crlf_lines_are_accepted_and_echoed_with_lf(self):
        _, port = self.start_framed("line")
        self.assertEqual(self.nc(port, b"hello\r\nworld\r\n"),
                         b"hello\nworld\n")

    def test_line_longer_than_max_closes_the_connection(self):
        d, port = self.start_framed("line,max=16")
        sock = self.connect(port)
        sock.sendall(b"short\n" + b"y" * 100 + b"\n")
        data, _ = read_until_closed(sock)
        self.assertEqual(data, b"short\n")
        self.assert_logged(d, r"frame_too_large")

    def test_raw_is_the_default_and_echoes_bytes_unchanged(self):
        for args in [(), ("--framing=raw",)]:
            with self.subTest(args=args):
                _, port = self.start(*args)
                sock = self.connect(port)
                sock.sendall(b"hello\r\n" + struct.pack(">I", 5000))
                self.assertEqual(recv_exactly(sock, 11),
                                 b"hello\r\n" + struct.pack(">I", 5000))

    # -- peers of other languages and our load generator ---------------------

    def test_erlang_packet_4_peer_gets_its_packets_back(self):
        erl = shutil.which("erl")
        if erl is None:
            self.skipTest("erl not found: skipping Erlang {packet,4} interop")
        _, port = self.start_framed("length:4")
        program = """
            try
              Port = list_to_integer(os:getenv("ECHO_PORT")),
              {ok, S} = gen_tcp:connect({127,0,0,1}, Port,
                                        [binary, {packet, 4},
                                         {active, false}], 10000),
              Msgs = [<<"hello">>, <<"erlang {packet,4}">>,
                      binary:copy(<<"x">>, 70000),
                      list_to_binary(lists:seq(0, 255)), <<0>>],
              lists:foreach(fun(M) -> ok = gen_tcp:send(S, M) end, Msgs),
              Got = [begin {ok, B} = gen_tcp:recv(S, 0, 10000), B end
                     || _ <- Msgs],
              gen_tcp:close(S),
              case Got =:= Msgs of
                true -> io:format("ERL_OK ~b~n", [length(Got)]);
                false -> io:format("ERL_MISMATCH ~p~n",
                                   [[byte_size(B) || B <- Got]])
              end
            catch C:R -> io:format("ERL_ERROR ~p:~p~n", [C, R])
            end,
            halt(0).
        """
        env = dict(os.environ, ECHO_PORT=str(port))
        out = subprocess.run([erl, "-noshell", "-eval", program],
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env, timeout=IO_TIMEOUT * 2)
        text = out.stdout.decode(errors="replace")
        self.assertIn("ERL_OK 5", text,
                      "erl said: %s %s" % (text, out.stderr.decode()))

    def test_bench_framed_pingpong_runs_clean(self):
        if not os.access(BENCH, os.X_OK):
            self.skipTest("tcpactor-bench not found (TCPACTOR_BINARY_DIR)")
        _, port = self.start_framed("length:4", "--log-level=warning")
        out = subprocess.run(
            [BENCH, "--port", str(port), "--framing", "length:4",
             "--connections", "4", "--size", "64", "--duration", "0.5",
             "--warmup", "0.1", "--json-only"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=IO_TIMEOUT * 2)
        text = out.stdout.decode()
        ctx = "exit %d\n%s\n%s" % (out.returncode, text, out.stderr.decode())
        self.assertEqual(out.returncode, 0, ctx)
        res = json.loads(text[text.index("{"):])
        self.assertEqual(res["framing"], "length:4", ctx)
        self.assertGreater(res["messages"], 0, ctx)
        self.assertEqual(res["errors"], 0, ctx)

    # -- options -------------------------------------------------------------

    def test_framing_is_logged_at_start(self):
        d, _ = self.start_framed("length:4")
        self.assert_logged(d, r"framing length:4")

    def test_full_option_name_and_config_key_are_accepted(self):
        conf = self.write_conf('[echo]\nlog-level="info"\n'
                               '[connection]\nframing="line:crlf"\n')
        d, _ = self.start(conf=conf)
        self.assert_logged(d, r"framing line:crlf")
        conf = self.write_conf('[echo]\nlog-level="info"\n', "full.conf")
        d, _ = self.start("--connection.framing", "length:2:le", conf=conf)
        self.assert_logged(d, r"framing length:2:le")

    def test_bad_spec_exits_2_naming_the_option(self):
        code, _, err = self.run_daemon("--framing=length:3")
        self.assertEqual(code, 2, err)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn("--framing", err)
        self.assertIn("length:3", err)
        code, _, err = self.run_daemon("--connection.framing=bogus")
        self.assertEqual(code, 2, err)
        self.assertIn("--connection.framing", err)

    def test_bad_spec_in_the_file_names_file_line_and_key(self):
        conf = self.write_conf('[connection]\nframing="length:3"\n')
        code, _, err = self.run_daemon("--config-file", conf)
        self.assertEqual(code, 2, err)
        self.assertIn("%s:2:" % conf, err)
        self.assertIn("'connection.framing'", err)
        self.assertIn("length:3", err)

    def test_length_framing_with_half_close_is_a_config_error(self):
        for spec in ["length:4", "delimiter:;"]:
            with self.subTest(spec=spec):
                code, _, err = self.run_daemon("--framing=" + spec,
                                               "--half-close=true")
                self.assertEqual(code, 2, err)
                self.assertEqual(len(err.splitlines()), 1, err)
                self.assertIn("connection.half-close", err)
                self.assertIn("framing", err)

    def test_help_lists_the_framing_forms(self):
        code, out, _ = self.run_daemon("--help")
        self.assertEqual(code, 0)
        m = re.search(r"--framing, --connection\.framing <spec>\n"
                      r"((?:      .*\n)+)", out)
        self.assertTrue(m, out)
        help_text = m.group(1)
        for form in ["raw", "line", "line:crlf", "length:N", "delimiter:TEXT",
                     "exact:N", "max=BYTES"]:
            self.assertIn(form, help_text)
        self.assertIn("Default: raw.", help_text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
