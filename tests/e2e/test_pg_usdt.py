"""PostgreSQL internals from its USDT probes, on a throwaway cluster started
before the agent. With the default probe groups (postgres: lock waits,
deadlocks, checkpoints; the per-statement pgstatements group left out, so
statements trap nothing and count nothing): a lock held 500 ms by one session
makes the other's lock wait show at least 0.3 s; a deliberate deadlock is
counted; K CHECKPOINT commands are K requested checkpoints, each lasting
more than 0 and at most what the client measured, and a restart is one
shutdown checkpoint. With --probes +pgstatements: K statements are K; K statements in one database and J
in another (J short-lived connections) are K and J by db_namespace; the
buffer hit ratio of the second read of a table (after a restart emptied
shared buffers) is higher than the first's."""
import subprocess
import threading
import time

import ks
import services

SVC = "ks-e2e-pgsrv"
K = 25
K_CKPT = 5
CKPT = "katascope_pg_checkpoint_duration_seconds"


class Session:
    def __init__(self, pg, db="postgres"):
        self.p = subprocess.Popen(
            ["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
             "-d", db, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)

    def send(self, sql):
        self.p.stdin.write(sql + "\n")
        self.p.stdin.flush()

    def query(self, sql):
        self.send(sql + ";\n\\echo done")
        out = []
        while True:
            line = self.p.stdout.readline()
            if not line or line.strip() == "done":
                return "".join(out)
            out.append(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait(10)


def main():
    ks.require_root()
    r = ks.Result("pg_usdt")
    with services.Postgres(env={"OTEL_SERVICE_NAME": SVC}) as pg:
        pg.psql("CREATE TABLE t (x int PRIMARY KEY); "
                "INSERT INTO t SELECT generate_series(1, 10); "
                "CREATE TABLE big AS SELECT g AS x, repeat('y', 200) AS pad "
                "FROM generate_series(1, 20000) g")
        with ks.Agent() as agent:
            g = {x["name"]: x for x in agent.health["groups"]}
            r.check(g["postgres"]["attached"] and
                    g["postgres"]["programs"] >= 3,
                    "default: USDT lock, deadlock and checkpoint probes "
                    "attached to the running postgres (%s)" %
                    g["postgres"]["error"])
            r.check(not g["pgstatements"]["enabled"] and
                    not g["pgstatements"]["attached"] and
                    "+pgstatements" in g["pgstatements"]["error"],
                    "default: per-statement probes left out (%s)" %
                    g["pgstatements"]["error"])
            no_statements(r, agent, pg)
            lock_wait(r, agent, pg)
            deadlock(r, agent, pg)
            checkpoints(r, agent, pg)
        with ks.Agent("--probes", "+pgstatements") as agent:
            g = {x["name"]: x for x in agent.health["groups"]}
            r.check(g["pgstatements"]["attached"] and
                    g["pgstatements"]["programs"] >= 11 and
                    g["postgres"]["attached"],
                    "--probes +pgstatements: per-statement probes attached "
                    "too (%s)" % g["pgstatements"]["error"])
            statements(r, agent, pg)
            databases(r, agent, pg)
            buffers(r, agent, pg)
    r.done()


def m(agent, name, **labels):
    return ks.value(agent.metrics(), name, service_name=SVC, **labels)


def no_statements(r, agent, pg):
    """Without the pgstatements group, statements are not seen server
    side (no trap on them)."""
    s = Session(pg)
    for i in range(K):
        s.query("SELECT %d" % i)
    s.close()
    time.sleep(1.5)
    r.eq(m(agent, "katascope_pg_statement_duration_seconds_count"), 0,
         "default: no server-side statement counted")
    r.eq(m(agent, "katascope_pg_transactions_total"), 0,
         "default: no transaction counted")


def statements(r, agent, pg):
    name = "katascope_pg_statement_duration_seconds_count"
    before = m(agent, name, db_operation_name="SELECT")
    s = Session(pg)
    for i in range(K):
        s.query("SELECT %d" % i)
    s.close()
    ks.wait_for(lambda: m(agent, name, db_operation_name="SELECT")
                >= before + K, 10)
    time.sleep(1.2)  # and nothing more arrives
    r.eq(m(agent, name, db_operation_name="SELECT") - before, K,
         "%d known statements seen" % K)


def databases(r, agent, pg):
    """K statements in one session on ks_shop; J in ks_crm, each on a
    connection of its own (psql -c: the backend exits right after, before
    the agent could read its title from /proc)."""
    name = "katascope_pg_statement_duration_seconds_count"
    kdb, jdb = 7, 4
    pg.psql("CREATE DATABASE ks_shop")
    pg.psql("CREATE DATABASE ks_crm")

    def n(db):
        return m(agent, name, db_namespace=db, db_operation_name="SELECT")

    s = Session(pg, db="ks_shop")
    for i in range(kdb):
        s.query("SELECT %d" % i)
    s.close()
    for i in range(jdb):
        pg.psql("SELECT %d" % i, db="ks_crm")
    ks.wait_for(lambda: n("ks_shop") >= kdb and n("ks_crm") >= jdb, 10)
    time.sleep(1.2)
    r.eq(n("ks_shop"), kdb, "%d statements in database ks_shop" % kdb)
    r.eq(n("ks_crm"), jdb, "%d statements in database ks_crm, one "
         "connection each" % jdb)


def lock_wait(r, agent, pg):
    a, b = Session(pg), Session(pg)
    a.query("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    t = threading.Thread(target=lambda: b.query("SELECT count(*) FROM t"))
    t.start()
    time.sleep(0.5)
    a.query("COMMIT")
    t.join(10)
    a.close()
    b.close()
    name = "katascope_pg_lock_wait_duration_seconds"
    ks.wait_for(lambda: m(agent, name + "_count") >= 1, 10)
    n = m(agent, name + "_count")
    under = m(agent, name + "_bucket", le="0.3")
    r.check(n >= 1 and n - under >= 1,
            "a lock wait of >= 0.3 s in the histogram (%d waits, %d under "
            "0.3 s)" % (n, under))


def deadlock(r, agent, pg):
    before = m(agent, "katascope_pg_deadlocks_total")
    a, b = Session(pg), Session(pg)
    for s in (a, b):
        s.query("SET deadlock_timeout = '100ms'")
    a.query("BEGIN; UPDATE t SET x = x WHERE x = 1")
    b.query("BEGIN; UPDATE t SET x = x WHERE x = 2")
    ta = threading.Thread(target=lambda: a.query(
        "UPDATE t SET x = x WHERE x = 2"))
    ta.start()
    time.sleep(0.3)
    out = b.query("UPDATE t SET x = x WHERE x = 1")
    ta.join(10)
    a.query("ROLLBACK")
    b.query("ROLLBACK")
    a.close()
    b.close()
    ks.wait_for(lambda: m(agent, "katascope_pg_deadlocks_total") > before, 10)
    r.eq(m(agent, "katascope_pg_deadlocks_total") - before, 1,
         "one deadlock counted (%s)" % out.strip()[:80])


def checkpoints(r, agent, pg):
    def count(trigger):
        return m(agent, CKPT + "_count", trigger=trigger)

    before = count("requested")
    s = Session(pg)
    s.query("CREATE TABLE ck (x int)")
    for i in range(K_CKPT):
        s.query("INSERT INTO ck VALUES (%d)" % i)  # a page to write
        c0, sum0 = count("requested"), m(agent, CKPT + "_sum",
                                         trigger="requested")
        t0 = time.monotonic()
        s.query("CHECKPOINT")
        client = time.monotonic() - t0
        ks.wait_for(lambda: count("requested") > c0, 5)
        took = m(agent, CKPT + "_sum", trigger="requested") - sum0
        r.check(count("requested") == c0 + 1 and 0 < took <= client,
                "CHECKPOINT %d: one checkpoint of %.6f s, client saw "
                "%.6f s" % (i + 1, took, client))
    s.close()
    time.sleep(1.2)  # and nothing more arrives
    r.eq(count("requested") - before, K_CKPT,
         "%d requested checkpoints counted" % K_CKPT)


def buffers(r, agent, pg):
    shutdowns = m(agent, CKPT + "_count", trigger="shutdown")
    pg.restart()  # shared buffers empty; the uprobes stay on the binary
    ks.wait_for(lambda: m(agent, CKPT + "_count", trigger="shutdown") >
                shutdowns, 5)
    r.eq(m(agent, CKPT + "_count", trigger="shutdown") - shutdowns, 1,
         "the restart's shutdown checkpoint counted")

    def counts():
        return (m(agent, "katascope_pg_buffer_reads_total", result="hit"),
                m(agent, "katascope_pg_buffer_reads_total", result="miss"))

    def read():
        time.sleep(1.5)
        h0, m0 = counts()
        pg.psql("SELECT count(*) FROM big")
        time.sleep(1.5)
        h1, m1 = counts()
        return (h1 - h0) / max(1, (h1 - h0) + (m1 - m0)), m1 - m0

    first, miss1 = read()
    second, miss2 = read()
    r.check(miss1 > 0, "first read after restart misses shared buffers "
            "(%d misses)" % miss1)
    r.check(second > first, "hit ratio rises on the second read: %.3f -> "
            "%.3f" % (first, second))


if __name__ == "__main__":
    main()
