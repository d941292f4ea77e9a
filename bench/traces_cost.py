"""bench/traces_cost.py - what building spans costs the agent.

Runs the end-to-end tests' Node app against a throwaway PostgreSQL, and
drives GET /db/user/:id (one server span and one SQL span per request) with
wrk -t1 -c8 for --secs seconds, alternating agents started without and with
--traces (--pairs pairs; --pid the app, so only its exchanges are parsed).
For each run: requests wrk completed, the agent's CPU time (utime+stime from
/proc/PID/stat) per request, and its RSS at the end. Prints a markdown
table and the with/without ratios (medians). Needs root, wrk, node,
PostgreSQL 15; run it under the machine's e2e lock.

    flock /tmp/ks-e2e.lock python3 bench/traces_cost.py [--pairs 3 --secs 10]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import ks  # noqa: E402
import services  # noqa: E402


def cpu_s(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one(app, traces, secs):
    args = ["--pid", str(app.proc.pid)] + (["--traces"] if traces else [])
    with ks.Agent(*args) as agent:
        pid = agent.proc.pid
        c0 = cpu_s(pid)
        out = subprocess.run(["wrk", "-t1", "-c8", "-d%ds" % secs,
                              app.url + "/db/user/7"], capture_output=True,
                             text=True, check=True).stdout
        n = int(re.search(r"(\d+) requests in", out).group(1))
        ks.wait_for(lambda: False, timeout=1.5)  # the agent catches up
        c1 = cpu_s(pid)
        rss = rss_mb(pid)
    return n, (c1 - c0) / n * 1e6, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--secs", type=int, default=10)
    a = ap.parse_args()
    ks.require_root()
    rows = {False: [], True: []}
    with services.Postgres() as pg, \
            services.NodeApp({"PGPORT": str(pg.port),
                              "OTEL_SERVICE_NAME": "ks-bench-traces"}) as app:
        for _ in range(a.pairs):
            for traces in (False, True):
                rows[traces].append(one(app, traces, a.secs))
    print("| run | --traces | requests | agent CPU us/request | agent RSS MiB |")
    print("|---|---|---|---|---|")
    for i in range(a.pairs):
        for traces in (False, True):
            n, us, rss = rows[traces][i]
            print("| %d | %s | %d | %.2f | %.1f |" % (
                i + 1, "yes" if traces else "no", n, us, rss))
    med = {t: statistics.median(r[1] for r in rows[t]) for t in rows}
    rss = {t: statistics.median(r[2] for r in rows[t]) for t in rows}
    print("\nmedian agent CPU per request: %.2f us without, %.2f us with "
          "--traces (x%.2f); RSS %.1f -> %.1f MiB" % (
              med[False], med[True], med[True] / med[False], rss[False],
              rss[True]))


if __name__ == "__main__":
    main()
