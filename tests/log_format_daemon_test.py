"""tcpactor-echo --log-format: every line of a real run parses (json with
Python's json module, logfmt with the parser below), carries the required
fields, and the per-connection lines name the connection and its peer."""

import json
import re
import socket
import unittest

from daemon_helpers import DaemonTestCase, IO_TIMEOUT, recv_exactly

RFC3339_MS_UTC = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
LEVELS = {"trace", "debug", "info", "warning", "error"}


def parse_logfmt(line):
    """key=value pairs; a value is bare (no space, '=' or '"') or a quoted
    string with backslash escapes (\\" \\\\ \\n \\r \\t \\uXXXX). Raises
    ValueError on anything else, so a malformed line fails the test."""
    out = {}
    i = 0
    n = len(line)
    while i < n:
        j = line.index("=", i)
        key = line[i:j]
        if not re.fullmatch(r"[a-z_]+", key):
            raise ValueError("bad key %r in %r" % (key, line))
        i = j + 1
        if i < n and line[i] == '"':
            i += 1
            value = []
            while True:
                if i >= n:
                    raise ValueError("unterminated quote in %r" % line)
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\":
                    e = line[i + 1]
                    if e == "u":
                        value.append(chr(int(line[i + 2:i + 6], 16)))
                        i += 6
                        continue
                    value.append({'"': '"', "\\": "\\", "n": "\n",
                                  "r": "\r", "t": "\t"}[e])
                    i += 2
                    continue
                value.append(c)
                i += 1
            value = "".join(value)
        else:
            j = line.find(" ", i)
            j = n if j < 0 else j
            value = line[i:j]
            if not value or '"' in value or "=" in value:
                raise ValueError("bad bare value %r in %r" % (value, line))
            i = j
        if key in out:
            raise ValueError("key %r twice in %r" % (key, line))
        out[key] = value
        if i < n:
            if line[i] != " ":
                raise ValueError("no space after %r in %r" % (key, line))
            i += 1
    return out


class LogFormatDaemonTest(DaemonTestCase):

    def run_traffic(self, fmt, *args):
        """Starts a daemon at level debug in `fmt`, runs one echo connection
        and stops it; returns (stderr lines, client's "host:port")."""
        conf = self.write_conf('[echo]\nlog-level="debug"\n')
        d, port = self.start("--log-format=" + fmt, *args, conf=conf)
        with socket.create_connection(("127.0.0.1", port),
                                      timeout=IO_TIMEOUT) as s:
            me = "%s:%d" % s.getsockname()
            s.sendall(b"ping")
            self.assertEqual(recv_exactly(s, 4), b"ping")
        self.assertIsNotNone(
            d.err.wait_for(r"connection_closed|connection \d+ closed",
                           IO_TIMEOUT), d.err.text())
        code, err = self.stop(d)
        self.assertEqual(code, 0, err)
        lines = err.splitlines()
        self.assertTrue(lines, "nothing logged")
        return lines, me

    def check_records(self, records, me):
        for r in records:
            for key in ("time", "level", "event", "msg"):
                self.assertIn(key, r, r)
            self.assertRegex(r["time"], RFC3339_MS_UTC)
            self.assertIn(r["level"], LEVELS)
            self.assertRegex(r["event"], r"^[a-z_]+$")
        by_event = {}
        for r in records:
            by_event.setdefault(r["event"], []).append(r)
        self.assertIn("connection_opened", by_event, records)
        self.assertIn("connection_closed", by_event, records)
        opened = by_event["connection_opened"][0]
        closed = by_event["connection_closed"][0]
        self.assertEqual(opened["peer"], me)
        self.assertEqual(closed["peer"], me)
        self.assertEqual(str(opened["conn_id"]), str(closed["conn_id"]))
        self.assertNotEqual(str(opened["conn_id"]), "0")
        # A clean close has no reason; the message keeps the text format's.
        self.assertNotIn("reason", closed)
        self.assertEqual(
            closed["msg"], "connection %s closed peer=%s" % (closed["conn_id"],
                                                             me))
        # Lines without a connection carry neither field.
        others = [r for r in records if not r["event"].startswith("connection")]
        self.assertTrue(others, records)
        for r in others:
            self.assertNotIn("conn_id", r)
            self.assertNotIn("peer", r)

    def test_json_lines_parse_and_carry_the_fields(self):
        lines, me = self.run_traffic("json")
        records = []
        for line in lines:
            r = json.loads(line)  # fails the test on a malformed line
            self.assertIsInstance(r, dict)
            if "conn_id" in r:
                self.assertIsInstance(r["conn_id"], int)
            records.append(r)
        self.check_records(records, me)

    def test_logfmt_lines_parse_and_carry_the_fields(self):
        lines, me = self.run_traffic("logfmt")
        self.check_records([parse_logfmt(line) for line in lines], me)

    def test_text_keeps_its_lines(self):
        lines, me = self.run_traffic("text")
        pattern = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z "
                             r"(info|warning|error|debug|trace)\s+\S")
        for line in lines:
            self.assertRegex(line, pattern)
        self.assertTrue(any(re.search(r"connection \d+ opened peer=" +
                                      re.escape(me) + "$", l) for l in lines),
                        lines)
        self.assertTrue(any(re.search(r"connection \d+ closed peer=" +
                                      re.escape(me) + "$", l) for l in lines),
                        lines)

    def test_a_close_reason_is_a_field(self):
        conf = self.write_conf('[echo]\nlog-level="debug"\n')
        d, port = self.start("--log-format=json", "--idle-timeout=100ms",
                             conf=conf)
        with socket.create_connection(("127.0.0.1", port),
                                      timeout=IO_TIMEOUT) as s:
            self.assertEqual(s.recv(1), b"")  # closed for idleness
        m = d.err.wait_for(r'"event":"connection_closed"', IO_TIMEOUT)
        self.assertIsNotNone(m, d.err.text())
        closed = [json.loads(l) for l in d.err.text().splitlines()
                  if '"connection_closed"' in l][0]
        self.assertEqual(closed["reason"], "idle_timeout")
        self.assertIn("reason=idle_timeout", closed["msg"])

    def test_an_unknown_format_names_the_option(self):
        code, _, err = self.run_daemon("--log-format=xml")
        self.assertEqual(code, 2, err)
        self.assertIn("log-format", err)
        self.assertIn("'xml'", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
