#!/usr/bin/env python3
"""bench/l7_bench.py - what katascope costs per HTTP exchange and per SQL
statement, and whether it loses any (issue 3). Run it through bench/l7.sh,
which builds the agent and checks the tools; this file does the measuring.

The workload is the end-to-end tests' Node app (tests/e2e/app/server.js,
OTEL_SERVICE_NAME=l7bench-node) with one node-postgres connection to a
throwaway PostgreSQL cluster (tests/e2e/services.py), driven by wrk on
loopback. Three measurements:

  throughput  requests/s of wrk -t1 -cC with and without the agent, in
              pairs whose order alternates (off/on, on/off, ...), on the
              /db/user/:id route (one SQL statement per request) and on the
              trivial /users/:id route; the agent is started for each "on"
              run and stopped after it; kernel.bpf_stats_enabled is left as
              it was.
  cost        with kernel.bpf_stats_enabled=1 (restored afterwards): an idle
              window, then wrk at saturation on each route; run_cnt and
              run_time_ns of every BPF program the agent holds (found
              through /proc/PID/fdinfo) and the agent's CPU time (utime +
              stime of /proc/PID/stat; the per-thread schedstat sum as a
              finer cross-check) before and after, divided by the requests
              wrk completed and by the requests the agent counted.
  loss        every run with the agent compares the agent's
              http_server_request_duration_seconds_count delta (and, on the
              /db route, db_client_operation_duration_seconds_count) for
              service_name=l7bench-node with wrk's completed requests; two
              extra runs on /users/:id, one at saturation and one paced by a
              wrk script (a 1 ms delay before each request of each
              connection, about 10k requests/s with 16 connections). The
              agent may count up to C more than wrk (the requests in flight
              when wrk stops are still answered), never fewer.

The BPF figures are host-wide: the agent's programs run on every process's
syscalls and scheduler events, including wrk's, PostgreSQL's and whatever
else runs on the machine; the idle window shows that background.

Before each run it waits while a connection-storm benchmark (a process
matching "connstorm") runs, and for a while (--foreign-wait) while BPF
programs named handle_* that are not this agent's (another katascope) are
loaded; it reports those that stayed.

Exit status: 0 ran and met the targets, 3 ran but missed a target, 1 could
not run.
"""
import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import benchlib
from benchlib import (CHILDREN, BenchError, close_children, ks, log,
                      prog_delta, prog_snapshot, stats_get, stats_set, wrk)
import services  # noqa: E402

SERVICE = "l7bench-node"
AGENT_NAME = "l7bench-agent"
PG_NAME = "l7bench-postgres"
ROUTES = {  # path wrk asks for -> the agent's http_route
    "/users/1": "/users/{id}",
    "/db/user/1": "/db/user/{id}",
}
HTTP_COUNT = "http_server_request_duration_seconds_count"
DB_COUNT = "db_client_operation_duration_seconds_count"

# targets (issue 3)
COST_TARGET_NS = 2000
THROUGHPUT_TARGET = 0.98
BEGIN = "<!-- bench/l7.sh results: begin -->"
END = "<!-- bench/l7.sh results: end -->"
SECTION = "## HTTP and SQL exchanges (issue 3)"


def prog_group(name):
    """What a program is for, from its name: the socket syscalls (L7
    exchanges), the scheduler (CPU time, run-queue latency), TCP state, or
    process life."""
    n = name[len("handle_"):] if name.startswith("handle_") else name
    if n.split("_")[0] in ("switch", "wakeup"):
        return "sched"
    if n.split("_")[0] in ("set", "accept", "accept4", "retransmit"):
        return "tcp"
    if n.split("_")[0] in ("exec", "exit", "fork"):
        return "process"
    if n.split("_")[0] in ("read", "write", "readv", "writev", "recvfrom",
                           "sendto", "recvmsg", "sendmsg", "sendfile",
                           "close"):
        return "socket syscalls"
    return "other"


# ---- the bench ---------------------------------------------------------------

class Bench:
    def __init__(self, a):
        self.a = a
        self.work = tempfile.mkdtemp(prefix="l7bench-")
        self.agent = None
        self.pg = None
        self.app = None
        self.stats_saved = None
        self.waited_storm = 0.0
        self.foreign_seen = []   # (run label, count) where foreign progs stayed
        self.loss_rows = []
        self.pairs = {}          # path -> [(order, off rps, on rps)]
        self.cost = {}           # label -> dict
        self.agent_rcs = []
        self.startups = []       # seconds from exec to /healthz 200
        self.pace = os.path.join(self.work, "pace.lua")
        with open(self.pace, "w") as f:
            f.write("-- wait 1 ms before each request of each connection\n"
                    "function delay()\n  return 1\nend\n")

    # -- setup and teardown

    def start_services(self):
        log("starting PostgreSQL and the Node app")
        self.pg = services.Postgres(env={"OTEL_SERVICE_NAME": PG_NAME})
        self.app = services.NodeApp({"OTEL_SERVICE_NAME": SERVICE,
                                     "PGPORT": str(self.pg.port)})
        CHILDREN.append(self.app.proc)
        for path in ROUTES:
            st, _, body = ks.http_get(self.app.url + path)
            if st != 200:
                raise BenchError("GET %s answered %d: %s" % (path, st, body))
        # warm up V8's JIT and the PostgreSQL backend
        for path in ROUTES:
            wrk(self.app.url + path, self.a.conns, self.a.warmup)

    def close(self):
        if self.agent:
            self.agent.stop()
            self.agent = None
        if self.stats_saved is not None:
            try:
                stats_set(self.stats_saved)
            except OSError as e:
                log("could not restore kernel.bpf_stats_enabled: %s" % e)
            self.stats_saved = None
        if self.app:
            if self.app.proc in CHILDREN:
                CHILDREN.remove(self.app.proc)
            self.app.stop()
            self.app = None
        if self.pg:
            self.pg.stop()
            self.pg = None
        close_children()
        shutil.rmtree(self.work, ignore_errors=True)

    def start_agent(self):
        self.agent = benchlib.Agent(self.a.agent, self.a.port, self.work,
                                    AGENT_NAME)
        self.startups.append(self.agent.startup_s)
        time.sleep(self.a.settle)  # let its start-up /proc scan finish
        self.agent.alive()

    def stop_agent(self):
        rc = self.agent.stop()
        self.agent = None
        self.agent_rcs.append(rc)
        if rc != 0:
            raise BenchError("the agent exited with status %d on SIGTERM" % rc)

    # -- quiet machine

    def wait_quiet(self, label):
        """Wait while a connection storm runs (bounded by --max-wait, then
        fail), and for --foreign-wait s while another katascope's programs
        are loaded (then note it and go on)."""
        t0 = time.monotonic()
        said = False
        while True:
            p = subprocess.run(["pgrep", "-f", "connstorm"],
                               capture_output=True, text=True)
            pids = [x for x in p.stdout.split() if int(x) != os.getpid()]
            if not pids:
                break
            if not said:
                log("waiting: connstorm running (pid %s)" % ",".join(pids))
                said = True
            if time.monotonic() - t0 > self.a.max_wait:
                raise BenchError("connstorm still running after %d s" %
                                 self.a.max_wait)
            time.sleep(2)
        self.waited_storm += time.monotonic() - t0
        ours = self.agent.prog_ids if self.agent else set()
        t1 = time.monotonic()
        n = len(benchlib.foreign_progs(ours))
        while n and time.monotonic() - t1 < self.a.foreign_wait:
            time.sleep(2)
            n = len(benchlib.foreign_progs(ours))
        return n

    def note_foreign(self, label, n):
        if n:
            self.foreign_seen.append((label, n))

    # -- counting

    def counts(self, m, path):
        route = ROUTES[path]
        http = ks.value(m, HTTP_COUNT, service_name=SERVICE, http_route=route)
        db = ks.value(m, DB_COUNT, service_name=SERVICE,
                      db_system_name="postgresql")
        return {
            "http": http, "db": db,
            "aborted": ks.value(m, "katascope_http_server_requests_aborted_total",
                                service_name=SERVICE),
            "lost": ks.value(m, "katascope_ringbuf_lost_total"),
            "full": ks.value(m, "katascope_map_full_dropped_total"),
            "l7": ks.value(m, "katascope_events_total", type="l7"),
        }

    def settle_counts(self, m0, path, want):
        """Scrape until the agent has counted at least `want` requests and the
        count stayed put for --stable s (or --fold-timeout passed)."""
        c0 = self.counts(m0, path)
        deadline = time.monotonic() + self.a.fold_timeout
        last, last_t = None, 0.0
        while True:
            c1 = self.counts(self.agent.metrics(), path)
            d = {k: c1[k] - c0[k] for k in c0}
            now = time.monotonic()
            enough = d["http"] >= want and \
                (not path.startswith("/db/") or d["db"] >= want)
            if last is None or d["http"] != last["http"] or \
                    d["db"] != last["db"]:
                last, last_t = d, now
            elif enough and now - last_t >= self.a.stable:
                return d
            if now > deadline:
                return d
            time.sleep(0.25)

    def loss_row(self, label, path, load, conns, w, d, foreign):
        self.loss_rows.append({
            "label": label, "route": ROUTES[path], "load": load,
            "conns": conns, "secs": w["secs"], "wrk": w["requests"],
            "rps": w["rps"], "wrk_err": w["errors"] + w["non2xx"],
            "http": int(d["http"]), "db": int(d["db"]),
            "aborted": int(d["aborted"]), "lost": int(d["lost"]),
            "full": int(d["full"]), "sql": path.startswith("/db/"),
            "foreign": foreign,
        })

    # -- the three measurements

    def throughput(self, path, pairs, secs):
        url = self.app.url + path
        rows = []
        for i in range(pairs):
            order = ("off", "on") if i % 2 == 0 else ("on", "off")
            got = {}
            for mode in order:
                label = "throughput %s pair %d %s" % (ROUTES[path], i + 1,
                                                      mode)
                if mode == "on":
                    self.start_agent()
                n = self.wait_quiet(label)
                self.note_foreign(label, n)
                if mode == "on":
                    m0 = self.agent.metrics()
                w = wrk(url, self.a.conns, secs)
                got[mode] = w["rps"]
                log("%s: %.0f req/s" % (label, w["rps"]))
                if mode == "on":
                    d = self.settle_counts(m0, path, w["requests"])
                    self.loss_row(label, path, "saturation", self.a.conns, w,
                                  d, n)
                    self.stop_agent()
            rows.append(("/".join(order), got["off"], got["on"]))
        self.pairs[path] = rows

    def measured_run(self, label, path, secs, conns, script=None):
        """One wrk run with the agent up: counts, BPF and agent CPU deltas."""
        n = self.wait_quiet(label)
        self.note_foreign(label, n)
        m0 = self.agent.metrics()
        stats_on = stats_get()
        p0 = prog_snapshot(self.agent.prog_ids)
        c0 = self.agent.cpu()
        t0 = time.monotonic()
        if path is None:
            time.sleep(secs)
            w = {"requests": 0, "rps": 0.0, "secs": secs, "errors": 0,
                 "non2xx": 0}
        else:
            w = wrk(self.app.url + path, conns, secs, script)
        time.sleep(0.2)  # the agent drains its ring buffer every 50 ms
        t1 = time.monotonic()
        c1 = self.agent.cpu()
        p1 = prog_snapshot(self.agent.prog_ids)
        stats_off = stats_get()
        n2 = len(benchlib.foreign_progs(self.agent.prog_ids))
        self.note_foreign(label + " (end)", n2)
        d = None
        if path is not None:
            d = self.settle_counts(m0, path, w["requests"])
        progs = prog_delta(p0, p1)
        return {"label": label, "path": path, "wrk": w, "counts": d,
                "window": t1 - t0, "cpu_stat": c1[0] - c0[0],
                "cpu_sched": c1[1] - c0[1], "progs": progs,
                "stats": (stats_on, stats_off), "foreign": max(n, n2)}

    def cost_phase(self):
        self.start_agent()
        self.stats_saved = stats_get()
        stats_set("1")
        log("cost: idle %gs" % self.a.idle)
        self.cost["idle"] = self.measured_run("idle", None, self.a.idle, 0)
        for path in ROUTES:
            log("cost: wrk -t1 -c%d -d%gs %s" % (self.a.conns,
                                                  self.a.cost_secs, path))
            r = self.measured_run("cost " + ROUTES[path], path,
                                  self.a.cost_secs, self.a.conns)
            self.cost[path] = r
            self.loss_row(r["label"], path, "saturation", self.a.conns,
                          r["wrk"], r["counts"], r["foreign"])
        stats_set(self.stats_saved)
        self.stats_saved = None
        for label, r in self.cost.items():
            if r["stats"] != ("1", "1"):
                raise BenchError("kernel.bpf_stats_enabled changed during the "
                                 "%s run (%s -> %s): someone else set it" %
                                 ((label,) + r["stats"]))

    def loss_phase(self):
        path = "/users/1"
        for load, script in (("saturation", None),
                             ("paced, 1 ms delay per request", self.pace)):
            label = "loss %s" % load
            log("%s: wrk -t1 -c%d -d%gs%s %s" % (
                label, self.a.conns, self.a.loss_secs,
                " -s pace.lua" if script else "", path))
            r = self.measured_run(label, path, self.a.loss_secs, self.a.conns,
                                  script)
            self.loss_row(label, path, load, self.a.conns, r["wrk"],
                          r["counts"], r["foreign"])
        self.stop_agent()

    def run(self):
        self.load_start = benchlib.loadavg()
        self.date = datetime.datetime.now(datetime.timezone.utc)
        self.start_services()
        for path in ("/db/user/1", "/users/1"):
            pairs = self.a.pairs if path.startswith("/db/") else \
                self.a.users_pairs
            if pairs:
                log("throughput %s: %d pairs of %gs" % (path, pairs,
                                                        self.a.pair_secs))
                self.throughput(path, pairs, self.a.pair_secs)
        self.cost_phase()
        self.loss_phase()
        self.load_end = benchlib.loadavg()

    # -- the report

    def per_req(self, r, n):
        """BPF ns, agent CPU ns (stat), agent CPU ns (schedstat) per n."""
        bpf = sum(p[2] for p in r["progs"])
        return (bpf / n, r["cpu_stat"] * 1e9 / n, r["cpu_sched"] * 1e9 / n)

    def report(self):
        a, out = self.a, []
        add = out.append
        fails = []
        idle = self.cost["idle"]
        idle_bpf_per_s = sum(p[2] for p in idle["progs"]) / idle["window"]
        idle_cpu_per_s = idle["cpu_stat"] / idle["window"]

        # targets
        u = self.cost["/users/1"]
        un = u["wrk"]["requests"]
        ub, uc, _ = self.per_req(u, un)
        cost_ok = ub + uc <= COST_TARGET_NS
        if not cost_ok:
            fails.append("cost per HTTP exchange %.0f ns > %d ns" %
                         (ub + uc, COST_TARGET_NS))
        tp = {}
        for path, rows in self.pairs.items():
            tp[path] = statistics.median(on / off for _, off, on in rows)
        db_ok = None
        if "/db/user/1" in tp:
            db_ok = tp["/db/user/1"] >= THROUGHPUT_TARGET
            if not db_ok:
                fails.append("/db/user/:id throughput ratio %.3f < %.2f" %
                             (tp["/db/user/1"], THROUGHPUT_TARGET))
        loss_bad = []
        for r in self.loss_rows:
            diff = r["http"] - r["wrk"]
            bad = diff < 0 or diff > r["conns"] or r["lost"] or r["full"]
            if r["sql"]:
                dd = r["db"] - r["wrk"]
                bad = bad or dd < 0 or dd > r["conns"]
            if bad:
                loss_bad.append(r["label"])
        if loss_bad:
            fails.append("counts off or records lost in: " +
                         ", ".join(loss_bad))

        built = benchlib.build_desc(a)
        node_v = subprocess.run(["node", "--version"], capture_output=True,
                                text=True).stdout.strip()
        pg_v = subprocess.run([services.PG_BIN + "/postgres", "--version"],
                              capture_output=True, text=True).stdout.strip()
        wrk_v = (subprocess.run(["wrk", "-v"], capture_output=True,
                                text=True).stdout.split("\n")[0].split(" ")
                 + ["?", "?"])[1]

        add("### Results, %s" % self.date.strftime("%Y-%m-%d %H:%M UTC"))
        add("")
        out += benchlib.header_lines(a)
        add("- Agent: `%s` %s; default options except "
            "`--listen 127.0.0.1:%d`; %d starts, %.2f-%.2f s from exec to "
            "/healthz 200" % (a.agent, built, a.port, len(self.startups),
                              min(self.startups), max(self.startups)))
        add("- Workload: tests/e2e/app/server.js on Node %s "
            "(`OTEL_SERVICE_NAME=%s`), one node-postgres connection to a "
            "throwaway %s cluster; wrk %s, `-t1 -c%d`, on 127.0.0.1" % (
                node_v, SERVICE, pg_v.replace("postgres (PostgreSQL) ",
                                              "PostgreSQL "),
                wrk_v, a.conns))
        add("- Load average before / after: %s / %s" % (
            " ".join(self.load_start), " ".join(self.load_end)))
        if self.waited_storm >= 1:
            add("- Waited %.0f s in all for a connection-storm benchmark to "
                "finish" % self.waited_storm)
        if self.foreign_seen:
            add("- **Caveat:** BPF programs named handle_* that are not this "
                "agent's (another katascope) were loaded during: " +
                "; ".join("%s (%d)" % x for x in self.foreign_seen) +
                ". Their cost is not in the BPF figures below, but the traced "
                "processes paid for it, and a run \"without the agent\" was "
                "then not free of one.")
        add("")

        add("#### Targets")
        add("")
        add("| target | result | measured |")
        add("|---|---|---|")
        add("| BPF + agent CPU per HTTP exchange <= 2 µs (host-wide) | %s | "
            "%.0f ns (BPF %.0f + agent %.0f), /users/:id at %.0f req/s |" % (
                "met" if cost_ok else "**missed**", ub + uc, ub, uc,
                u["wrk"]["rps"]))
        if db_ok is not None:
            add("| /db/user/:id throughput with the agent >= 98%% of without "
                "(median of %d pairs) | %s | %.3f |" % (
                    len(self.pairs["/db/user/1"]),
                    "met" if db_ok else "**missed**", tp["/db/user/1"]))
        add("| no request lost: agent count - wrk count in [0, %d], no "
            "ring-buffer loss, no map-full drop (%d runs) | %s | %s |" % (
                a.conns, len(self.loss_rows),
                "**missed**" if loss_bad else "met",
                "all runs within bounds" if not loss_bad else
                "off in " + ", ".join(loss_bad)))
        add("")

        add("#### Cost per exchange")
        add("")
        add("`kernel.bpf_stats_enabled=1` (restored afterwards; it adds two "
            "clock reads to every BPF run, so the BPF figures are slightly "
            "pessimistic). BPF = sum of run_time_ns over all %d BPF programs "
            "the agent holds, host-wide; agent CPU = utime+stime of "
            "/proc/PID/stat (10 ms ticks), schedstat = sum of "
            "/proc/PID/task/*/schedstat on-CPU ns. Per request = divided by "
            "wrk's completed requests; the agent's own count gives the "
            "column after it." % len(u["progs"]))
        add("")
        add("| run | seconds | wrk requests | req/s | agent count | BPF ns/req "
            "| agent CPU ns/req | (schedstat) | **total ns/req** | total per "
            "agent-counted req | BPF runs/req | l7 records/req |")
        add("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for path in ROUTES:
            r = self.cost[path]
            n = r["wrk"]["requests"]
            b, c, s = self.per_req(r, n)
            na = r["counts"]["http"]
            b2, c2, _ = self.per_req(r, na) if na else (0, 0, 0)
            runs = sum(p[1] for p in r["progs"])
            add("| %s | %.1f | %d | %.0f | %d | %.0f | %.0f | %.0f | **%.0f** "
                "| %.0f | %.1f | %.2f |" % (
                    ROUTES[path], r["window"], n, r["wrk"]["rps"], na, b, c, s,
                    b + c, b2 + c2, runs / n, r["counts"]["l7"] / n))
        add("")
        add("Idle window (%.1f s, agent up, no load): BPF %.0f µs per second "
            "(%d runs), agent CPU %.1f ms per second (stat) / %.1f ms per "
            "second (schedstat). At the /users/:id rate that background is "
            "%.0f ns BPF + %.0f ns agent per request, included in the figures "
            "above." % (
                idle["window"], idle_bpf_per_s / 1e3,
                sum(p[1] for p in idle["progs"]), idle_cpu_per_s * 1e3,
                idle["cpu_sched"] / idle["window"] * 1e3,
                idle_bpf_per_s / u["wrk"]["rps"],
                idle_cpu_per_s * 1e9 / u["wrk"]["rps"]))
        add("")
        d = self.cost["/db/user/1"]
        dn = d["wrk"]["requests"]
        db_, dc, _ = self.per_req(d, dn)
        add("Per SQL statement: each /db/user/:id request is one HTTP "
            "exchange plus one extended-protocol statement "
            "(Parse/Bind/Describe/Execute/Sync) on the Node app's "
            "PostgreSQL connection, so its figure, **%.0f ns** (BPF %.0f + "
            "agent %.0f; %d statements counted by the agent for %d requests "
            "wrk completed), is the cost of one statement with its HTTP "
            "exchange, PostgreSQL backend's syscalls included. Minus the "
            "/users/:id figure, the statement's own share is %.0f ns "
            "(a difference of two runs at different rates, not a separate "
            "measurement)." % (db_ + dc, db_, dc, d["counts"]["db"], dn,
                               db_ + dc - ub - uc))
        add("")
        for path in ROUTES:
            r = self.cost[path]
            n = r["wrk"]["requests"]
            add("Per program, %s (%.1f s, %d requests):" % (
                ROUTES[path], r["window"], n))
            add("")
            add("| program | group | runs | runs/req | ns/run | ns/req |")
            add("|---|---|---|---|---|---|")
            idle_names = []
            for name, cnt, ns in r["progs"]:
                if not cnt:
                    idle_names.append(name)
                    continue
                add("| %s | %s | %d | %.2f | %.0f | %.1f |" % (
                    name, prog_group(name), cnt, cnt / n, ns / cnt, ns / n))
            add("| **all** | | %d | %.2f | | %.1f |" % (
                sum(p[1] for p in r["progs"]),
                sum(p[1] for p in r["progs"]) / n,
                sum(p[2] for p in r["progs"]) / n))
            add("")
            groups = {}
            for name, cnt, ns in r["progs"]:
                groups[prog_group(name)] = groups.get(prog_group(name), 0) + ns
            add("By group, ns per request: " + ", ".join(
                "%s %.0f" % (g, ns / n) for g, ns in
                sorted(groups.items(), key=lambda x: -x[1])) + ".")
            if idle_names:
                add("Did not run: %s." % ", ".join(sorted(idle_names)))
            add("")

        if self.pairs:
            add("#### Throughput with and without the agent")
            add("")
            add("wrk `-t1 -c%d -d%gs` per run; the agent started before each "
                "\"on\" run (%.1f s to settle after /healthz) and stopped "
                "after it; `kernel.bpf_stats_enabled` as the machine had it "
                "(%s). Ratio = with / without." % (
                    a.conns, a.pair_secs, a.settle, self.stats_before))
            add("")
            add("| route | pair | order | without agent, req/s | with agent, "
                "req/s | ratio |")
            add("|---|---|---|---|---|---|")
            for path, rows in self.pairs.items():
                for i, (order, off, on) in enumerate(rows):
                    add("| %s | %d | %s | %.0f | %.0f | %.3f |" % (
                        ROUTES[path], i + 1, order, off, on, on / off))
            add("")
            add("Median ratio: " + "; ".join(
                "%s %.3f (%d pairs)" % (ROUTES[p], tp[p], len(self.pairs[p]))
                for p in self.pairs) + ".")
            add("")

        add("#### Counted vs sent")
        add("")
        add("Every run with the agent: the delta of "
            "`http_server_request_duration_seconds_count{service_name=\"%s\","
            "http_route=...}` (and of `db_client_operation_duration_seconds_"
            "count` for /db/user/:id) against wrk's completed requests. wrk "
            "does not count the up to %d requests in flight when it stops, "
            "which the server still answers: agent - wrk must be in [0, %d]. "
            "The paced run waits 1 ms (wrk script `delay()`) before each "
            "request of each connection." % (SERVICE, a.conns, a.conns))
        add("")
        add("| run | load | seconds | wrk requests | req/s | wrk errors | "
            "agent HTTP | agent - wrk | agent SQL - wrk | aborted | ringbuf "
            "lost | map full |")
        add("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in self.loss_rows:
            add("| %s | %s | %.1f | %d | %.0f | %d | %d | %+d | %s | %d | %d "
                "| %d |" % (
                    r["label"], r["load"], r["secs"], r["wrk"], r["rps"],
                    r["wrk_err"], r["http"], r["http"] - r["wrk"],
                    "%+d" % (r["db"] - r["wrk"]) if r["sql"] else "-",
                    r["aborted"], r["lost"], r["full"]))
        add("")
        if fails:
            add("Result: **targets missed**: %s." % "; ".join(fails))
        else:
            add("Result: all targets met.")
        self.fails = fails
        return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    benchlib.add_common_args(ap, 19465, "bench/l7.sh", max_wait=1200)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--cost-secs", type=int, default=20)
    ap.add_argument("--pair-secs", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--users-pairs", type=int, default=None)
    ap.add_argument("--loss-secs", type=int, default=10)
    ap.add_argument("--idle", type=float, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--fold-timeout", type=float, default=8)
    ap.add_argument("--stable", type=float, default=1.0,
                    help="s a count must stay put to be final")
    if ap.parse_args().quick:  # shorter defaults; explicit options win
        ap.set_defaults(cost_secs=1, pair_secs=1, pairs=1, loss_secs=1,
                        idle=0.5, warmup=1, settle=0.3, fold_timeout=5,
                        stable=0.5, foreign_wait=0)
    a = ap.parse_args()
    if a.users_pairs is None:
        a.users_pairs = a.pairs
    benchlib.set_tag("l7bench")
    b = Bench(a)
    b.stats_before = stats_get()
    return benchlib.main(a, b, SECTION, BEGIN, END)


if __name__ == "__main__":
    sys.exit(main())
