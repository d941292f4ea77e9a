"""service_name attribution on a real PostgreSQL: the postmaster is started
with OTEL_SERVICE_NAME before the agent; its backends overwrite their
environment with the process title, so they are named through their parent.
Checked for processes that existed before the agent (seeded from /proc), for
a backend forked after it (fork record), and for the CPU they burn."""
import os
import subprocess
import time

import ks
import services

SVC = "ks-e2e-pg"
HEAVY = "SELECT sum(x) FROM generate_series(1, 6000000) AS x"


class Session:
    """An interactive psql session; its backend's pid and CPU clock."""

    def __init__(self, pg):
        self.p = subprocess.Popen(
            ["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
             "-X", "-q", "-At"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        self.backend = int(self.query("SELECT pg_backend_pid()"))

    def query(self, sql):
        self.p.stdin.write(sql + ";\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()

    def backend_cpu(self):
        """utime + stime of the backend, in seconds, from /proc."""
        f = open("/proc/%d/stat" % self.backend).read().rsplit(")", 1)[1]
        f = f.split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def close(self):
        self.p.stdin.close()
        self.p.wait(10)


def main():
    ks.require_root()
    r = ks.Result("service_names")
    with services.Postgres(env={"OTEL_SERVICE_NAME": SVC}) as pg:
        early = Session(pg)  # its backend exists before the agent starts
        with ks.Agent() as agent:
            tree = pg.tree()
            s = agent.metrics()
            r.eq(ks.value(s, "katascope_service_processes",
                          service_name=SVC), len(tree),
                 "every process of the cluster (seeded) named %s" % SVC)
            r.eq(ks.value(s, "katascope_service_processes",
                          service_name="postgres"), 0,
                 "no cluster process named after its executable")

            def cpu():
                return ks.value(agent.metrics(),
                                "process_cpu_time_seconds_total",
                                service_name=SVC)

            def burn(sess, what):
                time.sleep(1.5)
                before, own0 = cpu(), sess.backend_cpu()
                sess.query(HEAVY)
                own = sess.backend_cpu() - own0
                time.sleep(2.5)
                got = cpu() - before
                # The service's other processes may add a little.
                r.check(own > 0.2 and own - 0.05 <= got <= own + 0.3,
                        "%s backend's CPU goes to %s: agent %.2f s, "
                        "backend's own clock %.2f s" % (what, SVC, got, own))

            burn(early, "pre-existing")
            opened0 = ks.value(agent.metrics(),
                               "katascope_tcp_connections_opened_total",
                               service_name=SVC, direction="passive")
            late = Session(pg)  # forked after the agent started
            burn(late, "new")
            s = agent.metrics()
            r.eq(ks.value(s, "katascope_tcp_connections_opened_total",
                          service_name=SVC, direction="passive") - opened0, 1,
                 "the new connection accepted by %s" % SVC)
            r.eq(ks.value(s, "process_cpu_time_seconds_total",
                          service_name="postgres"), 0,
                 "no CPU attributed to a service named 'postgres'")
            late.close()
        early.close()
    r.done()


if __name__ == "__main__":
    main()
