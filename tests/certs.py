"""Certificates made at test time by the openssl command, for the Python
tests that shake hands with tcpactor-echo and tcpactor-worker: a CA, leaves
it signs, and a self-signed server certificate. Every key is P-256 and every
certificate lives two days.
"""

import os
import subprocess

OPENSSL_TIMEOUT = 30.0

SERVER_EXT = ("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
              "extendedKeyUsage=serverAuth\n")
CLIENT_EXT = "extendedKeyUsage=clientAuth\n"


def openssl(*args, cwd):
    """Runs `openssl args...` in `cwd`; a failure raises with its stderr."""
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                   timeout=OPENSSL_TIMEOUT)


def make_ca(d, name, cn):
    """`name`.pem and `name`.key in `d`: a self-signed CA called `cn`."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-keyout", name + ".key", "-out", name + ".pem", "-subj",
            "/CN=" + cn, "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=d)


def make_leaf(d, name, cn, ca, serial, ext=SERVER_EXT):
    """`name`.pem and `name`.key in `d`: a certificate for `cn` signed by
    the CA `ca` (made by make_ca in `d`), with the extensions `ext`."""
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write(ext)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
            "-subj", "/CN=" + cn, cwd=d)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem",
            "-CAkey", ca + ".key", "-set_serial", str(serial), "-days", "2",
            "-extfile", name + ".ext", "-out", name + ".pem", cwd=d)


def make_self_signed(d, name, cn, san):
    """`name`.pem and `name`.key in `d`: a self-signed certificate for `cn`
    with the subjectAltName `san` (e.g. "DNS:localhost")."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-keyout",
            name + ".key", "-out", name + ".pem", "-subj", "/CN=" + cn,
            "-addext", "subjectAltName=" + san, cwd=d)
