"""Database calls measured in the client, end to end: a Node service using
node-postgres and node-redis, whose connections were opened before the agent
started, runs a known mix; the agent counts every statement and command
exactly per (system, operation, collection, error), the SQLSTATE of a bad
table, pg_sleep(N) at or above N, Redis GET hits and misses as the service
saw them, and keeps the slow statements without their literals."""
import json
import time

import ks
import services

SVC = "ks-e2e-db-api"
DB = "db_client_operation_duration_seconds"
SLEEP_MS = 120


def main():
    ks.require_root()
    r = ks.Result("db")
    with services.Postgres() as pg, services.Redis() as rd, \
            services.NodeApp({"PGPORT": str(pg.port),
                              "REDIS_PORT": str(rd.port),
                              "OTEL_SERVICE_NAME": SVC}) as app:
        with ks.Agent() as agent:
            run(r, agent, app)
    r.done()


def get(app, path):
    st, _, body = ks.http_get(app.url + path)
    return st, body


def run(r, agent, app):
    want = {}

    def expect(system, op, coll, err, n):
        k = (system, op, coll, err)
        want[k] = want.get(k, 0) + n

    for i in range(10):
        r.eq(get(app, "/db/user/%d" % (i + 1))[0], 200, "extended query")
    expect("postgresql", "SELECT", "users", "", 10)
    for _ in range(5):
        get(app, "/db/count")
    expect("postgresql", "SELECT", "users", "", 5)
    for _ in range(4):
        get(app, "/db/insert")
    expect("postgresql", "INSERT", "users", "", 4)
    for i in range(6):  # Parse sent with the first only
        get(app, "/db/prepared/%d" % (i + 1))
    expect("postgresql", "SELECT", "users", "", 6)
    for _ in range(3):
        st, body = get(app, "/db/bad")
        r.check(st == 500 and "42P01" in body, "bad table: 42P01 (%s)" % body)
    expect("postgresql", "SELECT", "no_such_table", "42P01", 3)
    for _ in range(3):
        get(app, "/db/sleep?ms=%d" % SLEEP_MS)
    expect("postgresql", "SELECT", "", "", 3)

    hits = misses = 0
    for k in ("k1", "k3"):
        get(app, "/cache/set/" + k)
    expect("redis", "SET", "", "", 2)
    for k in ("k1", "nope1", "nope2"):
        res = get(app, "/cache/get/" + k)[1]
        hits += res == "hit"
        misses += res == "miss"
    for _ in range(2):  # three GETs pipelined: k1 hit, k2 miss, k3 hit
        vals = json.loads(get(app, "/cache/multi")[1])
        hits += sum(v is not None for v in vals)
        misses += sum(v is None for v in vals)
    expect("redis", "GET", "", "", 9)

    def counts():
        s = agent.metrics()
        out = {}
        for (name, labels), v in s.items():
            lab = dict(labels)
            if name == DB + "_count" and lab["service_name"] == SVC:
                k = (lab["db_system_name"], lab["db_operation_name"],
                     lab["db_collection_name"], lab["error_type"])
                out[k] = out.get(k, 0) + int(v)
        return out, s

    got, s = ks.wait_for(lambda: (lambda c: c if c[0] == want else None)(
        counts()), timeout=10) or counts()
    for k in sorted(set(want) | set(got)):
        r.eq(got.get(k, 0), want.get(k, 0), "operations %s %s %r %r" % k)
    r.eq(ks.value(s, "katascope_redis_get_total", service_name=SVC,
                  result="hit"), hits, "GET hits as the service saw them")
    r.eq(ks.value(s, "katascope_redis_get_total", service_name=SVC,
                  result="miss"), misses, "GET misses as the service saw")

    # pg_sleep(N): every one at or above N.
    sl = dict(service_name=SVC, db_system_name="postgresql",
              db_collection_name="", db_operation_name="SELECT")
    r.eq(ks.value(s, DB + "_bucket", le="0.1", **sl), 0,
         "no %d ms sleep under 0.1 s" % SLEEP_MS)
    total = ks.value(s, DB + "_sum", **sl)
    r.check(total >= 3 * SLEEP_MS / 1000, "sleeps sum %.3f s >= %.3f s" %
            (total, 3 * SLEEP_MS / 1000))

    st, _, body = ks.http_get(agent.url + "/api/slow-queries")
    slow = [q for q in json.loads(body)["slow_queries"]
            if q["service_name"] == SVC]
    sleeps = [q for q in slow if q["statement"] == "SELECT pg_sleep($1)"]
    r.eq(len(sleeps), 3, "slow queries kept: the three sleeps")
    r.check(all(q["duration_ms"] >= SLEEP_MS for q in sleeps),
            "slow query durations >= %d ms" % SLEEP_MS)
    st, _, body = ks.http_get(agent.url + "/api/queries")
    top = {q["statement"]: q for q in json.loads(body)["statements"]
           if q["service_name"] == SVC}
    byid = top.get("SELECT id, name FROM users WHERE id = $1", {})
    r.eq(byid.get("calls"), 10, "top statements: calls of the user lookup")
    bad = top.get("SELECT * FROM no_such_table", {})
    r.eq(bad.get("errors"), 3, "top statements: errors of the bad table")
    r.check(not any("someone" in t for t in top),
            "no literal leaks into statements")
    r.eq(ks.value(s, "http_server_request_duration_seconds_count",
                  service_name=SVC, http_route="/db/bad",
                  http_response_status_code="500"), 3,
         "the API's 500s for the bad table")


if __name__ == "__main__":
    main()
