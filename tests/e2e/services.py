"""Real services for end-to-end tests, started as the test's own children.

PostgreSQL: Debian's postgresql-15, a throwaway cluster in a temporary
directory on a free port. `postgres -D DIR` runs as user postgres (setpriv)
directly as our child and is stopped by its pid: pg_ctl would daemonize it,
and on these machines PID 1 does not reap orphans.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import ks

PG_BIN = "/usr/lib/postgresql/15/bin"


def _as_postgres(cmd):
    return ["setpriv", "--reuid=postgres", "--regid=postgres",
            "--clear-groups", "--"] + cmd


class Postgres:
    def __init__(self, env=None, port=None):
        self.port = port or ks.free_port()
        self.dir = tempfile.mkdtemp(prefix="ks-pg-")
        shutil.chown(self.dir, "postgres", "postgres")
        data = os.path.join(self.dir, "data")
        subprocess.run(_as_postgres([PG_BIN + "/initdb", "-D", data, "-U",
                                     "postgres", "--auth=trust", "-E",
                                     "UTF8", "--no-sync"]),
                       check=True, capture_output=True)
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.data = data
        self.run_env = dict(os.environ)
        self.run_env.update(env or {})
        self._start()

    def _start(self):
        self.proc = subprocess.Popen(
            _as_postgres([PG_BIN + "/postgres", "-D", self.data, "-p",
                          str(self.port), "-k", self.dir, "-c",
                          "listen_addresses=127.0.0.1", "-c", "fsync=off"]),
            env=self.run_env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def restart(self):
        """Stop and start the server: shared buffers start empty."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)
        self._start()

    def _wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = subprocess.run([PG_BIN + "/pg_isready", "-h", "127.0.0.1",
                                "-p", str(self.port)], capture_output=True)
            if r.returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.log.seek(0)
        raise RuntimeError("postgres did not start: " + self.log.read())

    @property
    def pid(self):
        """The postmaster's pid (setpriv execs it in place)."""
        return self.proc.pid

    def psql(self, sql, env=None, db="postgres"):
        e = dict(os.environ)
        e.update(env or {})
        return subprocess.run(["psql", "-h", "127.0.0.1", "-p",
                               str(self.port), "-U", "postgres", "-d", db,
                               "-X", "-q", "-At", "-c", sql], env=e,
                              check=True, capture_output=True,
                              text=True).stdout

    def tree(self):
        """Pids of the postmaster and its descendants."""
        children = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                stat = open("/proc/%s/stat" % d).read()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(d))
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(children.get(p, []))
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Redis:
    """redis-server on a free loopback port, no persistence."""

    def __init__(self, port=None):
        self.port = port or ks.free_port()
        self.dir = tempfile.mkdtemp(prefix="ks-redis-")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class NodeApp:
    """tests/e2e/app/server.js with the given environment."""

    def __init__(self, env):
        app = os.path.join(ks.SRC, "tests", "e2e", "app", "server.js")
        e = dict(os.environ)
        e.update(env)
        self.proc = subprocess.Popen(["node", app, "0"], env=e,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            self.proc.kill()
            raise RuntimeError("node app did not start: %r" % line)
        self.port = int(line[1])
        self.url = "http://127.0.0.1:%d" % self.port

    def stop(self):
        self.proc.kill()
        self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
