"""Node.js runtime probes (the event loop from epoll wait tracepoints on the
main thread, GC from uprobes on the node binary), on a process already
running: a 200 ms busy-wait in a timer lands in the event-loop iteration
histogram above 0.1 s, an idle loop's utilization is near 0, a loop busy
half of the time shows a utilization within 0.1 of what Node itself
reports (performance.eventLoopUtilization), and K calls of gc() under
--expose-gc are at least K major collections; allocation churn shows
minor (scavenge) collections. A node process started after the agent is
measured too. An agent started with --probes node loads only the process
and node groups, is healthy, and still counts the collections; there, a
binary called node without V8's symbols (a link named node to python3
running an asyncio loop, which waits in epoll_wait) loses only the GC
probes: its event loop is measured, although the tracepoints of the wait
syscalls no watched loop used had been detached before it started. That
detaching happens although an idle node process (a server that never gets
a connection, blocked in epoll_pwait since before the agent started) never
waits while the agent watches: the agent sees where it is blocked."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import ks

SVC = "ks-e2e-node"
SVC_LATE = "ks-e2e-node-late"
SVC_SHEBANG = "ks-e2e-node-shebang"
SVC_FAKE = "ks-e2e-node-nosyms"
SVC_IDLE = "ks-e2e-node-idle"
# No timer, no connection: the loop blocks in its wait for good.
IDLE = ("require('net').createServer().listen(0, '127.0.0.1', "
        "() => console.log('ready'))")
# An asyncio loop: one 200 ms busy callback, otherwise a 50 ms timer.
FAKE = """
import asyncio, sys, time
def spin():
    end = time.monotonic() + 0.2
    while time.monotonic() < end:
        pass
    print("done", flush=True)
async def main():
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin, lambda: sys.stdin.readline() and
                    loop.call_soon(spin))
    print("ready", flush=True)
    while True:
        await asyncio.sleep(0.05)
asyncio.run(main())
"""
K = 7
SCRIPT = os.path.join(ks.SRC, "tests", "e2e", "progs", "loop.js")


def start_node(service, tmpdir=None):
    """The workload under node; with tmpdir, as an executable script whose
    #! line names node (the file exec'd is then not called node)."""
    env = dict(os.environ, OTEL_SERVICE_NAME=service)
    cmd = ["node", "--expose-gc", SCRIPT]
    if tmpdir:
        path = os.path.join(tmpdir, "app-with-shebang.js")
        with open(path, "w") as f:
            f.write("#!%s --expose-gc\nrequire(%r);\n" %
                    (shutil.which("node"), SCRIPT))
        os.chmod(path, 0o755)
        cmd = [path]
    p = subprocess.Popen(cmd, env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def main():
    ks.require_root()
    r = ks.Result("node_runtime")
    idle = subprocess.Popen(["node", "-e", IDLE], stdout=subprocess.PIPE,
                            text=True,
                            env=dict(os.environ, OTEL_SERVICE_NAME=SVC_IDLE))
    assert idle.stdout.readline().strip() == "ready"
    p = start_node(SVC)

    def send(line):
        p.stdin.write(line + "\n")
        p.stdin.flush()

    def cmd(line):
        send(line)
        return p.stdout.readline()

    try:
        with ks.Agent() as agent:
            g = {x["name"]: x for x in agent.health["groups"]}["node"]
            r.check(g["attached"], "node probes attached to the running "
                    "process (%s)" % g["error"])

            def m(name, **lab):
                return ks.value(agent.metrics(), name, service_name=SVC,
                                **lab)
            time.sleep(2.5)  # idle: a 50 ms timer only
            util = m("nodejs_eventloop_utilization_ratio")
            r.check(0 <= util < 0.05, "idle loop utilization near 0: "
                    "%.4f" % util)

            h = "katascope_nodejs_eventloop_iteration_busy_seconds"
            before = m(h + "_count") - m(h + "_bucket", le="0.1")
            cmd("block 200")
            time.sleep(1.5)
            after = m(h + "_count") - m(h + "_bucket", le="0.1")
            r.eq(after - before, 1, "the 200 ms block is one iteration "
                 "above 0.1 s")
            r.eq(m(h + "_count") - m(h + "_bucket", le="0.25") -
                 0, 0, "and under 0.25 s")

            # Busy 5 ms every 10 ms for 4 s: the agent's gauge over two
            # refresh intervals inside that window against Node's own
            # utilization over the whole of it. Both count wall time, so
            # the busy-wait being preempted on a loaded machine moves
            # both alike.
            send("spin 4000 5 10")
            time.sleep(2.1)
            u1 = m("nodejs_eventloop_utilization_ratio")
            time.sleep(1.0)
            u2 = m("nodejs_eventloop_utilization_ratio")
            reply = p.stdout.readline().split()
            own = float(reply[1])
            r.check(0.25 <= own <= 0.75, "spin 5 ms every 10 ms: Node's "
                    "own utilization %.3f (the workload did what it "
                    "should)" % own)
            for u in (u1, u2):
                r.check(abs(u - own) <= 0.1, "agent's utilization %.3f "
                        "within 0.1 of Node's own %.3f" % (u, own))

            late(r, agent, SVC_LATE)
            with tempfile.TemporaryDirectory() as tmp:
                late(r, agent, SVC_SHEBANG, tmp)

            gc = "v8js_gc_duration_seconds_count"
            major0 = m(gc, v8js_gc_type="major")
            cmd("gc %d" % K)
            time.sleep(1.5)
            major = m(gc, v8js_gc_type="major") - major0
            r.check(major >= K, "gc() x%d: %d major collections" % (K, major))
            minor0 = m(gc, v8js_gc_type="minor")
            cmd("garbage")
            time.sleep(1.5)
            minor = m(gc, v8js_gc_type="minor") - minor0
            r.check(minor >= 1, "allocation churn: %d scavenges" % minor)
        only_node(r, cmd)
    finally:
        idle.kill()
        idle.wait()
        p.kill()
        p.wait()
    r.done()


def late(r, agent, service, tmpdir=None):
    """A node process exec'd while the agent runs is watched too (with
    tmpdir: started through a script's #! line)."""
    q = start_node(service, tmpdir)
    how = "through a #! script" if tmpdir else "as node"
    try:
        h = "katascope_nodejs_eventloop_iteration_busy_seconds"

        def above():
            s = agent.metrics()
            return (ks.value(s, h + "_count", service_name=service) -
                    ks.value(s, h + "_bucket", service_name=service,
                             le="0.1"))
        time.sleep(1.5)
        before = above()
        q.stdin.write("block 200\n")
        q.stdin.flush()
        q.stdout.readline()
        time.sleep(1.5)
        r.eq(above() - before, 1, "node started after the agent %s: its "
             "200 ms block is one iteration above 0.1 s" % how)
    finally:
        q.kill()
        q.wait()


def only_node(r, cmd):
    with ks.Agent("--probes", "node") as agent:
        groups = {x["name"]: x for x in agent.health["groups"]}
        r.check(agent.health["status"] == "ok", "--probes node: healthy")
        r.check(groups["node"]["attached"] and groups["process"]["attached"],
                "--probes node: node and process groups attached")
        left = sorted(n for n, g in groups.items()
                      if not g["enabled"] and not g["attached"])
        r.eq(left, ["http", "pgstatements", "postgres", "profile", "sched",
                    "tcp"],
             "--probes node: the other groups left out")
        gc = "v8js_gc_duration_seconds_count"

        def major():
            return ks.value(agent.metrics(), gc, service_name=SVC,
                            v8js_gc_type="major")
        m0 = major()
        cmd("gc %d" % K)
        time.sleep(1.5)
        r.check(major() - m0 >= K, "--probes node: gc() x%d counted (%d)" %
                (K, major() - m0))
        no_symbols(r, agent)


def node_group(agent):
    _, _, body = ks.http_get(agent.url + "/healthz")
    return {x["name"]: x for x in json.loads(body)["groups"]}["node"]


def no_symbols(r, agent):
    # First the agent learns which wait syscalls the watched loops use
    # (Node 20: epoll_pwait) and detaches the others' tracepoints...
    deadline = time.monotonic() + 12
    while node_group(agent)["programs"] >= 8 and time.monotonic() < deadline:
        time.sleep(0.5)
    r.check(node_group(agent)["programs"] < 8, "unused epoll wait "
            "tracepoints detached once the loops have waited: %d programs"
            " left" % node_group(agent)["programs"])
    # ...and a new process that waits in another one (python's asyncio:
    # epoll_wait) gets them back.
    work = tempfile.mkdtemp(prefix="ks-e2e-node-")
    fake = os.path.join(work, "node")
    os.symlink(os.path.realpath(sys.executable), fake)
    q = subprocess.Popen([fake, "-c", FAKE], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, OTEL_SERVICE_NAME=SVC_FAKE))
    try:
        assert q.stdout.readline().strip() == "ready"
        time.sleep(1.5)
        q.stdin.write("block\n")
        q.stdin.flush()
        q.stdout.readline()
        time.sleep(1.5)
        h = "katascope_nodejs_eventloop_iteration_busy_seconds"
        s = agent.metrics()
        above = (ks.value(s, h + "_count", service_name=SVC_FAKE) -
                 ks.value(s, h + "_bucket", service_name=SVC_FAKE, le="0.1"))
        r.eq(above, 1, "a 'node' without V8's symbols: its event loop's "
             "200 ms callback is one iteration above 0.1 s")
        g = node_group(agent)
        r.check(g["attached"] and "CollectGarbage" in g["error"],
                "and /healthz names the missing GC symbol, the group "
                "still attached: %s" % g["error"])
    finally:
        q.kill()
        q.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
