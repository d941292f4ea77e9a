#!/usr/bin/env python3
"""bench/profile_bench.py - what katascope's continuous CPU profiler costs
(issue 5), side by side with `perf record`. Run it through bench/profile.sh,
which builds the agent and checks the tools; this file does the measuring.

Two busy Node workloads, one after the other:

  cpu     two CPU-bound Node processes (a JavaScript loop that makes no
          system call but a progress line every 200 ms), one per CPU;
          throughput = their loop units per second, from their own
          progress lines. The agent's other probe families (syscalls, TCP,
          scheduler) have next to nothing to do here, so what the daemon
          costs is what the profiler costs: the targets are checked on it.
  server  tests/e2e/app/server.js (OTEL_SERVICE_NAME=pfbench-node) under
          wrk -t1 -cC at saturation on /users/1 (Node and wrk fill the two
          CPUs); throughput = wrk's requests/s. The real configuration
          under HTTP load: there the daemon's CPU is mostly its L7 probes'
          (issue 3); a perf record of the daemon itself splits it.

P is the first loop (cpu) or the Node server (server). Each workload is
measured in windows of --secs seconds with the load running:

  idle     the daemon (katascope --listen 127.0.0.1:PORT, default options,
           so 99 Hz on every CPU), nobody asking for a profile;
  pprof    the same daemon answering GET /debug/pprof/profile?seconds=SECS
           &pid=P (its first request: the symbol cache is cold);
  svg      then GET /flamegraph.svg?seconds=SECS&pid=P (cache warm);
  oneshot  katascope profile --pid P --duration SECSs -o F.pb.gz: only the
           process and profile probes, samples P only;
  perf     perf record -F 99 -g -p P -o F -- sleep SECS, then perf script
           -i F (every sample's call chain symbolized, what a flame graph
           needs), timed apart;
  agent    (--breakdown workloads) the daemon, idle, under perf record
           --call-graph dwarf: where its CPU goes.

For the daemon windows: its CPU (utime+stime of /proc/PID/stat; the
per-thread schedstat sum as a cross-check), for a request from the request
to the end of the response, split at the end of the recording; VmRSS and
VmHWM; katascope_profile_stacks_lost_total and
katascope_map_full_dropped_total{map="profile_samples"} before and after;
with kernel.bpf_stats_enabled=1 (restored afterwards) run_cnt and
run_time_ns of handle_cpu_sample and of all the agent's programs. For the
one-shot and perf: wait4() rusage of the command.

Throughput: rounds of --round-secs s each (--cpu-round-secs on cpu) under
four configurations in an order that rotates from round to round: none,
the daemon (started before its run, stopped after, no profile requested),
the one-shot, perf record. Ratio = rate / the same round's rate with none;
median and range over the rounds.

Before every window and run it waits up to --foreign-wait s while BPF
programs named handle_* that are not its agent's (another katascope) are
loaded, and notes it if they stay; the 1-minute load average at the start
of each is in the report.

Exit status: 0 ran and met the targets, 3 ran but missed a target, 1 could
not run.
"""
import argparse
import datetime
import gzip
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import benchlib
from benchlib import (CHILDREN, BenchError, http_get_bytes, kill_child, ks,
                      log, proc_cpu, proc_mem, wait_rusage)

SERVICE = "pfbench-node"
AGENT_NAME = "pfbench-agent"
PERF = os.environ.get("PERF") or shutil.which("perf") or "/usr/bin/perf"
SAMPLER = "handle_cpu_sample"
HZ = 99
BREAKDOWN_HZ = 499
# Where the daemon's time goes: (function, what it is), children shares.
BREAKDOWN = [
    ("ring_buffer__poll", "handling the probes' ring-buffer records (HTTP, "
     "SQL, TCP, process events)"),
    ("l7_on_event", "of which server-side HTTP/SQL exchanges"),
    ("l7_client_on_event", "of which client-side exchanges"),
    ("metric_observe", "of which histogram updates (label lookup)"),
    ("profiler_tick", "**the profiler**: draining and clearing the sample "
     "and stack maps"),
    ("telemetry_refresh", "per-process CPU/memory refresh from /proc"),
    ("start_thread", "HTTP server threads"),
]
# The profiler's loss counters: (label in the report, metric, labels).
LOSS = [
    ("stacks lost", "katascope_profile_stacks_lost_total", {}),
    ("samples map full", "katascope_map_full_dropped_total",
     {"map": "profile_samples"}),
]
WINDOWS = ("idle", "pprof", "svg", "oneshot", "perf")
CONFIGS = ("none", "daemon", "oneshot", "perf")

# targets (issue 5), checked on the cpu workload
IDLE_CPU_TARGET = 1.0     # % of one core, sampling, no profile requested
RECORD_CPU_TARGET = 2.0   # % of one core, recording and symbolizing
THROUGHPUT_TARGET = 0.99  # with the daemon / without, median
TARGET_LOAD = "cpu"

BEGIN = "<!-- bench/profile.sh results: begin -->"
END = "<!-- bench/profile.sh results: end -->"
SECTION = "## Continuous profiler (issue 5)"

# A CPU-bound Node loop in a named function; prints "<hrtime ns> <units>"
# every 200 ms (stdout to a pipe is synchronous in Node on Linux).
SPIN_JS = r"""
'use strict';
function pfbenchSpin(n) {
  let x = 0;
  for (let i = 0; i < n; i++) x = (x * 31 + i) % 1000003;
  return x;
}
let units = 0, sink = 0, last = process.hrtime.bigint();
process.stdout.write(last + ' 0\n');
for (;;) {
  sink += pfbenchSpin(20000);
  units++;
  const now = process.hrtime.bigint();
  if (now - last >= 200000000n) {
    process.stdout.write(now + ' ' + units + '\n');
    last = now;
  }
}
"""


# ---- decoding what the tools wrote ------------------------------------------

def _varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7f) << s
        s += 7
        if c < 0x80:
            return r, i


def _fields(b):
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            n, i = _varint(b, i)
            v = b[i:i + n]
            i += n
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        yield f, wt, v


def _ints(wt, v):
    if wt == 0:
        return [v]
    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i)
        out.append(x)
    return out


def pprof_summary(data):
    """Samples (sum of the first value), stacks, frames per sample and the
    share of frames with a name (not [unknown] / [jit]) of a pprof."""
    try:
        raw = gzip.decompress(data)
    except OSError:
        raw = data
    samples, strings, locs, funcs = [], [], {}, {}
    for f, wt, v in _fields(raw):
        if f == 2:
            loc, val = [], []
            for f2, wt2, v2 in _fields(v):
                if f2 == 1:
                    loc += _ints(wt2, v2)
                elif f2 == 2:
                    val += _ints(wt2, v2)
            samples.append((loc, val[0] if val else 0))
        elif f == 4:
            lid, fids = 0, []
            for f2, wt2, v2 in _fields(v):
                if f2 == 1:
                    lid = v2
                elif f2 == 4:
                    for f3, _, v3 in _fields(v2):
                        if f3 == 1:
                            fids.append(v3)
            locs[lid] = fids
        elif f == 5:
            fid = name = 0
            for f2, _, v2 in _fields(v):
                if f2 == 1:
                    fid = v2
                elif f2 == 2:
                    name = v2
            funcs[fid] = name
        elif f == 6:
            strings.append(v.decode("utf-8", "replace"))
    n = sum(c for _, c in samples)
    frames = named = 0
    for loc, c in samples:
        for lid in loc:
            fids = locs.get(lid) or [0]
            nm = strings[funcs.get(fids[-1], 0)] if strings else ""
            frames += c
            if nm and nm not in ("[unknown]", "[jit]"):
                named += c
    return {"samples": n, "stacks": len(samples),
            "frames_per_sample": frames / n if n else 0.0,
            "named": named / frames if frames else 0.0}


def perf_script_summary(text):
    """The same figures from perf script's default output (a header line
    per sample, then one indented line per frame)."""
    n = frames = named = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            n += 1
            continue
        parts = line.split(None, 2)
        frames += 1
        if len(parts) > 1 and not parts[1].startswith("[unknown]"):
            named += 1
    return {"samples": n, "frames_per_sample": frames / n if n else 0.0,
            "named": named / frames if frames else 0.0}


# ---- workloads ----------------------------------------------------------------


def svg_summary(data):
    """Frame boxes of the agent's flame graph (<g class="f">), after
    checking that it is well-formed XML."""
    import xml.etree.ElementTree as ET
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise BenchError("the flame graph is not well-formed XML: %s" % e)
    boxes = sum(1 for g in root.iter("{http://www.w3.org/2000/svg}g")
                if g.get("class") == "f")
    return {"boxes": boxes}


# ---- workloads ----------------------------------------------------------------

class ServerLoad:
    """The Node server under wrk; rate = requests/s."""
    name = "server"
    unit = "req/s"

    def __init__(self, a):
        self.a = a
        app = os.path.join(benchlib.REPO, "tests", "e2e", "app", "server.js")
        env = dict(os.environ, OTEL_SERVICE_NAME=SERVICE)
        self.proc = subprocess.Popen(["node", app, "0"], env=env,
                                     stdout=subprocess.PIPE, text=True)
        CHILDREN.append(self.proc)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            raise BenchError("the Node server did not start: %r" % line)
        self.url = "http://127.0.0.1:%s/users/1" % line[1]
        self.pid = self.proc.pid
        self.pids = [self.pid]
        st, body = http_get_bytes(self.url, 5)
        if st != 200:
            raise BenchError("GET /users/1 answered %d: %r" % (st, body))
        self.wrk = None
        self.desc = ("tests/e2e/app/server.js (`OTEL_SERVICE_NAME=%s`) under "
                     "`wrk -t1 -c%d` at saturation on /users/1; P is the "
                     "server" % (SERVICE, a.conns))

    def start(self, secs):
        """Start the load for secs seconds (in the background)."""
        self.secs = math.ceil(secs)
        self.wrk = subprocess.Popen(
            benchlib.wrk_cmd(self.url, self.a.conns, self.secs),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        CHILDREN.append(self.wrk)

    def finish(self, early=False):
        """Wait for the load to end (or, early, end it now: wrk stops and
        reports on SIGINT); its rate over its whole run."""
        if early and self.wrk.poll() is None:
            self.wrk.send_signal(signal.SIGINT)
        try:
            out, err = self.wrk.communicate(timeout=self.secs + 60)
        except subprocess.TimeoutExpired:
            raise BenchError("wrk did not finish")
        finally:
            kill_child(self.wrk)
        if self.wrk.returncode != 0:
            raise BenchError("wrk failed (%d): %s %s" %
                             (self.wrk.returncode, out, err))
        r = benchlib.wrk_parse(out, self.secs)
        if r["errors"] or r["non2xx"]:
            raise BenchError("wrk saw errors: %s" % out)
        self.check()
        return r["rps"]

    def check(self):
        if self.proc.poll() is not None:
            raise BenchError("the Node server exited (%d)" %
                             self.proc.returncode)

    def warmup(self):
        self.start(self.a.warmup)
        self.finish()

    def stop(self):
        if self.wrk:
            kill_child(self.wrk)
        kill_child(self.proc)


class CpuLoad:
    """Two CPU-bound Node loops, always running; rate = their loop units
    per second (sum), from their own progress lines."""
    name = "cpu"
    unit = "units/s"

    def __init__(self, a, n=2):
        self.a = a
        self.procs, self.lines = [], []
        self.lock = threading.Lock()
        for i in range(n):
            p = subprocess.Popen(["node", "-e", SPIN_JS],
                                 env=dict(os.environ,
                                          OTEL_SERVICE_NAME="pfbench-spin"),
                                 stdout=subprocess.PIPE, text=True)
            CHILDREN.append(p)
            self.procs.append(p)
            self.lines.append([])
            threading.Thread(target=self._reader, args=(i, p),
                             daemon=True).start()
        self.pid = self.procs[0].pid
        self.pids = [p.pid for p in self.procs]
        deadline = time.monotonic() + 10
        while not all(self.last(i) for i in range(n)):
            if time.monotonic() > deadline:
                raise BenchError("the CPU-bound Node loops did not start")
            self.check()
            time.sleep(0.05)
        self.desc = ("%d CPU-bound Node processes (`node -e` of a JavaScript "
                     "loop in bench/profile_bench.py, one per CPU); P is the "
                     "first" % n)

    def _reader(self, i, p):
        for line in p.stdout:
            f = line.split()
            if len(f) == 2:
                with self.lock:
                    self.lines[i].append((int(f[0]), int(f[1])))

    def last(self, i):
        with self.lock:
            return self.lines[i][-1] if self.lines[i] else None

    def start(self, secs):
        self.check()
        self.t0 = [self.last(i) for i in range(len(self.procs))]
        self.wall0 = time.monotonic()
        self.secs = secs

    def finish(self, early=False):
        left = self.wall0 + self.secs - time.monotonic()
        if left > 0 and not early:
            time.sleep(left)
        self.check()
        rate = 0.0
        for i in range(len(self.procs)):
            (ns0, u0), (ns1, u1) = self.t0[i], self.last(i)
            if ns1 <= ns0:
                raise BenchError("no progress from the CPU-bound loop %d" % i)
            rate += (u1 - u0) / ((ns1 - ns0) / 1e9)
        return rate

    def check(self):
        for p in self.procs:
            if p.poll() is not None:
                raise BenchError("a CPU-bound Node loop exited (%d)" %
                                 p.returncode)

    def warmup(self):
        time.sleep(self.a.warmup)

    def stop(self):
        for p in self.procs:
            kill_child(p)


# ---- the bench -------------------------------------------------------------------

def pct(cpu, secs):
    """cpu seconds over secs of wall time, in % of one core."""
    return 100.0 * cpu / secs if secs else 0.0


class Bench:
    def __init__(self, a):
        self.a = a
        self.work = tempfile.mkdtemp(prefix="pfbench-")
        self.agent = None
        self.load = None
        self.stats_saved = None
        self.notes = []          # (run label, what) where the machine was busy
        self.windows = {}        # (workload, kind) -> dict
        self.rounds = {}         # workload -> [dict]
        self.startups = []       # s from exec to /healthz 200
        self.descs = {}          # workload -> description
        self.fails = []

    # -- quiet machine

    def wait_quiet(self, label):
        """Wait up to --foreign-wait s while another katascope's programs
        are loaded, note it if they stay, and whether another benchmark
        runs; the 1-min load average."""
        ours = self.agent.prog_ids if self.agent else set()
        t0 = time.monotonic()
        names = benchlib.foreign_progs(ours)
        if names:
            log("waiting: BPF programs of another katascope are loaded")
        while names and time.monotonic() - t0 < self.a.foreign_wait:
            time.sleep(2)
            names = benchlib.foreign_progs(ours)
        if names:
            self.notes.append((label, "BPF programs of another katascope "
                               "loaded (%s)" % ", ".join(sorted(set(names))[:4])))
        p = subprocess.run(["pgrep", "-f", "l7_bench|connstorm"],
                           capture_output=True, text=True)
        if p.stdout.split():
            self.notes.append((label, "another benchmark running (pid %s)" %
                               ",".join(p.stdout.split())))
        return float(benchlib.loadavg()[0])

    # -- setup and teardown

    def close(self):
        if self.agent:
            self.agent.stop()
            self.agent = None
        self.stats_restore()
        if self.load:
            self.load.stop()
            self.load = None
        benchlib.close_children()
        shutil.rmtree(self.work, ignore_errors=True)

    def start_agent(self):
        self.agent = benchlib.Agent(self.a.agent, self.a.port, self.work,
                                    AGENT_NAME)
        self.startups.append(self.agent.startup_s)
        time.sleep(self.a.settle)  # its start-up /proc scan
        self.agent.alive()

    def stop_agent(self):
        rc = self.agent.stop()
        self.agent = None
        if rc != 0:
            raise BenchError("the agent exited with status %d on SIGTERM" % rc)

    def stats_on(self):
        if self.stats_saved is None:
            self.stats_saved = benchlib.stats_get()
        benchlib.stats_set("1")

    def stats_restore(self):
        if self.stats_saved is not None:
            try:
                benchlib.stats_set(self.stats_saved)
            except OSError as e:
                log("could not restore kernel.bpf_stats_enabled: %s" % e)
            self.stats_saved = None

    def loss(self):
        """The profiler's loss counters now, by report label."""
        m = self.agent.metrics()
        return {k: ks.value(m, name, **labels) for k, name, labels in LOSS}

    def run_tool(self, cmd, timeout):
        """Run cmd to its end: (status, user+sys CPU s, max RSS MiB,
        stderr text)."""
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        CHILDREN.append(p)
        err = []
        th = threading.Thread(target=lambda: err.append(p.stderr.read()),
                              daemon=True)
        th.start()
        rc, cpu, maxrss = wait_rusage(p, timeout)
        th.join(5)
        text = (err[0] if err else b"").decode(errors="replace")
        return rc, cpu, maxrss / 1024, text

    # -- windows

    def window(self, kind, fn, extra=0.0):
        """One window of the current workload: the load runs from --margin
        s before fn() to its end (extra s allowed after --secs); the
        load's rate and P's CPU over fn() are added to what fn returns."""
        load = self.load
        label = "%s %s" % (load.name, kind)
        log("%s, %d s" % (label, self.a.secs))
        load1 = self.wait_quiet(label)
        load.start(self.a.secs + 2 * self.a.margin + extra)
        time.sleep(self.a.margin)
        p0, t0 = proc_cpu(load.pid)[1], time.monotonic()
        r = fn()
        r["p_cpu"] = proc_cpu(load.pid)[1] - p0
        r["p_window"] = time.monotonic() - t0
        r["rate"] = load.finish(early=True)
        r["load1"] = load1
        self.windows[(load.name, kind)] = r

    def daemon_mark(self):
        """What the daemon windows compare: loss counters (scraped first,
        so the scrape is not in the CPU), BPF programs, CPU, time."""
        loss = self.loss()
        return {"loss": loss,
                "progs": benchlib.prog_snapshot(self.agent.prog_ids),
                "cpu": self.agent.cpu(), "t": time.monotonic()}

    def daemon_delta(self, m0, m1, t1=None):
        if benchlib.stats_get() != "1":
            raise BenchError("kernel.bpf_stats_enabled was turned off during "
                             "the run: someone else set it")
        win = (t1 or m1["t"]) - m0["t"]
        d = benchlib.prog_delta(m0["progs"], m1["progs"])
        runs = sum(x[1] for x in d if x[0] == SAMPLER)
        ns = sum(x[2] for x in d if x[0] == SAMPLER)
        return {"window": win, "cpu": m1["cpu"][0] - m0["cpu"][0],
                "sched": m1["cpu"][1] - m0["cpu"][1],
                "bpf": {"runs": runs, "ns": ns,
                        "all_ns": sum(x[2] for x in d), "secs": win},
                "loss": {k: m1["loss"][k] - m0["loss"][k]
                         for k in m0["loss"]},
                "mem": proc_mem(self.agent.pid)}

    def win_idle(self):
        """The daemon sampling, nobody asking for a profile."""
        m0 = self.daemon_mark()
        time.sleep(self.a.secs)
        return self.daemon_delta(m0, self.daemon_mark())

    def win_request(self, path, summary):
        """The daemon answering GET path?seconds=SECS&pid=P: its CPU from
        the request to the end of the response, split at the end of the
        recording (the session ends SECS s after the request)."""
        secs = self.a.secs
        url = "%s%s?seconds=%d&pid=%d" % (self.agent.url, path, secs,
                                          self.load.pid)
        mem0 = proc_mem(self.agent.pid)
        m0 = self.daemon_mark()
        res = {}

        def get():
            try:
                res["resp"] = http_get_bytes(url, secs + 120)
            except OSError as e:
                res["error"] = e
            res["t"] = time.monotonic()

        th = threading.Thread(target=get, daemon=True)
        th.start()
        time.sleep(max(0.0, m0["t"] + secs - time.monotonic()))
        cmid, tmid = self.agent.cpu(), time.monotonic()
        th.join(secs + 130)
        if "t" not in res:
            raise BenchError("GET %s did not finish" % url)
        m1 = self.daemon_mark()
        if "error" in res:
            raise BenchError("GET %s failed: %s" % (url, res["error"]))
        st, body = res["resp"]
        if st != 200:
            raise BenchError("GET %s answered %d: %r" % (url, st, body[:200]))
        # utime+stime of /proc/PID/stat: it keeps the time of the HTTP
        # thread that answered, the schedstat sum may not.
        r = self.daemon_delta(m0, m1, res["t"])
        r.update({"rec_cpu": cmid[0] - m0["cpu"][0],
                  "rec_window": tmid - m0["t"],
                  "symb_cpu": r["cpu"] - (cmid[0] - m0["cpu"][0]),
                  "symb_wall": res["t"] - m0["t"] - secs,
                  "size": len(body), "prof": summary(body),
                  "mem_before": mem0})
        return r

    def win_oneshot(self):
        """katascope profile --pid P --duration SECSs -o F.pb.gz"""
        out = os.path.join(self.work, "oneshot-%s.pb.gz" % self.load.name)
        t0 = time.monotonic()
        rc, cpu, maxrss, err = self.run_tool(
            [self.a.agent, "profile", "--pid", str(self.load.pid),
             "--duration", "%ds" % self.a.secs, "-o", out], self.a.secs + 120)
        t1 = time.monotonic()
        if rc != 0:
            raise BenchError("katascope profile failed (%d): %s" %
                             (rc, err[-500:]))
        with open(out, "rb") as f:
            body = f.read()
        return {"window": t1 - t0, "cpu": cpu, "maxrss": maxrss,
                "size": len(body), "prof": pprof_summary(body)}

    def win_perf(self):
        """perf record -F 99 -g -p P -- sleep SECS; perf script apart."""
        data = os.path.join(self.work, "perf-%s.data" % self.load.name)
        t0 = time.monotonic()
        rc, cpu, maxrss, err = self.run_tool(
            [PERF, "record", "-F", str(HZ), "-g", "-p", str(self.load.pid),
             "-o", data, "--", "sleep", str(self.a.secs)], self.a.secs + 120)
        t1 = time.monotonic()
        if rc != 0:
            raise BenchError("perf record failed (%d): %s" % (rc, err[-500:]))
        return {"window": t1 - t0, "cpu": cpu, "maxrss": maxrss,
                "size": os.path.getsize(data), "data": data}

    def perf_script(self, r):
        """Symbolize what perf recorded (after the window: the load is
        over, so it competes with nothing)."""
        t0 = time.monotonic()
        p = subprocess.Popen([PERF, "script", "-i", r.pop("data")],
                             stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        CHILDREN.append(p)
        chunks = []
        th = threading.Thread(target=lambda: chunks.append(p.stdout.read()),
                              daemon=True)
        th.start()
        rc, cpu, _ = wait_rusage(p, 300)
        th.join(30)
        if rc != 0 or not chunks:
            raise BenchError("perf script failed (%d)" % rc)
        r.update({"script_cpu": cpu, "script_wall": time.monotonic() - t0,
                  "prof": perf_script_summary(chunks[0])})

    def win_breakdown(self):
        """Where the daemon's CPU goes, nobody asking for a profile: perf
        record of the agent itself (DWARF call chains: the agent and libc
        are built without frame pointers), children share by function."""
        data = os.path.join(self.work, "agent-%s.data" % self.load.name)
        c0, t0 = self.agent.cpu(), time.monotonic()
        rc, pcpu, _, err = self.run_tool(
            [PERF, "record", "-F", str(BREAKDOWN_HZ), "--call-graph",
             "dwarf,16384", "-p", str(self.agent.pid), "-o", data, "--",
             "sleep", str(self.a.secs)], self.a.secs + 120)
        c1, t1 = self.agent.cpu(), time.monotonic()
        if rc != 0:
            raise BenchError("perf record of the agent failed (%d): %s" %
                             (rc, err[-300:]))
        return {"window": t1 - t0, "cpu": c1[0] - c0[0], "perf_cpu": pcpu,
                "data": data}

    def breakdown_report(self, r):
        rc, out, err = benchlib.run_bounded(
            [PERF, "report", "-i", r.pop("data"), "--no-inline", "--children",
             "--sort", "sym", "--stdio", "-g", "none"], 300)
        if rc != 0:
            raise BenchError("perf report failed (%d): %s" % (rc, err[-300:]))
        share, total = {}, 0
        for line in out.splitlines():
            m = re.match(r"^\s*([\d.]+)%\s+([\d.]+)%\s+\[.\]\s+(\S+)", line)
            if m:
                name = m.group(3)
                share[name] = max(share.get(name, 0.0), float(m.group(1)))
            m = re.match(r"^# Samples: (\d+)", line)
            if m:
                total = int(m.group(1))
        r.update({"share": share, "samples": total})

    def windows_for(self, load):
        log("%s: warming up" % load.name)
        load.warmup()
        self.start_agent()
        self.stats_on()
        self.window("idle", self.win_idle)
        slack = self.a.symb_slack
        self.window("pprof", lambda: self.win_request(
            "/debug/pprof/profile", pprof_summary), slack)
        self.window("svg", lambda: self.win_request(
            "/flamegraph.svg", svg_summary), slack)
        self.stats_restore()
        if load.name in self.a.breakdown:
            self.window("agent", self.win_breakdown)
            self.breakdown_report(self.windows[(load.name, "agent")])
        self.stop_agent()
        self.window("oneshot", self.win_oneshot, slack)
        self.window("perf", self.win_perf, 3)
        self.perf_script(self.windows[(load.name, "perf")])

    # -- throughput rounds

    def wait_started(self, tool, what, deadline_s=30):
        """Wait until the one-shot says it samples."""
        buf = b""
        deadline = time.monotonic() + deadline_s
        os.set_blocking(tool.stderr.fileno(), False)
        while what not in buf:
            if tool.poll() is not None or time.monotonic() > deadline:
                raise BenchError("katascope profile did not start: %r" %
                                 buf[-300:])
            time.sleep(0.05)
            buf += tool.stderr.read() or b""

    def run_config(self, config, secs):
        """One throughput run under config; (rate, loss counters of the
        daemon or None)."""
        load, tool, loss = self.load, None, None
        long = str(secs + 30)  # the tools outlive the run; stopped after
        if config == "daemon":
            self.start_agent()
        elif config == "oneshot":
            tool = subprocess.Popen(
                [self.a.agent, "profile", "--pid", str(load.pid),
                 "--duration", long + "s", "-o",
                 os.path.join(self.work, "round.pb.gz")],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            CHILDREN.append(tool)
            self.wait_started(tool, b"sampling pid")
            time.sleep(self.a.settle)
        elif config == "perf":
            tool = subprocess.Popen(
                [PERF, "record", "-F", str(HZ), "-g", "-p", str(load.pid),
                 "-o", os.path.join(self.work, "round.data"), "--", "sleep",
                 long], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            CHILDREN.append(tool)
            time.sleep(self.a.settle)
        try:
            if tool and tool.poll() is not None:
                raise BenchError("%s exited (%d)" % (config, tool.returncode))
            load.start(secs)
            rate = load.finish()
            if config == "daemon":
                loss = self.loss()
        finally:
            if config == "daemon":
                self.stop_agent()
            elif tool:
                kill_child(tool, signal.SIGINT, 60)
        if config != "none":
            time.sleep(self.a.settle)  # a pause before the next run
        return rate, loss

    def rounds_for(self, load, rounds, secs):
        rows = []
        log("%s: %d rounds of %d s" % (load.name, rounds, secs))
        for i in range(rounds):
            # Rotated, and reversed every other round, so that no
            # configuration always follows the same one (stopping the
            # daemon takes seconds; what it leaves behind must not land on
            # one configuration only).
            order = CONFIGS[i % 4:] + CONFIGS[:i % 4]
            if i % 2:
                order = order[::-1]
            row = {"order": order, "rate": {}, "load1": {}, "loss": None}
            for c in order:
                label = "%s round %d %s" % (load.name, i + 1, c)
                row["load1"][c] = self.wait_quiet(label)
                row["rate"][c], loss = self.run_config(c, secs)
                if loss is not None:
                    row["loss"] = loss
                log("%s: %.0f %s" % (label, row["rate"][c], load.unit))
            rows.append(row)
        self.rounds[load.name] = rows

    def run(self):
        self.load_start = benchlib.loadavg()
        self.date = datetime.datetime.now(datetime.timezone.utc)
        for mk, rounds, rsecs in (
                (CpuLoad, self.a.cpu_rounds, self.a.cpu_round_secs),
                (ServerLoad, self.a.rounds, self.a.round_secs)):
            if mk.name not in self.a.workloads:
                continue
            self.load = mk(self.a)
            self.descs[mk.name] = self.load.desc
            self.windows_for(self.load)
            if rounds:
                self.rounds_for(self.load, rounds, rsecs)
            self.load.stop()
            self.load = None
        self.load_end = benchlib.loadavg()

    # -- the report

    def ratios(self, name):
        """{config: (median, min, max)} of rate / the round's rate with
        none, over the rounds of a workload."""
        rows = self.rounds.get(name, [])
        out = {}
        for c in CONFIGS[1:]:
            rs = [r["rate"][c] / r["rate"]["none"] for r in rows
                  if r["rate"]["none"]]
            out[c] = (statistics.median(rs), min(rs), max(rs)) if rs \
                else None
        return out

    def loss_total(self):
        """{counter: sum} over every daemon window and round."""
        tot = {k: 0 for k, _, _ in LOSS}
        for (_, kind), r in self.windows.items():
            for k, v in r.get("loss", {}).items():
                tot[k] += v
        for rows in self.rounds.values():
            for row in rows:
                for k, v in (row["loss"] or {}).items():
                    tot[k] += v
        return tot

    def targets(self):
        """[(target, result ok, measured)], on the cpu workload."""
        W, n, out = self.windows, TARGET_LOAD, []
        if (n, "idle") not in W:
            return out
        r = W[(n, "idle")]
        p = pct(r["cpu"], r["window"])
        out.append(("agent CPU while sampling at %d Hz on %d busy CPUs, no "
                    "profile requested, < %g %% of one core" % (
                        HZ, os.cpu_count(), IDLE_CPU_TARGET),
                    p < IDLE_CPU_TARGET,
                    "%.2f %% (%.2f s in %.1f s; schedstat %.2f %%)" % (
                        p, r["cpu"], r["window"], pct(r["sched"],
                                                      r["window"]))))
        for kind, what in (("pprof", "GET /debug/pprof/profile"),
                           ("svg", "GET /flamegraph.svg")):
            r = W[(n, kind)]
            p = pct(r["cpu"], r["window"])
            out.append(("agent CPU while recording and symbolizing a %d s "
                        "profile of a busy Node process (%s?seconds=%d&pid="
                        "P), < %g %% of one core" % (
                            self.a.secs, what, self.a.secs,
                            RECORD_CPU_TARGET), p < RECORD_CPU_TARGET,
                        "%.2f %% (%.2f s in %.1f s, request to response)" % (
                            p, r["cpu"], r["window"])))
        rt = self.ratios(n)["daemon"]
        if rt:
            out.append(("throughput of the profiled workload with the agent "
                        ">= %g %% of without (median of %d rounds)" % (
                            100 * THROUGHPUT_TARGET, len(self.rounds[n])),
                        rt[0] >= THROUGHPUT_TARGET,
                        "%.3f (range %.3f-%.3f)" % rt))
        tot = self.loss_total()
        out.append(("no profile sample or stack lost (every daemon window "
                    "and round, both workloads)", not any(tot.values()),
                    ", ".join("%s %d" % (k, v) for k, v in tot.items())))
        return out

    def report(self):
        a, out = self.a, []
        add = out.append
        W = self.windows
        loads = [n for n in ("cpu", "server") if (n, "idle") in W]
        targets = self.targets()
        self.fails = [t for t, ok, _ in targets if not ok]

        def per_cpu_s(r):
            """Samples per second of P's CPU (P's CPU rate over the window
            times the sampled seconds)."""
            busy = r["p_cpu"] / r["p_window"] * a.secs
            return r["prof"]["samples"] / busy if busy else 0.0

        def ratio(n, c):
            rt = self.ratios(n).get(c)
            return "%.3f (%.3f-%.3f)" % rt if rt else "-"

        node_v = benchlib.tool_version(["node", "--version"])
        wrk_v = (benchlib.tool_version(["wrk", "-v"]).split(" ") +
                 ["?", "?"])[1]
        perf_v = benchlib.tool_version([PERF, "--version"]).replace(
            "perf version ", "")

        add("### Results, %s" % self.date.strftime("%Y-%m-%d %H:%M UTC"))
        add("")
        out += benchlib.header_lines(a)
        add("- Agent: `%s` %s; default options (so `--profile-hz %d` and all "
            "probe groups) except `--listen 127.0.0.1:%d`; %d starts, "
            "%.2f-%.2f s from exec to /healthz 200" % (
                a.agent, benchlib.build_desc(a), HZ, a.port,
                len(self.startups), min(self.startups), max(self.startups)))
        add("- Node %s, wrk %s, perf %s" % (node_v, wrk_v, perf_v))
        for n in loads:
            add("- Workload `%s`: %s" % (n, self.descs[n]))
        add("- Load average (1, 5, 15 min) before / after: %s / %s; the "
            "1-min figure at the start of each window and run is in the "
            "tables" % (" ".join(self.load_start), " ".join(self.load_end)))
        if self.notes:
            add("- **Caveat:** " + "; ".join("%s: %s" % x
                                             for x in self.notes) + ".")
        add("")

        add("#### Targets (workload `%s`)" % TARGET_LOAD)
        add("")
        add("| target | result | measured |")
        add("|---|---|---|")
        for t, ok, m in targets:
            add("| %s | %s | %s |" % (t, "met" if ok else "**missed**", m))
        add("")

        add("#### Side by side: katascope and perf record")
        add("")
        add("One window of %d s per row, the workload running. Tool CPU: "
            "user+system time, the daemon's from /proc/PID/stat over the "
            "window (for a request, from the request to the end of the "
            "response), the one-shot's and perf's from wait4() rusage of the "
            "whole command; %% is of one core. Samples of P: pprof "
            "`samples/count`, or perf script's sample records; per P CPU-s: "
            "divided by P's CPU time (schedstat) in the sampled %d s, %d "
            "would be exact. Named frames: share of frames with a symbol "
            "(not `[unknown]`/`[jit]`: V8's JIT frames are unnamed for both "
            "tools, Node runs without --perf-basic-prof). Ratio: median "
            "(range) of the throughput rounds below." % (a.secs, a.secs, HZ))
        add("")
        add("| workload | tool | window s | tool CPU s | % of one core | "
            "symbolization | output | samples of P | per P CPU-s | "
            "frames/sample | named frames | load (1 min) | workload rate in "
            "window | throughput ratio |")
        add("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for n in loads:
            unit = "req/s" if n == "server" else "units/s"

            def row(kind, tool, symb, output, ratio_s):
                r = W[(n, kind)]
                pr = r.get("prof")
                prof = "| %d | %.1f | %.1f | %.1f %% " % (
                    pr["samples"], per_cpu_s(r), pr["frames_per_sample"],
                    100 * pr["named"]) if pr and "samples" in pr else \
                    "| - | - | - | - "
                add("| %s | %s | %.1f | %.2f | %.2f | %s | %s %s| %.2f | "
                    "%.0f %s | %s |" % (
                        n, tool, r["window"], r["cpu"],
                        pct(r["cpu"], r["window"]), symb, output, prof,
                        r["load1"], r["rate"], unit, ratio_s))

            row("idle", "katascope daemon, sampling, no profile requested",
                "-", "-", ratio(n, "daemon"))
            for kind, path in (("pprof", "/debug/pprof/profile"),
                               ("svg", "/flamegraph.svg")):
                r = W[(n, kind)]
                out_s = "%d B pprof" % r["size"] if kind == "pprof" else \
                    "%d B SVG, %d frame boxes" % (r["size"],
                                                  r["prof"]["boxes"])
                row(kind, "katascope daemon, GET %s?seconds=%d&pid=P" % (
                    path, a.secs), "included: %.2f s wall after the %d s, "
                    "%.2f s CPU" % (r["symb_wall"], a.secs, r["symb_cpu"]),
                    out_s, "(as above)")
            row("oneshot", "`katascope profile --pid P --duration %ds -o "
                "F.pb.gz`" % a.secs, "included", "%d B pprof" %
                W[(n, "oneshot")]["size"], ratio(n, "oneshot"))
            r = W[(n, "perf")]
            row("perf", "`perf record -F %d -g -p P -- sleep %d`" % (
                HZ, a.secs), "not included: `perf script` %.2f s wall, "
                "%.2f s CPU" % (r["script_wall"], r["script_cpu"]),
                "%d B perf.data" % r["size"], ratio(n, "perf"))
        add("")

        add("#### The daemon: BPF time of the sampler, memory, losses")
        add("")
        add("`kernel.bpf_stats_enabled=1` during the daemon windows (restored "
            "afterwards; it adds two clock reads to every BPF run, so the "
            "figures are slightly pessimistic). `%s` runs in the interrupted "
            "task's context on every CPU's cpu-clock event (%d Hz per CPU), "
            "so its time is charged to the sampled processes, not to the "
            "agent. All programs = every BPF program the agent holds (the "
            "L7, TCP and scheduler probes too), for scale. Lost = the delta "
            "of `katascope_profile_stacks_lost_total` and of "
            "`katascope_map_full_dropped_total{map=\"profile_samples\"}` over "
            "the window." % (SAMPLER, HZ))
        add("")
        add("| workload | window | seconds | %s runs | runs/s | ns/run | "
            "%% of one core | all the agent's programs, %% of one core | "
            "stacks lost | samples map full | agent VmRSS after, MiB | "
            "VmHWM, MiB |" % SAMPLER)
        add("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for n in loads:
            for kind, what in (("idle", "no profile requested"),
                               ("pprof", "pprof of P"),
                               ("svg", "flame graph of P")):
                r = W[(n, kind)]
                b = r["bpf"]
                add("| %s | %s | %.1f | %d | %.0f | %s | %.3f | %.3f | %d | "
                    "%d | %.1f | %.1f |" % (
                        n, what, b["secs"], b["runs"], b["runs"] / b["secs"],
                        "%.0f" % (b["ns"] / b["runs"]) if b["runs"] else "-",
                        pct(b["ns"] / 1e9, b["secs"]),
                        pct(b["all_ns"] / 1e9, b["secs"]),
                        r["loss"]["stacks lost"],
                        r["loss"]["samples map full"], r["mem"][0],
                        r["mem"][1]))
        add("")
        for n in loads:
            for kind, cache in (("pprof", "the agent's first request: "
                                 "symbol cache cold"),
                                ("svg", "symbol cache warm")):
                r = W[(n, kind)]
                add("- `%s`, %s (%s): recording (%.1f s) took %.2f s of "
                    "agent CPU (%.2f %% of one core), symbolizing and "
                    "rendering %.2f s (%.2f s wall); VmRSS %.1f MiB before "
                    "the request, %.1f after." % (
                        n, kind, cache, r["rec_window"], r["rec_cpu"],
                        pct(r["rec_cpu"], r["rec_window"]), r["symb_cpu"],
                        r["symb_wall"], r["mem_before"][0], r["mem"][0]))
            add("- `%s`, one-shot: peak RSS %.1f MiB; perf record: peak "
                "RSS %.1f MiB." % (n, W[(n, "oneshot")]["maxrss"],
                                   W[(n, "perf")]["maxrss"]))
        add("")

        for n in loads:
            r = W.get((n, "agent"))
            if not r:
                continue
            ip = pct(W[(n, "idle")]["cpu"], W[(n, "idle")]["window"])
            add("#### Where the daemon's CPU goes (`%s`)" % n)
            add("")
            add("A separate %d s window, the daemon sampling and nobody "
                "asking for a profile, with `perf record -F %d --call-graph "
                "dwarf -p AGENT` attached (%d samples; the agent used %.2f %% "
                "of one core in that window, perf %.2f s of CPU). Share = "
                "the agent's samples with the function on the stack "
                "(`perf report --children`); %% of one core = share x the "
                "agent's CPU in the idle window above (%.2f %%)." % (
                    a.secs, BREAKDOWN_HZ, r["samples"],
                    pct(r["cpu"], r["window"]), r["perf_cpu"], ip))
            add("")
            add("| function | what | share of the agent's samples | "
                "~ % of one core |")
            add("|---|---|---|---|")
            for fn, what in BREAKDOWN:
                v = r["share"].get(fn)
                add("| `%s` | %s | %s | %s |" % (
                    fn, what, "%.1f %%" % v if v is not None else
                    "0 (not seen)", "%.3f" % (v / 100 * ip) if v is not None
                    else "0"))
            add("")

        if self.rounds:
            add("#### Throughput rounds")
            add("")
            add("Each round runs the workload under the four configurations "
                "in the order given (rotated from round to round, reversed "
                "every other round; %.1f s pause after each tool stops): "
                "none; " % a.settle +
                "the daemon (started before its run, %.1f s to settle after "
                "/healthz, stopped after it; no profile requested); the "
                "one-shot (`katascope profile --pid P`, sampling when the run "
                "starts); `perf record -F %d -g -p P`. `cpu`: %d s, loop "
                "units/s of both loops; `server`: `wrk -t1 -c%d -d%ds`, "
                "requests/s. `kernel.bpf_stats_enabled` as the machine had "
                "it (%s). Ratio = rate / the same round's rate with none." % (
                    a.settle, HZ, a.cpu_round_secs, a.conns, a.round_secs,
                    self.stats_before))
            add("")
            add("| workload | round | order | none | daemon | one-shot | "
                "perf | daemon ratio | one-shot ratio | perf ratio | load "
                "(1 min) at start | daemon: stacks lost, map full |")
            add("|---|---|---|---|---|---|---|---|---|---|---|---|")
            for n, rows in self.rounds.items():
                for i, r in enumerate(rows):
                    g = r["rate"]
                    add("| %s | %d | %s | %.0f | %.0f | %.0f | %.0f | %.3f | "
                        "%.3f | %.3f | %.2f | %d, %d |" % (
                            n, i + 1, ", ".join(r["order"]), g["none"],
                            g["daemon"], g["oneshot"], g["perf"],
                            g["daemon"] / g["none"], g["oneshot"] / g["none"],
                            g["perf"] / g["none"], r["load1"][r["order"][0]],
                            r["loss"]["stacks lost"],
                            r["loss"]["samples map full"]))
            add("")
            add("Median ratio (range): " + "; ".join(
                "`%s` daemon %s, one-shot %s, perf %s (%d rounds)" % (
                    n, ratio(n, "daemon"), ratio(n, "oneshot"),
                    ratio(n, "perf"), len(self.rounds[n]))
                for n in self.rounds) + ".")
            add("")
        if self.fails:
            add("Result: **targets missed**: %s." % "; ".join(self.fails))
        else:
            add("Result: all targets met.")
        return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    benchlib.add_common_args(ap, 19471, "bench/profile.sh")
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--secs", type=int, default=30,
                    help="seconds of each window (and of the profiles)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="throughput rounds on the server workload")
    ap.add_argument("--round-secs", type=int, default=5)
    ap.add_argument("--cpu-rounds", type=int, default=5,
                    help="rounds on the cpu workload (default 5)")
    ap.add_argument("--cpu-round-secs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--margin", type=float, default=1.0,
                    help="s of load before a window starts")
    ap.add_argument("--symb-slack", type=float, default=5.0,
                    help="s of load after a profile, for symbolization")
    ap.add_argument("--workloads", default="cpu,server",
                    help="comma-separated: cpu, server")
    ap.add_argument("--breakdown", default="server",
                    help="workloads (comma-separated; empty: none) on which "
                    "to perf-record the daemon itself")
    if ap.parse_args().quick:  # shorter defaults; explicit options win
        ap.set_defaults(secs=1, rounds=1, cpu_rounds=1, round_secs=1,
                        cpu_round_secs=1,
                        workloads="cpu", breakdown="", warmup=1, settle=0.3,
                        margin=0.2, symb_slack=1, foreign_wait=0)
    a = ap.parse_args()
    a.breakdown = [x for x in a.breakdown.split(",") if x]
    a.workloads = [x for x in a.workloads.split(",") if x]
    if not a.workloads or set(a.workloads + a.breakdown) - {"server", "cpu"}:
        log("error: --workloads and --breakdown take cpu and/or server")
        return 1
    if a.secs < 1 or a.secs > 300:
        log("error: --secs must be 1..300 (the agent's limit)")
        return 1
    benchlib.set_tag("pfbench")
    b = Bench(a)
    b.stats_before = benchlib.stats_get()
    return benchlib.main(a, b, SECTION, BEGIN, END)


if __name__ == "__main__":
    sys.exit(main())
