"""Traces end to end: spans of a real Node service (node-postgres,
node-redis) fetched from GET /v1/traces and decoded by an independent
decoder (the protobufjs code of @opentelemetry/otlp-transformer 0.52.1,
tests/e2e/app/otlp_decode.js).

Phase 1 (--traces, ratio 1): a known request mix, one request at a time,
some carrying a W3C traceparent (curl -H). Checked: exactly one SERVER span
per request and one CLIENT span per SQL statement and Redis command, with
names, attributes and status; durations at least what the server slept;
the traceparent's trace id and parent span id on the server span; every
SQL/Redis span parented to its request's span (one request in flight, as
docs/tracing.md says) and inside it in time; and, with two requests in
flight, the statement left unparented and counted as ambiguous.

Phase 2 (--trace-sample-ratio 0 --trace-keep-slower-than 100ms): only the
slow requests, the errors (with their whole local trace) and the trace
whose caller said sampled are kept; the rest is counted as not sampled.

The agent observes only the Node process (--pid), so the self-metrics are
exact for the mix."""
import json
import os
import subprocess
import threading
import time
import urllib.request

import ks
import services

SVC = "ks-e2e-traces-api"
APP_DIR = os.path.join(ks.SRC, "tests", "e2e", "app")
SLOW_MS = 80
SLEEP_MS = 120


def fetch(agent):
    """(content type, [(resource attrs, span)]) of our service."""
    with urllib.request.urlopen(agent.url + "/v1/traces", timeout=10) as r:
        ctype, body = r.headers.get("Content-Type"), r.read()
    out = []
    for rs in ks.otlp_decode(body, "traces").get("resourceSpans", []):
        ra = ks.otlp_attrs(rs.get("resource", {}).get("attributes"))
        if ra.get("service.name") != SVC:
            continue
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                sp["attrs"] = ks.otlp_attrs(sp.get("attributes"))
                sp["ms"] = (int(sp["endTimeUnixNano"]) -
                            int(sp["startTimeUnixNano"])) / 1e6
                out.append((ra, sp))
    return ctype, out


def wait_spans(agent, n):
    """Our spans once there are n (or whatever there is after 10 s)."""
    got = ks.wait_for(lambda: (lambda s: s if len(s[1]) >= n else None)(
        fetch(agent)), timeout=10)
    time.sleep(0.5)  # and nothing more arrives
    return fetch(agent) if got else fetch(agent)


def curl(url, traceparent=None):
    cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"]
    if traceparent:
        cmd += ["-H", "traceparent: " + traceparent]
    return int(subprocess.run(cmd + [url], capture_output=True, text=True,
                              check=True).stdout)


def counters(agent):
    s = agent.metrics()
    out = {}
    for (name, labels), v in s.items():
        if name.startswith("katascope_spans_"):
            out[(name, tuple(sorted(labels)))] = int(v)
    return out


def counter(c, name, **labels):
    return c.get((name, tuple(sorted(labels.items()))), 0)


def server_of(spans, path):
    return [sp for _, sp in spans if sp["kind"] == "SPAN_KIND_SERVER" and
            sp["attrs"].get("url.path") == path]


def children_of(spans, parent):
    return [sp for _, sp in spans if sp.get("parentSpanId") ==
            parent["spanId"] and sp["traceId"] == parent["traceId"]]


def phase1(r, app, pid):
    tps = ["00-%032x-%016x-01" % (0x4bf92f3577b34da6a3ce929d0e0e4700 + i,
                                  0x00f067aa0ba90200 + i) for i in range(3)]
    waited = []
    with ks.Agent("--traces", "--pid", str(pid)) as agent:
        for i in range(5):
            r.eq(ks.http_get("%s/users/%d" % (app.url, i))[0], 200, "users")
        for _ in range(3):
            body = ks.http_get("%s/slow?ms=%d" % (app.url, SLOW_MS))[2]
            waited.append(json.loads(body)["waited_ms"])
        for i in range(4):
            ks.http_get("%s/db/user/%d" % (app.url, i + 1))
        for _ in range(2):
            r.eq(ks.http_get(app.url + "/db/bad")[0], 500, "/db/bad is 500")
        for _ in range(2):
            ks.http_get("%s/db/sleep?ms=%d" % (app.url, SLEEP_MS))
        for k in ("k1", "k2", "k3"):
            ks.http_get(app.url + "/cache/get/" + k)
        r.eq(ks.http_get(app.url + "/error")[0], 500, "/error is 500")
        for tp in tps:
            r.eq(curl(app.url + "/db/count", tp), 200, "curl -H traceparent")
        # Two requests in flight: the statement is nobody's child.
        slow = threading.Thread(target=ks.http_get,
                                args=(app.url + "/slow?ms=400",))
        slow.start()
        time.sleep(0.15)
        ks.http_get(app.url + "/db/insert")
        slow.join()

        n_server, n_client = 5 + 3 + 4 + 2 + 2 + 3 + 1 + 3 + 2, \
            4 + 2 + 2 + 3 + 3 + 1
        ctype, spans = wait_spans(agent, n_server + n_client)
        c = counters(agent)
    r.eq(ctype, "application/x-protobuf", "Content-Type of /v1/traces")
    kinds = [sp["kind"] for _, sp in spans]
    r.eq(kinds.count("SPAN_KIND_SERVER"), n_server, "server spans")
    r.eq(kinds.count("SPAN_KIND_CLIENT"), n_client, "client spans")
    ra = spans[0][0] if spans else {}
    r.eq((ra.get("process.pid"), ra.get("telemetry.sdk.name"),
          bool(ra.get("host.name"))), (pid, "katascope", True),
         "resource: process.pid, telemetry.sdk.name, host.name")

    users = [sp for _, sp in spans if sp["name"] == "GET /users/{id}"]
    r.eq(len(users), 5, "5 spans named 'GET /users/{id}'")
    r.eq(len({sp["traceId"] for sp in users}), 5, "a trace each")
    r.check(all(sp["attrs"].get("http.route") == "/users/{id}" and
                sp["attrs"].get("http.request.method") == "GET" and
                sp["attrs"].get("http.response.status_code") == 200 and
                sp["attrs"].get("server.port") == app.port and
                sp["attrs"].get("url.scheme") == "http" and
                "parentSpanId" not in sp and "status" not in sp and
                not children_of(spans, sp) for sp in users),
            "users spans: attributes, roots, no status, no children")

    # In request order (one at a time): the first 3 /slow are the mix's.
    slows = [sp["ms"] for sp in sorted(server_of(spans, "/slow"), key=lambda
                                       sp: int(sp["startTimeUnixNano"]))]
    r.eq(len(slows), 4, "4 /slow spans")
    r.check(all(d >= w for d, w in zip(slows[:3], waited)),
            "/slow?ms=%d durations %s >= the server's waits %s" %
            (SLOW_MS, slows[:3], waited))

    linked = 0
    for sp in server_of(spans, "/db/user/1") + server_of(spans, "/db/user/2") \
            + server_of(spans, "/db/user/3") + server_of(spans, "/db/user/4"):
        ch = children_of(spans, sp)
        if r.check(len(ch) == 1 and ch[0]["name"] == "SELECT users" and
                   ch[0]["kind"] == "SPAN_KIND_CLIENT",
                   "%s: one child 'SELECT users'" % sp["name"]):
            linked += 1
            a = ch[0]["attrs"]
            r.eq((a.get("db.system.name"), a.get("db.operation.name"),
                  a.get("db.collection.name"), a.get("db.query.text")),
                 ("postgresql", "SELECT", "users",
                  "SELECT id, name FROM users WHERE id = $1"),
                 "SQL span attributes (literal-stripped text)")
            inside(r, sp, ch[0])
    r.eq(linked, 4, "the 4 lookups parented")

    for sp in server_of(spans, "/db/bad"):
        ch = children_of(spans, sp)
        r.eq(sp.get("status", {}).get("code"), "STATUS_CODE_ERROR",
             "/db/bad server span: ERROR")
        r.eq(sp["attrs"].get("error.type"), "500", "/db/bad error.type")
        if r.check(len(ch) == 1, "/db/bad: one child"):
            r.eq((ch[0]["name"], ch[0].get("status", {}).get("code"),
                  ch[0]["attrs"].get("error.type")),
                 ("SELECT no_such_table", "STATUS_CODE_ERROR", "42P01"),
                 "failing statement span: ERROR, SQLSTATE")
    r.eq(len(server_of(spans, "/db/bad")), 2, "2 /db/bad spans")
    err = server_of(spans, "/error")
    r.check(len(err) == 1 and err[0].get("status", {}).get("code") ==
            "STATUS_CODE_ERROR", "/error: one span, ERROR")

    for sp in server_of(spans, "/db/sleep"):
        ch = children_of(spans, sp)
        if r.check(len(ch) == 1, "/db/sleep: one child"):
            r.check(ch[0]["ms"] >= SLEEP_MS, "pg_sleep span %.1f ms >= %d" %
                    (ch[0]["ms"], SLEEP_MS))
            inside(r, sp, ch[0])
    for k in ("k1", "k2", "k3"):
        sp = server_of(spans, "/cache/get/" + k)
        ch = children_of(spans, sp[0]) if sp else []
        r.check(len(ch) == 1 and ch[0]["name"] == "GET" and
                ch[0]["attrs"].get("db.system.name") == "redis",
                "/cache/get/%s: one Redis GET child" % k)

    counts = server_of(spans, "/db/count")
    got = sorted((sp["traceId"], sp.get("parentSpanId")) for sp in counts)
    want = sorted((tp.split("-")[1], tp.split("-")[2]) for tp in tps)
    r.eq(got, want, "traceparent: trace id and parent span id joined")
    for sp in counts:
        ch = children_of(spans, sp)
        r.check(len(ch) == 1 and ch[0]["traceId"] == sp["traceId"],
                "traced /db/count: its SQL span in the caller's trace")

    ins = server_of(spans, "/db/insert")
    stmt = [sp for _, sp in spans if sp["name"] == "INSERT users"]
    r.check(len(ins) == 1 and not children_of(spans, ins[0]),
            "two in flight: the request gets no child")
    r.check(len(stmt) == 1 and "parentSpanId" not in stmt[0],
            "two in flight: the INSERT is a root span")

    r.eq(counter(c, "katascope_spans_total", span_kind="server"), n_server,
         "katascope_spans_total{server}")
    r.eq(counter(c, "katascope_spans_total", span_kind="client"), n_client,
         "katascope_spans_total{client}")
    r.eq(counter(c, "katascope_spans_unlinked_total", reason="ambiguous"), 1,
         "unlinked: ambiguous")
    r.eq(counter(c, "katascope_spans_unlinked_total",
                 reason="none_in_flight") +
         counter(c, "katascope_spans_unlinked_total", reason="unknown"), 0,
         "unlinked otherwise")
    r.eq(counter(c, "katascope_spans_dropped_total", reason="not_sampled"),
         0, "nothing dropped at ratio 1")


def inside(r, parent, child):
    r.check(int(parent["startTimeUnixNano"]) <=
            int(child["startTimeUnixNano"]) <=
            int(child["endTimeUnixNano"]) <= int(parent["endTimeUnixNano"]),
            "%s inside %s in time" % (child["name"], parent["name"]))


def phase2(r, app, pid):
    yes = "00-%032x-%016x-01" % (0xabc, 0xdef)
    no = "00-%032x-%016x-00" % (0xabd, 0xdef)
    with ks.Agent("--traces", "--pid", str(pid), "--trace-sample-ratio", "0",
                  "--trace-keep-slower-than", "100ms") as agent:
        for i in range(3):
            ks.http_get("%s/users/%d" % (app.url, i))
        for _ in range(2):
            ks.http_get(app.url + "/slow?ms=150")
        ks.http_get(app.url + "/error")
        ks.http_get(app.url + "/db/bad")
        curl(app.url + "/db/user/1", yes)
        curl(app.url + "/db/user/2", no)
        _, spans = wait_spans(agent, 7)
        c = counters(agent)
    names = sorted(sp["name"] for _, sp in spans)
    r.eq(names, sorted(["GET /slow", "GET /slow", "GET /error", "GET /db/bad",
                        "SELECT no_such_table", "GET /db/user/{id}",
                        "SELECT users"]),
         "ratio 0: slow, errors with their trace, the sampled caller's")
    r.eq(counter(c, "katascope_spans_dropped_total", reason="not_sampled"),
         5, "not sampled: 3 users + the unsampled caller's 2")


def main():
    ks.require_root()
    r = ks.Result("traces")
    if not os.path.exists(os.path.join(APP_DIR, "node_modules")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=APP_DIR,
                       check=True)
    with services.Postgres() as pg, services.Redis() as rd, \
            services.NodeApp({"PGPORT": str(pg.port),
                              "REDIS_PORT": str(rd.port),
                              "OTEL_SERVICE_NAME": SVC}) as app:
        ks.http_get(app.url + "/cache/set/k1")
        phase1(r, app, app.proc.pid)
        phase2(r, app, app.proc.pid)
    r.done()


if __name__ == "__main__":
    main()
