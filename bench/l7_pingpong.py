#!/usr/bin/env python3
"""bench/l7_pingpong.py - the BPF and agent cost of one HTTP exchange,
without a real server's noise.

bench/pingpong.c plays both ends of a keep-alive connection on loopback in
one thread (write, read, writev, read: the syscalls of wrk and Node), so
nothing else runs and every exchange takes the same path. With
kernel.bpf_stats_enabled=1 (restored afterwards) it reports, per agent
binary and per exchange: the run time of every BPF program of the agent
(bpftool), the agent's CPU time (/proc schedstat) and the wall time, plus
the server and client exchanges the agent counted (must equal the
exchanges made). Binaries given with several --agent alternate in each
round (A B, then B A, ...); a round without any agent measures the wall
time alone. Medians over the rounds, every round shown.

This is the instrument for A/B comparisons of BPF and agent changes (the
spread between rounds is a few percent; wrk against Node varies by tens).
It is optimistic: caches stay warm, and there is no scheduler or event
loop work. bench/l7.sh measures the real thing.

  python3 bench/l7_pingpong.py                       # build/katascope
  python3 bench/l7_pingpong.py --agent A --agent B --rounds 5
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import benchlib as lb

SERVICE = "pingpong"  # the service name the agent gives the binary


def build(workdir):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise lb.BenchError("no C compiler (cc) to build bench/pingpong.c")
    out = os.path.join(workdir, SERVICE)
    src = os.path.join(lb.REPO, "bench", "pingpong.c")
    rc, _, err = lb.run_bounded([cc, "-O2", "-o", out, src], 120)
    if rc != 0:
        raise lb.BenchError("building pingpong failed: " + err.strip())
    return out


def pingpong(binary, n):
    rc, out, err = lb.run_bounded([binary, str(n)], 600)
    if rc != 0:
        raise lb.BenchError("pingpong failed: " + err.strip())
    return float(out.split()[0])


def counted(metrics, family):
    return sum(v for (name, labels), v in metrics.items()
               if name == family + "_count" and
               ("service_name", SERVICE) in labels)


def one_run(agent_path, binary, n, workdir, port):
    if agent_path is None:
        return {"wall": pingpong(binary, n)}
    ag = lb.Agent(agent_path, port, workdir, "l7pingpong-agent")
    try:
        time.sleep(0.5)
        p0 = lb.prog_snapshot(ag.prog_ids)
        c0 = ag.cpu()
        wall = pingpong(binary, n)
        time.sleep(0.3)  # the agent drains the ring at least every 50 ms
        p1 = lb.prog_snapshot(ag.prog_ids)
        c1 = ag.cpu()
        m = ag.metrics()
        deadline = time.monotonic() + 3  # > the 1 s idle end + sweep
        while time.monotonic() < deadline and (
                counted(m, "http_server_request_duration_seconds") < n or
                counted(m, "http_client_request_duration_seconds") < n):
            time.sleep(0.1)
            m = ag.metrics()
    finally:
        ag.stop()
    r = {"wall": wall, "agent": (c1[1] - c0[1]) * 1e9 / n,
         "server": counted(m, "http_server_request_duration_seconds"),
         "client": counted(m, "http_client_request_duration_seconds"),
         "progs": {}}
    for name, runs, ns in lb.prog_delta(p0, p1):
        if runs:
            r["progs"][name] = (runs / n, ns / n)
    r["bpf"] = sum(ns for _, ns in r["progs"].values())
    return r


def med(xs):
    return statistics.median(xs) if xs else 0.0


def report(label, runs, n):
    def line(what, vals, fmt="%.0f"):
        print("  %-28s %8s   (%s)" % (what, fmt % med(vals),
                                     ", ".join(fmt % v for v in vals)))
    print("%s, per exchange (%d exchanges x %d rounds):" %
          (label, n, len(runs)))
    line("wall ns", [r["wall"] for r in runs])
    if "bpf" not in runs[0]:
        return True
    line("BPF + agent ns", [r["bpf"] + r["agent"] for r in runs])
    line("BPF ns (all programs)", [r["bpf"] for r in runs])
    line("agent CPU ns", [r["agent"] for r in runs])
    names = sorted({p for r in runs for p in r["progs"]},
                   key=lambda p: -med([r["progs"].get(p, (0, 0))[1]
                                       for r in runs]))
    for p in names:
        ns = [r["progs"].get(p, (0, 0))[1] for r in runs]
        if med(ns) < 0.5:
            continue
        rr = med([r["progs"].get(p, (0, 0))[0] for r in runs])
        line("%s (%.2f runs)" % (p, rr), ns)
    ok = all(r["server"] == n and r["client"] == n for r in runs)
    print("  counted: server %s, client %s (%s)" % (
        ", ".join("%d" % r["server"] for r in runs),
        ", ".join("%d" % r["client"] for r in runs),
        "every exchange" if ok else "NOT every exchange"))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", action="append", default=[],
                    help="agent binary (repeatable; default build/katascope)")
    ap.add_argument("--exchanges", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the rounds without an agent")
    ap.add_argument("--port", type=int, default=19481)
    a = ap.parse_args()
    agents = a.agent or [os.path.join(lb.REPO, "build", "katascope")]
    rc = lb.preflight("l7_pingpong", (("--exchanges", a.exchanges),
                                      ("--rounds", a.rounds)), agents)
    if rc:
        return rc
    arms = ([] if a.no_baseline else [None]) + agents
    workdir = tempfile.mkdtemp(prefix="l7pingpong-")
    old = lb.stats_get()
    results = {i: [] for i in range(len(arms))}
    try:
        binary = build(workdir)
        lb.stats_set("1")
        for r in range(a.rounds):
            order = list(range(len(arms)))
            if r % 2:
                order.reverse()
            for i in order:
                results[i].append(one_run(arms[i], binary, a.exchanges,
                                          workdir, a.port))
    except lb.BenchError as e:
        print("l7_pingpong: %s" % e, file=sys.stderr)
        return 1
    finally:
        lb.stats_set(old)
        lb.close_children()
    print("l7_pingpong: %s, kernel %s" % (lb.repo_commit(),
                                          os.uname().release))
    ok = True
    for i, arm in enumerate(arms):
        ok = report(arm or "no agent", results[i], a.exchanges) and ok
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
