"""bench/benchlib.py - what the Python benchmarks share.

bench/l7_bench.py and bench/profile_bench.py both run the real agent as a
child, read its CPU and memory from /proc, read the run time of its BPF
programs through bpftool, drive loads with wrk, describe the machine and
the build in their report and write it between markers in
docs/benchmarks.md. That is all here, once; each bench keeps only what it
measures and how it reports it.

Everything a bench starts goes into CHILDREN, and close_children() kills
what is still running on the way out (SIGTERM from `timeout` included:
main() turns it into SystemExit).
"""
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
import ks  # noqa: E402

STATS = "/proc/sys/kernel/bpf_stats_enabled"
BPFTOOL = os.environ.get("BPFTOOL") or shutil.which("bpftool") or \
    "/usr/sbin/bpftool"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TAG = ["bench"]
T_START = time.monotonic()


class BenchError(Exception):
    """The bench could not run (exit 1)."""


def set_tag(tag):
    TAG[0] = tag


def log(msg):
    print("%s: [%5.1fs] %s" % (TAG[0], time.monotonic() - T_START, msg),
          file=sys.stderr, flush=True)


def loadavg():
    """The 1, 5 and 15 minute load averages, as strings."""
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


# ---- processes we start ----------------------------------------------------

CHILDREN = []  # Popen objects to kill on the way out


def kill_child(p, sig=signal.SIGKILL, wait=10):
    """Send sig (then SIGKILL after wait s) unless it has exited; reap it."""
    if p.poll() is None:
        try:
            p.send_signal(sig)
            p.wait(wait)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in CHILDREN:
        CHILDREN.remove(p)


def close_children():
    for p in list(CHILDREN):
        kill_child(p)


def run_bounded(cmd, timeout, **kw):
    """subprocess.run with a time bound; the child is killed on any exit.
    Returns (status, stdout, stderr)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, **kw)
    CHILDREN.append(p)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError("%s did not finish within %d s" % (cmd[0], timeout))
    finally:
        kill_child(p)
    return p.returncode, out, err


def wait_rusage(p, timeout):
    """Wait for a child with wait4: (status, user+sys CPU s, max RSS KiB).
    The CPU time includes the child's own waited-for children."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            if p in CHILDREN:
                CHILDREN.remove(p)
            return p.returncode, ru.ru_utime + ru.ru_stime, ru.ru_maxrss
        if time.monotonic() > deadline:
            p.kill()
            raise BenchError("%s did not finish within %d s" %
                             (p.args[0], timeout))
        time.sleep(0.02)


def proc_cpu(pid):
    """(utime + stime s from /proc/PID/stat, schedstat on-CPU sum in s).
    Only the former keeps the time of threads that have exited."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    ns = 0
    tdir = "/proc/%d/task" % pid
    for t in os.listdir(tdir):
        try:
            with open(os.path.join(tdir, t, "schedstat")) as f:
                ns += int(f.read().split()[0])
        except OSError:
            pass
    return ticks / CLK_TCK, ns / 1e9


def proc_mem(pid):
    """(VmRSS, VmHWM) in MiB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024
    return out.get("VmRSS", 0.0), out.get("VmHWM", 0.0)


def http_get_bytes(url, timeout):
    """(status, body bytes) of a GET; HTTP errors are a status, not an
    exception (ks.http_get decodes the body, which a pprof is not)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Agent:
    """The agent under test, in the foreground, as our child, on
    127.0.0.1:port with OTEL_SERVICE_NAME=name."""

    def __init__(self, path, port, workdir, name, args=()):
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.logpath = os.path.join(workdir, "agent-%d.log" % time.time_ns())
        self.log = open(self.logpath, "w+")
        env = dict(os.environ, OTEL_SERVICE_NAME=name)
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [path, "--listen", "127.0.0.1:%d" % port] + list(args),
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        CHILDREN.append(self.proc)
        self.pid = self.proc.pid
        deadline = t0 + 30
        while True:
            self.alive()
            try:
                st, _ = http_get_bytes(self.url + "/healthz", 1)
                if st == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError("the agent did not become healthy in 30 s: "
                                 + self.tail())
            time.sleep(0.05)
        self.startup_s = time.monotonic() - t0
        self.prog_ids = self._fd_ids("prog_id")
        if not self.prog_ids:
            raise BenchError("no BPF program among the agent's descriptors")

    def tail(self):
        self.log.flush()
        with open(self.logpath) as f:
            return "".join(f.readlines()[-20:])

    def alive(self):
        if self.proc.poll() is not None:
            raise BenchError("the agent exited (status %d): %s" %
                             (self.proc.returncode, self.tail()))

    def _fd_ids(self, key):
        ids = set()
        d = "/proc/%d/fdinfo" % self.pid
        for fd in os.listdir(d):
            try:
                with open(os.path.join(d, fd)) as f:
                    for line in f:
                        k, _, v = line.partition(":")
                        if k == key:
                            ids.add(int(v))
            except OSError:
                pass
        return ids

    def cpu(self):
        """See proc_cpu."""
        self.alive()
        return proc_cpu(self.pid)

    def metrics(self):
        """The parsed /metrics (ks.parse_prom)."""
        self.alive()
        st, body = http_get_bytes(self.url + "/metrics", 5)
        if st != 200:
            raise BenchError("GET /metrics answered %d" % st)
        return ks.parse_prom(body.decode())

    def stop(self):
        """SIGTERM, then SIGKILL after 10 s; returns the exit status."""
        kill_child(self.proc, signal.SIGTERM)
        self.log.close()
        return self.proc.returncode


def preflight(tag, counts=(), executables=()):
    """The checks a small bench makes before it starts: root, every
    (option name, value) in counts > 0, every path in executables
    executable. Prints what fails; returns the exit status (0: go on, 1:
    cannot run, 2: bad option)."""
    if os.geteuid() != 0:
        print("%s: needs root (BPF, bpf stats)" % tag, file=sys.stderr)
        return 1
    for name, v in counts:
        if v <= 0:
            print("%s: %s must be > 0" % (tag, name), file=sys.stderr)
            return 2
    for p in executables:
        if not os.access(p, os.X_OK):
            print("%s: %s: not an executable" % (tag, p), file=sys.stderr)
            return 1
    return 0


def print_arms(names, values, base, unit, width):
    """One line per arm of a bench in rounds: its values per round and,
    except for the base arm, each round's ratio to the base's and their
    median."""
    for name in names:
        line = "  %-*s %s %s" % (width, name, unit,
                                 ", ".join("%.0f" % x for x in values[name]))
        if name != base:
            ratios = [x / b for x, b in zip(values[name], values[base])]
            line += "; ratio %s, median %.3f" % (
                ", ".join("%.3f" % x for x in ratios),
                statistics.median(ratios))
        print(line)


# ---- BPF programs ------------------------------------------------------------

def bpf_progs():
    rc, out, err = run_bounded([BPFTOOL, "prog", "show", "-j"], 30)
    if rc != 0:
        raise BenchError("bpftool prog show failed: " + err.strip())
    return json.loads(out)


def prog_snapshot(ids):
    """{id: (name, run_cnt, run_time_ns)} of the given programs."""
    return {p["id"]: (p.get("name", "?"), p.get("run_cnt", 0),
                      p.get("run_time_ns", 0))
            for p in bpf_progs() if p["id"] in ids}


def prog_delta(p0, p1):
    """[(name, runs, ns)] between two snapshots, one per program, most
    time first."""
    out = []
    for pid, (name, cnt, ns) in p1.items():
        _, cnt0, ns0 = p0.get(pid, (name, 0, 0))
        out.append((name, cnt - cnt0, ns - ns0))
    out.sort(key=lambda x: -x[2])
    return out


def foreign_progs(ours):
    """Names of the loaded BPF programs named handle_* that are not ours
    (another katascope's)."""
    return sorted(p.get("name", "?") for p in bpf_progs()
                  if p.get("name", "").startswith("handle_")
                  and p["id"] not in ours)


def stats_get():
    with open(STATS) as f:
        return f.read().strip()


def stats_set(v):
    with open(STATS, "w") as f:
        f.write(v)


# ---- wrk -----------------------------------------------------------------------

def wrk_cmd(url, conns, secs, script=None):
    cmd = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % secs]  # whole seconds
    if script:
        cmd += ["-s", script]
    return cmd + [url]


def wrk_parse(out, secs):
    """{requests, rps, secs (requests / rps), errors (socket errors),
    non2xx, out} from wrk's report."""
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m or not rps:
        raise BenchError("cannot read wrk's output: " + out)
    r = {"requests": int(m.group(1)), "rps": float(rps.group(1)),
         "non2xx": 0, "errors": 0, "out": out}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", out)
    if m:
        r["errors"] = sum(int(x) for x in m.groups())
    r["secs"] = r["requests"] / r["rps"] if r["rps"] else secs
    return r


def wrk(url, conns, secs, script=None):
    """Run wrk -t1 to the end; its parsed report."""
    rc, out, err = run_bounded(wrk_cmd(url, conns, secs, script), secs + 60)
    if rc != 0:
        raise BenchError("wrk failed (%d): %s %s" % (rc, out, err))
    return wrk_parse(out, secs)


# ---- the report ------------------------------------------------------------------

def tool_version(cmd):
    """First line a tool prints for its version ('?' if it does not run)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (p.stdout or p.stderr).split("\n")[0].strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def repo_commit():
    """The repository's short commit, noting uncommitted changes to the
    agent's sources."""
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short",
                             "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain",
                            "--", "agent", "bpf", "CMakeLists.txt"],
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        commit += " with uncommitted changes in agent/, bpf/ or " \
            "CMakeLists.txt"
    return commit


def build_desc(a):
    """How the agent under test was built: --agent-desc, or the commit it
    was built from (noting uncommitted changes to its sources)."""
    commit = repo_commit()
    if a.agent_desc:
        return a.agent_desc
    if a.built:
        return "built from %s" % commit
    return "as given (the repository is at %s)" % commit


def header_lines(a):
    """The command line and the machine, first lines of every report."""
    cpu_model = "unknown model"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 1048576
    fence = "``" if "`" in a.cmdline else "`"
    pad = " " if fence == "``" else ""
    return [
        "Command (from the repository root, as root): %s%s%s%s%s" % (
            fence, pad, a.cmdline, pad, fence),
        "",
        "- Kernel: %s (%s); machine: %d CPUs (%s), %.1f GiB RAM" % (
            platform.release(), platform.machine(), os.cpu_count(),
            cpu_model, mem),
    ]


def write_doc(doc, report, section, begin, end):
    """Replace the text between the markers begin and end; if they are
    missing, add the section (heading and markers) before '# Latest
    results', or at the end. Nothing else in the file is touched."""
    text = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n"
    if begin not in text or end not in text:
        block = "%s\n\n%s\n%s\n\n" % (section, begin, end)
        at = text.find("\n# Latest results")
        if at < 0:
            text = text.rstrip("\n") + "\n\n" + block
        else:
            text = text[:at + 1] + block + text[at + 1:]
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    new = head + begin + "\n" + report + end + tail
    tmp = doc + ".%d.tmp" % os.getpid()
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, doc)


def add_common_args(ap, port, cmdline, max_wait=1800):
    """The options every Python bench takes (bench/lib.sh passes them)."""
    ap.add_argument("--agent", required=True)
    ap.add_argument("--port", type=int, default=port)
    ap.add_argument("--max-wait", type=float, default=max_wait)
    ap.add_argument("--foreign-wait", type=float, default=60)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--doc", default=os.path.join(REPO, "docs",
                                                  "benchmarks.md"))
    ap.add_argument("--report", help="also write the report to this file")
    ap.add_argument("--cmdline", default=cmdline)
    ap.add_argument("--built", action="store_true",
                    help="the agent was built from this repository just now")
    ap.add_argument("--agent-desc",
                    help="how the given agent was built, for the report")


def main(a, bench, section, begin, end):
    """Run bench (run(), report() -> markdown, fails, close()), print the
    report, write it to docs/benchmarks.md with --write. Exit status: 0
    targets met, 3 a target missed, 1 could not run."""
    if a.port == 9464:
        log("error: --port 9464 is the tests' port; pick another")
        return 1

    def on_signal(sig, _frame):
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t0 = time.monotonic()
    try:
        bench.run()
        report = bench.report()
    except BenchError as e:
        log("error: %s" % e)
        return 1
    finally:
        bench.close()
    print(report, end="")
    log("done in %.0f s" % (time.monotonic() - t0))
    if a.report:
        with open(a.report, "w") as f:
            f.write(report)
    if a.write:
        write_doc(a.doc, report, section, begin, end)
        log("results written to %s" % a.doc)
    if bench.fails:
        log("targets missed: " + "; ".join(bench.fails))
        return 3
    return 0
