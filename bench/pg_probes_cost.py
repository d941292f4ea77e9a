#!/usr/bin/env python3
"""bench/pg_probes_cost.py - what the agent costs a PostgreSQL server,
with and without its per-statement USDT probes.

pgbench (select-only, prepared statements: one extended-protocol
statement per transaction, 4 clients) against a throwaway PostgreSQL 15
cluster, in rounds of three alternating runs: no agent, the agent with its
default probes (the postgres group's lock, deadlock and checkpoint probes,
which a select-only load does not cross), and the agent with
`--probes +pgstatements` (the per-statement probes too). Reports
transactions per second, the ratio to the run without the agent of the
same round, and the medians. The difference between the two agent arms
is the per-statement USDT probes' share: each statement traps into the
kernel at each probe it crosses (parse, bind, execute, commit, buffer
reads...), whatever the BPF program does.

  python3 bench/pg_probes_cost.py                 # 5 rounds of 8 s runs
  python3 bench/pg_probes_cost.py --rounds 3 --secs 5 --agent PATH
"""
import argparse
import os
import re
import sys
import tempfile
import time

import benchlib as lb
import services

PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"


def pgbench(env, *args, timeout=300):
    rc, out, err = lb.run_bounded([PGBENCH] + list(args) + ["postgres"],
                                  timeout, env=env)
    if rc != 0:
        raise lb.BenchError("pgbench failed: " + err.strip()[-300:])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default=os.path.join(lb.REPO, "build",
                                                    "katascope"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=int, default=8)
    ap.add_argument("--port", type=int, default=19482)
    a = ap.parse_args()
    lb.set_tag("pg_probes_cost")
    rc = lb.preflight("pg_probes_cost", (("--rounds", a.rounds),
                                         ("--secs", a.secs)),
                      (a.agent, PGBENCH))
    if rc:
        return rc
    arms = [("no agent", None), ("agent, default probes", ()),
            ("agent, --probes +pgstatements", ("--probes", "+pgstatements"))]
    tps = {name: [] for name, _ in arms}
    workdir = tempfile.mkdtemp(prefix="pgcost-")
    pg = None
    try:
        pg = services.Postgres(env={"OTEL_SERVICE_NAME": "pgcost-pg"})
        env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(pg.port),
                   PGUSER="postgres")
        pgbench(env, "-i", "-q", "-s", "2")
        run = ["-S", "-M", "prepared", "-c", "4", "-T"]
        pgbench(env, *(run + ["3"]))  # warm the cache and the plans
        for r in range(a.rounds):
            order = arms if r % 2 == 0 else arms[::-1]
            for name, args in order:
                ag = None
                if args is not None:
                    ag = lb.Agent(a.agent, a.port, workdir, "pgcost-agent",
                                  args)
                    time.sleep(1)
                try:
                    out = pgbench(env, *(run + [str(a.secs)]))
                finally:
                    if ag:
                        ag.stop()
                m = re.search(r"tps = ([0-9.]+)", out)
                if not m:
                    raise lb.BenchError("no tps in pgbench's output")
                tps[name].append(float(m.group(1)))
                lb.log("round %d, %s: %s tps" % (r + 1, name, m.group(1)))
    except lb.BenchError as e:
        print("pg_probes_cost: %s" % e, file=sys.stderr)
        return 1
    finally:
        if pg:
            pg.stop()
        lb.close_children()
    print("pg_probes_cost: %s, kernel %s; pgbench -S -M prepared -c 4, "
          "%d s runs, %d rounds" % (lb.repo_commit(), os.uname().release,
                                    a.secs, a.rounds))
    lb.print_arms([name for name, _ in arms], tps, "no agent", "tps", 50)
    return 0


if __name__ == "__main__":
    sys.exit(main())
