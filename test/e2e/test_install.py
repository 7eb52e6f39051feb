"""Packaging: cmake --install puts the binary, the systemd units and the man
page in place; CPack builds a .deb with the same and sane dependencies."""

import os
import shutil
import tempfile

import uvhlib
from uvhlib import run


def build_dir():
    return os.path.dirname(uvhlib.BINARY)


def test_cmake_install():
    prefix = tempfile.mkdtemp(prefix="uvh-install-")
    try:
        run(["cmake", "--install", build_dir(), "--prefix", prefix])
        for rel in ("bin/uvhttpd", "share/man/man1/uvhttpd.1", "lib/systemd/system/uvhttpd.service",
                    "lib/systemd/system/uvhttpd.socket"):
            assert os.path.isfile(os.path.join(prefix, rel)), rel
        assert run([os.path.join(prefix, "bin/uvhttpd"), "--version"]).stdout.startswith("uvhttpd ")
        man = open(os.path.join(prefix, "share/man/man1/uvhttpd.1")).read()
        assert man.startswith(".TH UVHTTPD 1") and "--write-token" in man
        unit = open(os.path.join(prefix, "lib/systemd/system/uvhttpd.service")).read()
        for key in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ExecReload=/bin/kill -HUP $MAINPID"):
            assert key in unit, key
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def test_cpack_deb():
    out = tempfile.mkdtemp(prefix="uvh-deb-")
    try:
        run(["cpack", "-G", "DEB", "-B", out, "--config", os.path.join(build_dir(), "CPackConfig.cmake")],
            timeout=300)
        debs = [f for f in os.listdir(out) if f.endswith(".deb")]
        assert len(debs) == 1, os.listdir(out)
        deb = os.path.join(out, debs[0])
        info = run(["dpkg-deb", "-I", deb]).stdout
        assert "Package: uvhttpd" in info and "libuv1" in info, info
        files = run(["dpkg-deb", "-c", deb]).stdout
        for path in ("./usr/bin/uvhttpd", "./usr/share/man/man1/uvhttpd.1", "uvhttpd.service", "uvhttpd.socket"):
            assert path in files, path
    finally:
        shutil.rmtree(out, ignore_errors=True)
