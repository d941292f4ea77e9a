"""Helpers for katascope's end-to-end tests: run the real agent, scrape it.

Every test starts its own agent on a free loopback port, waits for /healthz
to say the probes are attached, and stops it at the end. Metrics are read
from the Prometheus text the agent serves, parsed here.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

BIN = os.environ.get("KATASCOPE_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "katascope")
SRC = os.environ.get("KATASCOPE_SRC") or os.path.join(
    os.path.dirname(__file__), "..", "..")


SELF_NAME = "ks-e2e-agent-under-test"  # plus the agent's port


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    """(status, headers, body) for a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


class Agent:
    def __init__(self, *args, port=None):
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = open("/tmp/katascope-e2e-%d.log" % self.port, "w+")
        # A name of its own (unique per instance), so that checks that the
        # agent does not count itself cannot be confused by other katascope
        # processes, e.g. the previous test's agent still exiting.
        self.self_name = "%s-%d" % (SELF_NAME, self.port)
        env = dict(os.environ, OTEL_SERVICE_NAME=self.self_name)
        self.proc = subprocess.Popen(
            [BIN, "--listen", "127.0.0.1:%d" % self.port] + list(args),
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.wait_healthy()

    def wait_healthy(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("agent exited %d: %s" %
                                   (self.proc.returncode, self.logtext()))
            try:
                st, _, body = http_get(self.url + "/healthz", timeout=1)
                if st == 200:
                    self.health = json.loads(body)
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("agent not healthy in %ds: %s" %
                           (timeout, self.logtext()))

    def logtext(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def metrics_text(self):
        st, _, body = http_get(self.url + "/metrics")
        assert st == 200, st
        return body

    def metrics(self):
        return parse_prom(self.metrics_text())

    def stop(self):
        """SIGTERM; the agent must exit 0 (a sanitizer report at exit, a
        crash or a hang on shutdown fails the test)."""
        hung = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                hung = True
                self.proc.kill()
                self.proc.wait()
        text = self.logtext()
        self.log.close()
        if hung or self.proc.returncode != 0:
            print(text[-4000:])
            raise AssertionError("agent %s (exit %s)" % (
                "hung on SIGTERM" if hung else "failed",
                self.proc.returncode))
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prom(text):
    """{(name, frozenset(labels.items())): value} for every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise ValueError("bad exposition line: %r" % line)
        labels = frozenset(_LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(samples, name, **labels):
    """Sum of the samples of name whose labels include the given ones."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items()
               if n == name and want <= set(ls))


def service_series(samples, prefix, service):
    """The samples of metrics named prefix* of one service_name."""
    return {k: v for k, v in samples.items()
            if k[0].startswith(prefix) and ("service_name", service) in k[1]}


def histograms(samples, name, service):
    """One service's histogram name, per label set without service_name
    and le: {frozenset(labels): (count, sum, {le: cumulative count})}."""
    out = {}
    for (n, labels), v in service_series(samples, name, service).items():
        ls = dict(labels)
        le = ls.pop("le", None)
        ls.pop("service_name")
        key = frozenset(ls.items())
        count, total, cum = out.get(key, (0, 0.0, {}))
        if n == name + "_count":
            count = int(v)
        elif n == name + "_sum":
            total = v
        elif n == name + "_bucket":
            cum[le] = int(v)
        out[key] = (count, total, cum)
    return out


def otlp_decode(body, signal="metrics"):
    """An OTLP protobuf export request ("metrics" or "traces") as
    protobufjs JSON, decoded by tests/e2e/app/otlp_decode.js: a decoder
    that shares no code with the agent."""
    app = os.path.join(SRC, "tests", "e2e", "app")
    cmd = ["node", os.path.join(app, "otlp_decode.js")]
    if signal != "metrics":
        cmd.append(signal)
    p = subprocess.run(cmd, input=body, stdout=subprocess.PIPE, cwd=app,
                       check=True)
    return json.loads(p.stdout)


def otlp_value(v):
    """A decoded AnyValue as a Python value (ints arrive as strings)."""
    for k in ("stringValue", "intValue", "boolValue", "doubleValue"):
        if k in v:
            return int(v[k]) if k == "intValue" else v[k]
    return None


def otlp_attrs(kvs):
    """Decoded KeyValue list -> {key: value}."""
    return {kv["key"]: otlp_value(kv.get("value", {})) for kv in kvs or []}


def wait_for(fn, timeout=10, interval=0.2):
    """Poll fn until it returns a true value; return its last value."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(interval)


class Result:
    """Counts checks and prints the closing 'N passed, N failed' line."""

    def __init__(self, name):
        self.name, self.passed, self.failed = name, 0, 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
            print("ok   " + what)
        else:
            self.failed += 1
            print("FAIL " + what)
        sys.stdout.flush()
        return cond

    def eq(self, got, want, what):
        return self.check(got == want, "%s: got %r, want %r" % (what, got, want))

    def done(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(1 if self.failed else 0)


def require_root():
    if os.geteuid() != 0:
        print("end-to-end tests need root (they load BPF programs)")
        sys.exit(1)
