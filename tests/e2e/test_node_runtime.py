"""Node.js runtime probes (uprobes on the node binary, attached to a process
already running): a 200 ms busy-wait in a timer lands in the event-loop
iteration histogram above 0.1 s, an idle loop's utilization is near 0, and
K calls of gc() under --expose-gc are at least K major collections;
allocation churn shows minor (scavenge) collections. An agent started with
--probes node loads only the process and node groups, is healthy, and
still counts the collections."""
import os
import subprocess
import time

import ks

SVC = "ks-e2e-node"
K = 7


def main():
    ks.require_root()
    r = ks.Result("node_runtime")
    script = os.path.join(ks.SRC, "tests", "e2e", "progs", "loop.js")
    env = dict(os.environ, OTEL_SERVICE_NAME=SVC)
    p = subprocess.Popen(["node", "--expose-gc", script], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "ready"

    def cmd(line):
        p.stdin.write(line + "\n")
        p.stdin.flush()
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
        p.kill()
        p.wait()
    r.done()


def only_node(r, cmd):
    with ks.Agent("--probes", "node") as agent:
        groups = {x["name"]: x for x in agent.health["groups"]}
        r.check(agent.health["status"] == "ok", "--probes node: healthy")
        r.check(groups["node"]["attached"] and groups["process"]["attached"],
                "--probes node: node and process groups attached")
        left = sorted(n for n, g in groups.items()
                      if not g["enabled"] and not g["attached"])
        r.eq(left, ["http", "postgres", "profile", "sched", "tcp"],
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


if __name__ == "__main__":
    main()
