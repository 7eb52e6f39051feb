"""The servers under test (uvhttpd, nginx, h2o, and the floor; Apache httpd with mod_dav for the
WebDAV workload), their configurations, and the document root."""
import os
import re
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from . import processes
from .common import (APACHE_BIN, APACHE_MODULES, H2O_BIN, NGINX_BIN, PROPFIND_DIR, PROPFIND_ENTRIES,
                     REPO, BenchError, log)
from .processes import (SERVER_CPU, _track, cpu_ticks, pdeathsig_prefix, pin, proc_comm,
                        proc_tree, rss_kib, stop_process)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Server:
    name = "?"

    def __init__(self, root, workdir):
        self.root = root
        self.workdir = workdir
        self.proc = None
        self.port = None
        self._pids = None
        self._main_comm = None

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def pids(self):
        """Server processes (the leader and same-named descendants)."""
        if self._pids is None:
            tree = proc_tree(self.proc.pid)
            comm = proc_comm(self.proc.pid)
            self._pids = [p for p in tree if proc_comm(p) == comm] or [self.proc.pid]
        return self._pids

    def cpu_ticks(self):
        return sum(cpu_ticks(p) for p in self.pids())

    def rss_kib(self):
        return sum(rss_kib(p) for p in self.pids())

    def peak_rss_kib(self):
        """The sum of each server process's peak RSS (VmHWM) so far."""
        return sum(rss_kib(p, "VmHWM:") for p in self.pids())

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, True, timeout=10)
            self.proc = None
            self._pids = None

    def _spawn(self, cmd, **kw):
        p = subprocess.Popen(pdeathsig_prefix() + pin(SERVER_CPU) + cmd,
                             stdin=subprocess.DEVNULL, start_new_session=True, **kw)
        _track(p, True)
        return p

    def start(self):
        raise NotImplementedError

    def describe_cmd(self):
        raise NotImplementedError

    def config_text(self):
        return None


class Uvhttpd(Server):
    name = "uvhttpd"
    access_flag_ok = True     # cleared once the binary rejects --access-log

    def __init__(self, root, workdir, binary, extra=()):
        super().__init__(root, workdir)
        self.binary = binary
        self.extra = list(extra)      # workload-specific flags (slowclients timeouts)
        self.access_flag = Uvhttpd.access_flag_ok
        self.tail = []

    def _cmd(self, port="0"):
        # Like the others: a 300 s idle timeout, and room for the idle workload's
        # 10000 connections plus wrk's (nginx: worker_connections 20000).
        cmd = [self.binary, "--port", port, "--host", "127.0.0.1", "--root", self.root,
               "--idle-timeout", "300", "--max-connections", "20000"]
        if self.access_flag:
            cmd += ["--access-log", "off"]
        return cmd + self.extra

    def describe_cmd(self):
        binary = self.binary
        if binary.startswith(REPO + os.sep):
            binary = os.path.relpath(binary, REPO)
        return " ".join(pin(SERVER_CPU) + ["prlimit", "--nofile=%d" % processes.NOFILE] +
                        [binary] + self._cmd()[1:]).replace(self.root, "ROOT")

    def _drain(self, stream):
        for line in iter(stream.readline, b""):
            self.tail.append(line.decode("utf-8", "replace").rstrip())
            del self.tail[:-20]
        stream.close()

    def start(self):
        for _attempt in range(2):
            cmd = ["prlimit", "--nofile=%d" % processes.NOFILE, "--"] + self._cmd()
            errpath = os.path.join(self.workdir, "uvhttpd.stderr")
            errf = open(errpath, "wb")
            p = self._spawn(cmd, stdout=subprocess.PIPE, stderr=errf, bufsize=0)
            errf.close()
            self.proc = p
            line = b""
            sel = selectors.DefaultSelector()
            sel.register(p.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 15
            while b"\n" not in line and time.monotonic() < deadline:
                if sel.select(timeout=0.2):
                    chunk = p.stdout.read(1)
                    if not chunk:
                        break
                    line += chunk
                elif p.poll() is not None:
                    break
            sel.close()
            m = re.match(rb"listening on http://127\.0\.0\.1:(\d+)/", line)
            if m:
                self.port = int(m.group(1))
                threading.Thread(target=self._drain, args=(p.stdout,), daemon=True).start()
                if not wait_listening(self.port, p, 10):
                    raise BenchError("uvhttpd printed a port but does not accept connections")
                return
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
            rc = p.poll()
            with open(errpath, "rb") as f:
                err = f.read().decode("utf-8", "replace")
            stop_process(p, True)
            self.proc = None
            if rc == 2 and self.access_flag:
                log("uvhttpd rejected --access-log (exit 2); retrying without it")
                self.access_flag = Uvhttpd.access_flag_ok = False
                continue
            raise BenchError("uvhttpd did not start (exit %s), first stdout line %r, stderr: %s"
                             % (rc, line.decode("utf-8", "replace"), err.strip()[-500:]))
        raise BenchError("uvhttpd did not start")


class Floor(Uvhttpd):
    """bench/floor.c: libuv + llhttp + a canned 571-byte answer, the floor small-file rows
    are measured against. Started and stopped like uvhttpd (it prints the same line)."""
    name = "floor"

    def _cmd(self, port="0"):
        return [self.binary, port]

    def describe_cmd(self):
        binary = self.binary
        if binary.startswith(REPO + os.sep):
            binary = os.path.relpath(binary, REPO)
        return " ".join(pin(SERVER_CPU) + ["prlimit", "--nofile=%d" % processes.NOFILE, binary, "0"])

    def start(self):
        self.access_flag = False
        super().start()


NGINX_CONF = """\
# generated by bench/run
user root;
worker_processes 1;
worker_rlimit_nofile {nofile};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{
    worker_connections 20000;
    use epoll;
}}
http {{
    access_log off;
    sendfile on;
    open_file_cache max=1000 inactive=60s;
    keepalive_timeout 300s;
    keepalive_requests 1000000000;
    types {{
        text/html html;
        application/octet-stream bin;
        application/javascript js;
    }}
    # The compressed workload: gzip per request at level 6 (only clients
    # sending Accept-Encoding: gzip get it; wrk sends none elsewhere).
    gzip on;
    gzip_comp_level 6;
    gzip_types application/javascript;
    gzip_min_length 1024;
    gzip_vary on;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        server_name localhost;
        root {root};
        location / {{ }}
    }}
}}
"""

H2O_CONF = """\
# generated by bench/run
user: root
num-threads: 1
max-connections: 65536
http1-request-timeout: 300
pid-file: {tmp}/h2o.pid
error-log: {tmp}/error.log
listen:
  host: 127.0.0.1
  port: {port}
hosts:
  default:
    paths:
      /:
        file.dir: {root}
        # The compressed workload: h2o's compress handler (gzip and br per
        # request, for clients that send Accept-Encoding).
        compress: ON
"""


# Apache httpd 2.4 with mod_dav and mod_dav_fs, for the WebDAV workload: like the others one
# process (mpm_event, one child with a pool of threads), keep-alive without a request limit and
# a 300 s timeout, no access log. Its children cannot run as root, so they run as www-data
# (the document root is made world-readable for them).
APACHE_CONF = """\
# generated by bench/run
ServerRoot {serverroot}
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {tmp}/httpd.pid
ErrorLog {tmp}/error.log
LogLevel warn
User www-data
Group www-data
LoadModule mpm_event_module modules/mod_mpm_event.so
LoadModule authz_core_module modules/mod_authz_core.so
LoadModule mime_module modules/mod_mime.so
LoadModule dav_module modules/mod_dav.so
LoadModule dav_fs_module modules/mod_dav_fs.so
TypesConfig /etc/mime.types
StartServers 1
ServerLimit 1
ThreadLimit 64
ThreadsPerChild 64
MaxRequestWorkers 64
MinSpareThreads 1
MaxSpareThreads 64
MaxConnectionsPerChild 0
KeepAlive On
KeepAliveTimeout 300
MaxKeepAliveRequests 0
EnableSendfile On
DavLockDB {tmp}/DavLock
DocumentRoot {root}
<Directory {root}>
    Dav On
    Options None
    AllowOverride None
    Require all granted
</Directory>
"""


class ConfServer(Server):
    conf_template = ""
    conf_name = ""

    def _conf(self, port):
        return self.conf_template.format(nofile=processes.NOFILE, tmp=self.tmp, port=port,
                                         root=self.root, serverroot=os.path.dirname(APACHE_MODULES))

    def config_text(self):
        return self.conf_template.format(nofile=processes.NOFILE, tmp="TMPDIR", port="PORT",
                                         root="ROOT", serverroot=os.path.dirname(APACHE_MODULES))

    def prepare(self):
        """Anything the server needs before it starts (its temp dir exists)."""

    def start(self):
        last_err = ""
        for _attempt in range(3):
            self.tmp = tempfile.mkdtemp(prefix=self.name + "-", dir=self.workdir)
            self.prepare()
            port = free_port()
            conf = os.path.join(self.tmp, self.conf_name)
            with open(conf, "w") as f:
                f.write(self._conf(port))
            errf = open(os.path.join(self.tmp, "stderr"), "wb")
            p = self._spawn(self._cmd(conf), stdout=errf, stderr=subprocess.STDOUT)
            errf.close()
            self.proc = p
            if wait_listening(port, p, 10):
                self.port = port
                time.sleep(0.2)   # let workers come up
                return
            stop_process(p, True)
            self.proc = None
            last_err = ""
            for fn in ("stderr", "error.log"):
                try:
                    with open(os.path.join(self.tmp, fn)) as f:
                        last_err += f.read()
                except OSError:
                    pass
        raise BenchError("%s did not start: %s" % (self.name, last_err.strip()[-800:]))


class Nginx(ConfServer):
    name = "nginx"
    conf_template = NGINX_CONF
    conf_name = "nginx.conf"

    def _cmd(self, conf):
        return [NGINX_BIN, "-p", self.tmp, "-c", conf, "-g", "daemon off;"]

    def describe_cmd(self):
        return " ".join(pin(SERVER_CPU) + [NGINX_BIN, "-p", "TMPDIR", "-c", "TMPDIR/nginx.conf",
                                           "-g", "'daemon off;'"])


class H2o(ConfServer):
    name = "h2o"
    conf_template = H2O_CONF
    conf_name = "h2o.conf"

    def _cmd(self, conf):
        return [H2O_BIN, "-c", conf]

    def describe_cmd(self):
        return " ".join(pin(SERVER_CPU) + [H2O_BIN, "-c", "TMPDIR/h2o.conf"])


class Apache(ConfServer):
    name = "apache"
    conf_template = APACHE_CONF
    conf_name = "httpd.conf"

    def prepare(self):
        # The children run as www-data: they must reach the root and write the lock DB.
        for d in (self.workdir, self.root):
            os.chmod(d, 0o755)
        shutil.chown(self.tmp, user="www-data", group="www-data")

    def _cmd(self, conf):
        return [APACHE_BIN, "-f", conf, "-DFOREGROUND"]

    def describe_cmd(self):
        return " ".join(pin(SERVER_CPU) + [APACHE_BIN, "-f", "TMPDIR/httpd.conf", "-DFOREGROUND"])


# --------------------------------------------------------------------------
# document root

def make_dav_dir(root):
    """The propfind workload's directory: PROPFIND_ENTRIES small files (a line each)."""
    d = os.path.join(root, PROPFIND_DIR.strip("/"))
    os.makedirs(d, exist_ok=True)
    for i in range(PROPFIND_ENTRIES):
        with open(os.path.join(d, "file-%05d.txt" % i), "w") as f:
            f.write("entry %d\n" % i)
    os.chmod(d, 0o755)

def make_docroot(path, with_100m=True):
    os.makedirs(path, exist_ok=True)
    head = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<title>uvhttpd benchmark</title>\n</head>\n<body>\n<h1>uvhttpd benchmark page</h1>\n<p>")
    tail = "</p>\n</body>\n</html>\n"
    filler = ("This page is served by the benchmark harness. It is exactly 571 bytes long "
              "so that every server sends the same small static file. ")
    body = (filler * 4)[: 571 - len(head) - len(tail)]
    page = head + body + tail
    assert len(page.encode()) == 571, len(page)
    with open(os.path.join(path, "index.html"), "w") as f:
        f.write(page)
    from .common import COMPRESS_PATH, COMPRESS_SOURCE
    if os.path.exists(COMPRESS_SOURCE):
        shutil.copyfile(COMPRESS_SOURCE, os.path.join(path, COMPRESS_PATH.lstrip("/")))
    sizes = [("1m.bin", 1 << 20)]
    if with_100m:
        sizes.append(("100m.bin", 100 << 20))
    for name, size in sizes:
        with open(os.path.join(path, name), "wb") as f:
            left = size
            while left:
                n = min(left, 4 << 20)
                f.write(os.urandom(n))
                left -= n
