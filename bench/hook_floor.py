#!/usr/bin/env python3
"""bench/hook_floor.py - how much of the agent's cost is being hooked at
all: the floor under any BPF program body.

The workload is bench/l7.sh's: the end-to-end tests' Node app with one
node-postgres connection to a throwaway PostgreSQL 15 cluster, wrk -t1
-c16 on loopback. Each round runs three arms in an order that rotates from
round to round:

  none    nothing attached;
  floor   bench/hook_floor.c: empty programs (they return at once) on the
          hooks the agent attaches by default, each syscall tracepoint,
          sched_switch and the other scheduler, process and TCP hooks,
          Node 20's epoll_pwait enter and exit, the CPU sampler at 99 Hz
          and the 15 PostgreSQL USDT probes of the cluster's postgres
          (the GC uprobes and the checkpoint__done uprobe are left out:
          they fire a few times a second at most);
  agent   the katascope agent with its default options.

--arms picks others: floor-KIND+KIND attaches only the named kinds of
empty programs (syscalls: the socket and epoll syscall tracepoints; sched;
tcp; sampler; usdt), e.g. --arms none,floor,floor-usdt,floor-syscalls,
and agent-probes=A/B runs the agent with --probes A,B (e.g.
agent-probes=+pgstatements).

It reports requests/s, each arm's ratio to "none" in the same round, and
the medians. The floor's ratio bounds what any agent attached to those
hooks can reach, whatever its programs do: the traced-syscall path every
process takes while a syscall tracepoint has a program, the tracepoint and
BPF dispatch, and the uprobe traps. kernel.bpf_stats_enabled is left as
the machine has it.

  python3 bench/hook_floor.py                         # /db/user/1, 5 rounds
  python3 bench/hook_floor.py --path /users/1 --rounds 7 --secs 10
  python3 bench/hook_floor.py --arms none,floor-usdt,floor-syscalls
"""
import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import benchlib as lb
import services

KINDS = ("syscalls", "sched", "tcp", "sampler", "usdt")
POSTGRES = "/usr/lib/postgresql/15/bin/postgres"


def build(workdir):
    """bench/hook_floor.bpf.c and bench/hook_floor.c, built into workdir."""
    arch = {"x86_64": "x86", "aarch64": "arm64"}.get(platform.machine(),
                                                     platform.machine())
    triple = subprocess.run(["gcc", "-dumpmachine"], capture_output=True,
                            text=True).stdout.strip()
    obj = os.path.join(workdir, "hook_floor.bpf.o")
    exe = os.path.join(workdir, "hook_floor")
    src = os.path.join(lb.REPO, "bench")
    for cmd in (["clang", "-g", "-O2", "-target", "bpf",
                 "-D__TARGET_ARCH_" + arch, "-I/usr/include/" + triple,
                 "-c", os.path.join(src, "hook_floor.bpf.c"), "-o", obj],
                [shutil.which("cc") or "gcc", "-O2", "-Wall", "-o", exe,
                 os.path.join(src, "hook_floor.c"), "-lbpf"]):
        rc, _, err = lb.run_bounded(cmd, 120)
        if rc != 0:
            raise lb.BenchError("%s failed: %s" % (cmd[0], err.strip()))
    return exe, obj


class Floor:
    """The empty programs, attached until stop()."""

    def __init__(self, exe, obj, postgres, only):
        cmd = [exe, obj, "--postgres", postgres]
        if only:
            cmd += ["--only", only]
        self.proc = subprocess.Popen(cmd,
                                     stdout=subprocess.PIPE, text=True)
        lb.CHILDREN.append(self.proc)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            self.stop()
            raise lb.BenchError("hook_floor did not attach (status %s)"
                                % self.proc.poll())
        self.links = int(line[1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(30)
        if self.proc in lb.CHILDREN:
            lb.CHILDREN.remove(self.proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default=os.path.join(lb.REPO, "build",
                                                    "katascope"))
    ap.add_argument("--path", default="/db/user/1",
                    help="what wrk asks for (/db/user/1 or /users/1)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--port", type=int, default=19483)
    ap.add_argument("--arms", default="none,floor,agent",
                    help="comma-separated: none, agent, floor, "
                    "floor-KIND+KIND (kinds: %s), agent-probes=A/B (--probes A,B)"
                    % ", ".join(KINDS))
    a = ap.parse_args()
    lb.set_tag("hook_floor")
    ARMS = tuple(a.arms.split(","))
    for arm in ARMS:
        kinds = arm[6:].split("+") if arm.startswith("floor-") else []
        if arm.startswith("agent-probes="):
            continue
        if (arm not in ("none", "agent", "floor") and not kinds) or \
                any(k not in KINDS for k in kinds):
            print("hook_floor: bad arm %r" % arm, file=sys.stderr)
            return 2
    if "none" not in ARMS:
        print("hook_floor: --arms needs none (the base of the ratios)",
              file=sys.stderr)
        return 2
    rc = lb.preflight("hook_floor", (("--rounds", a.rounds),
                                     ("--secs", a.secs),
                                     ("--conns", a.conns)),
                      (a.agent, POSTGRES, shutil.which("wrk") or "wrk",
                       shutil.which("clang") or "clang"))
    if rc:
        return rc
    rps = {arm: [] for arm in ARMS}
    links = {}
    workdir = tempfile.mkdtemp(prefix="hookfloor-")
    pg = app = None
    try:
        exe, obj = build(workdir)
        pg = services.Postgres(env={"OTEL_SERVICE_NAME": "hookfloor-pg"})
        app = services.NodeApp({"OTEL_SERVICE_NAME": "hookfloor-node",
                                "PGPORT": str(pg.port)})
        lb.CHILDREN.append(app.proc)
        url = app.url + a.path
        lb.wrk(url, a.conns, 3)  # warm V8's JIT and the backend
        for r in range(a.rounds):
            k = r % len(ARMS)
            order = ARMS[k:] + ARMS[:k]
            for arm in order:
                held = None
                if arm.startswith("floor"):
                    held = Floor(exe, obj, POSTGRES,
                                 arm[6:].replace("+", ","))
                    links[arm] = held.links
                elif arm.startswith("agent"):
                    args = ()
                    if arm.startswith("agent-probes="):
                        args = ("--probes", arm[13:].replace("/", ","))
                    held = lb.Agent(a.agent, a.port, workdir,
                                    "hookfloor-agent", args)
                if held:
                    time.sleep(1)
                try:
                    w = lb.wrk(url, a.conns, a.secs)
                finally:
                    if held:
                        held.stop()
                rps[arm].append(w["rps"])
                lb.log("round %d, %s: %.0f req/s" % (r + 1, arm, w["rps"]))
    except lb.BenchError as e:
        print("hook_floor: %s" % e, file=sys.stderr)
        return 1
    finally:
        if app:
            app.stop()
        if pg:
            pg.stop()
        lb.close_children()
        shutil.rmtree(workdir, ignore_errors=True)
    print("hook_floor: %s, kernel %s; %s, wrk -t1 -c%d, %d s runs, "
          "%d rounds; links: %s" % (
              lb.repo_commit(), os.uname().release, a.path, a.conns, a.secs,
              a.rounds, ", ".join("%s %d" % kv for kv in links.items())))
    lb.print_arms(ARMS, rps, "none", "req/s", 24)
    return 0


if __name__ == "__main__":
    sys.exit(main())
