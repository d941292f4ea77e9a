"""OTLP pull end to end: GET /v1/metrics serves the same numbers as /metrics.

A Node server is sent an exact mix of requests while the agent runs; then
/metrics, /v1/metrics and /metrics again are fetched, until the two
Prometheus scrapes agree on the Node service's series (so the OTLP body in
between saw the same moment). The protobuf is decoded by an independent
decoder, the protobufjs code of @opentelemetry/otlp-transformer
(tests/e2e/app/otlp_decode.js), and every HTTP series of the service is
compared: attributes (semantic-convention names and types), count, sum,
bounds and per-bucket counts, temporality. Resources, counters, gauges and
the stable start time are checked too."""
import os
import socket
import subprocess
import time
import urllib.request
import uuid

import ks
from services import NodeApp

SVC = "ks-e2e-otlp-%s" % uuid.uuid4().hex[:6]
HIST = "http_server_request_duration_seconds"
CUMULATIVE = "AGGREGATION_TEMPORALITY_CUMULATIVE"
APP_DIR = os.path.join(ks.SRC, "tests", "e2e", "app")

# Prometheus label -> OTLP attribute, and whether the attribute is an int.
ATTRS = {
    "http_request_method": ("http.request.method", False),
    "http_route": ("http.route", False),
    "http_response_status_code": ("http.response.status_code", True),
    "server_port": ("server.port", True),
    "url_scheme": ("url.scheme", False),
}


def get_raw(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, dict(r.headers), r.read()


def svc_series(samples):
    """The Node service's histogram samples only."""
    return ks.service_series(samples, HIST, SVC)


def prom_histograms(samples):
    """{labels without service_name: (count, sum, {le: cumulative})}."""
    return ks.histograms(samples, HIST, SVC)


def resource_of(req, service):
    for rm in req.get("resourceMetrics", []):
        if ks.otlp_attrs(rm.get("resource", {}).get("attributes")).get(
                "service.name") == service:
            return rm
    return None


def metrics_of(rm):
    out = {}
    for sm in (rm or {}).get("scopeMetrics", []):
        for m in sm.get("metrics", []):
            out[m["name"]] = m
    return out


SEMCONV = {
    "http_server_request_duration_seconds": "http.server.request.duration",
    "http_client_request_duration_seconds": "http.client.request.duration",
    "db_client_operation_duration_seconds": "db.client.operation.duration",
    "process_cpu_time_seconds_total": "process.cpu.time",
    "process_memory_usage_bytes": "process.memory.usage",
    "system_cpu_utilization_ratio": "system.cpu.utilization",
    "system_memory_utilization_ratio": "system.memory.utilization",
}


def otel_name(prom, kind):
    """The OTLP name the agent should give a Prometheus family."""
    if prom in SEMCONV:
        return SEMCONV[prom]
    if kind == "counter" and prom.endswith("_total"):
        prom = prom[:-len("_total")]
    for suffix in ("_seconds", "_bytes", "_ratio"):
        if prom.endswith(suffix):
            prom = prom[:-len(suffix)]
            break
    return prom.replace("_", ".")


def families(text):
    """{family name: type} from the # TYPE lines."""
    out = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            out[name] = kind
    return out


def snapshot(agent, r):
    """(prom samples, decoded OTLP, raw headers, families) of one moment."""
    for attempt in range(20):
        text = agent.metrics_text()
        before = ks.parse_prom(text)
        st, headers, body = get_raw(agent.url + "/v1/metrics")
        after = ks.parse_prom(agent.metrics_text())
        if svc_series(before) == svc_series(after):
            r.eq(st, 200, "GET /v1/metrics status")
            return before, ks.otlp_decode(body), headers, families(text)
        time.sleep(0.3)
    raise RuntimeError("/metrics never stable around /v1/metrics")


def main():
    ks.require_root()
    r = ks.Result("otlp_pull")
    root_js = os.path.join(APP_DIR, "node_modules", "@opentelemetry",
                           "otlp-transformer", "build", "src", "generated",
                           "root.js")
    if not os.path.exists(root_js):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=APP_DIR,
                       check=True)
    r.check(os.path.exists(root_js), "otlp-transformer decoders installed")

    with NodeApp({"OTEL_SERVICE_NAME": SVC}) as app, ks.Agent() as agent:
        n_users, n_slow, n_missing = 12, 3, 4
        for i in range(n_users):
            ks.http_get("%s/users/%d" % (app.url, i))
        for _ in range(n_slow):
            ks.http_get(app.url + "/slow?ms=30")
        for _ in range(n_missing):
            ks.http_get(app.url + "/missing")
        total = n_users + n_slow + n_missing
        got = ks.wait_for(lambda: ks.value(agent.metrics(), HIST + "_count",
                                           service_name=SVC) >= total)
        r.check(got, "the %d requests are in /metrics" % total)

        samples, req, headers, fams = snapshot(agent, r)
        r.eq(headers.get("Content-Type"), "application/x-protobuf",
             "Content-Type of /v1/metrics")
        check_http(r, samples, req, app.port)
        check_resources(r, req)
        check_other_metrics(r, samples, req, fams)

        # The start time is the agent's, stable; the point time moves on.
        time.sleep(0.2)
        _, body2 = get_raw(agent.url + "/v1/metrics")[0::2]
        req2 = ks.otlp_decode(body2)
        p1 = first_point(req, SVC, "http.server.request.duration")
        p2 = first_point(req2, SVC, "http.server.request.duration")
        if r.check(p1 and p2, "points in both fetches"):
            r.eq(p2["startTimeUnixNano"], p1["startTimeUnixNano"],
                 "start_time_unix_nano stable")
            r.check(int(p2["timeUnixNano"]) > int(p1["timeUnixNano"]) >
                    int(p1["startTimeUnixNano"]) > 0,
                    "start < time, time increases")
            r.check(abs(int(p1["timeUnixNano"]) / 1e9 - time.time()) < 60,
                    "time_unix_nano is wall-clock time")
        r.check("/v1/metrics" in ks.http_get(agent.url + "/")[2],
                "the index page lists /v1/metrics")
    r.done()


def first_point(req, service, name):
    m = metrics_of(resource_of(req, service)).get(name)
    pts = m and m.get("histogram", {}).get("dataPoints")
    return pts[0] if pts else None


def check_http(r, samples, req, port):
    rm = resource_of(req, SVC)
    if not r.check(rm is not None, "a resource with service.name=%s" % SVC):
        return
    m = metrics_of(rm).get("http.server.request.duration")
    if not r.check(m is not None, "http.server.request.duration in it"):
        return
    r.eq(m.get("unit"), "s", "unit")
    r.eq(m.get("data"), "histogram", "data is a histogram")
    h = m["histogram"]
    r.eq(h.get("aggregationTemporality"), CUMULATIVE, "temporality")

    prom = prom_histograms(samples)
    otlp = {}
    for p in h.get("dataPoints", []):
        a = ks.otlp_attrs(p.get("attributes"))
        r.check("service.name" not in a and "service_name" not in a,
                "no service name on the point")
        # Back to Prometheus labels to find the /metrics series.
        labels = {}
        for lbl, (attr, is_int) in ATTRS.items():
            if attr in a:
                r.check(isinstance(a[attr], int) == is_int,
                        "%s is %s" % (attr, "an int" if is_int else
                                      "a string"))
                labels[lbl] = str(a[attr])
        otlp[frozenset(labels.items())] = p
    r.eq(len(otlp), len(prom), "as many OTLP points as /metrics series")

    users = {("http_request_method", "GET"), ("http_route", "/users/{id}"),
             ("http_response_status_code", "200")}
    seen_users = False
    for key, (count, total, cum) in sorted(prom.items(), key=str):
        p = otlp.get(key)
        what = ",".join("%s=%s" % kv for kv in sorted(key))
        if not r.check(p is not None, "OTLP point for {%s}" % what):
            continue
        r.eq(int(p.get("count", 0)), count, "count {%s}" % what)
        r.eq(p.get("sum", 0.0), total, "sum {%s}" % what)
        les = sorted((float(le) for le in cum if le != "+Inf"))
        r.eq([float(b) for b in p.get("explicitBounds", [])], les,
             "bounds {%s}" % what)
        want, prev = [], 0
        for le in les + [float("inf")]:
            c = cum["+Inf" if le == float("inf") else
                    next(k for k in cum if k != "+Inf" and float(k) == le)]
            want.append(c - prev)
            prev = c
        r.eq([int(c) for c in p.get("bucketCounts", [])], want,
             "bucket counts {%s}" % what)
        if users <= key:
            seen_users = True
            r.eq(count, 12, "the 12 GET /users/N counted")
            a = ks.otlp_attrs(p["attributes"])
            r.eq(a.get("http.request.method"), "GET", "http.request.method")
            r.eq(a.get("http.route"), "/users/{id}", "http.route")
            r.eq(a.get("http.response.status_code"), 200,
                 "http.response.status_code")
            r.eq(a.get("server.port"), port, "server.port")
            r.eq(a.get("url.scheme"), "http", "url.scheme")
            r.eq(int(p.get("startTimeUnixNano", 0)) > 0, True,
                 "start_time_unix_nano set")
    r.check(seen_users, "GET /users/{id} 200 series compared")
    r.eq(int(ks.value(samples, HIST + "_count", service_name=SVC,
                      http_route="/slow")), 3, "3 /slow in /metrics")
    r.eq(int(ks.value(samples, HIST + "_count", service_name=SVC,
                      http_response_status_code="404")), 4,
         "4 misses in /metrics")


def check_resources(r, req):
    host = socket.gethostname()
    bad = []
    for rm in req.get("resourceMetrics", []):
        a = ks.otlp_attrs(rm.get("resource", {}).get("attributes"))
        scopes = rm.get("scopeMetrics", [])
        if not (a.get("service.name") and a.get("host.name") == host and
                a.get("telemetry.sdk.name") == "katascope" and
                len(scopes) == 1 and
                scopes[0].get("scope", {}).get("name") == "katascope"):
            bad.append(a)
    r.eq(bad, [], "every resource has service.name, host.name=%s, "
         "telemetry.sdk.name and one scope 'katascope'" % host)
    names = [ks.otlp_attrs(rm["resource"].get("attributes")).get("service.name")
             for rm in req.get("resourceMetrics", [])]
    r.eq(len(names), len(set(names)), "one resource per service")


def check_other_metrics(r, samples, req, fams):
    agent = metrics_of(resource_of(req, "katascope"))
    mem = agent.get("system.memory.utilization")
    if r.check(mem is not None and mem.get("data") == "gauge",
               "system.memory.utilization gauge in the agent's resource"):
        r.eq(mem.get("unit"), "1", "system.memory.utilization unit")
    info = agent.get("katascope.build.info")
    r.check(info is not None and
            ks.otlp_attrs(info["gauge"]["dataPoints"][0].get("attributes")).get(
                "version"), "katascope.build.info with its version")
    ev = agent.get("katascope.events")
    if r.check(ev is not None and ev.get("data") == "sum",
               "katascope.events is a sum"):
        r.check(ev["sum"].get("isMonotonic") is True, "counter monotonic")
        r.eq(ev["sum"].get("aggregationTemporality"), CUMULATIVE,
             "counter temporality")
    svc = metrics_of(resource_of(req, SVC))
    # Every family /metrics has for the service is in its resource, with
    # the matching OTLP shape.
    shape = {"counter": "sum", "gauge": "gauge", "histogram": "histogram"}
    want, got = {}, {}
    for (name, labels), _ in samples.items():
        if ("service_name", SVC) not in labels:
            continue
        fam = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[:-len(suffix)] in fams:
                fam = name[:-len(suffix)]
        want[otel_name(fam, fams[fam])] = shape[fams[fam]]
    for name in want:
        got[name] = svc.get(name, {}).get("data")
    r.eq(got, want, "the service's families, by OTLP name and shape")
    cpu = svc.get("process.cpu.time")
    if cpu is not None:
        r.eq(cpu.get("unit"), "s", "process.cpu.time unit")
        r.check(cpu["sum"].get("isMonotonic") is True,
                "process.cpu.time monotonic")
    rss = svc.get("process.memory.usage")
    r.check(rss is not None and rss.get("unit") == "By" and
            rss["gauge"]["dataPoints"][0].get("asDouble", 0) > 0,
            "process.memory.usage gauge in bytes")
    r.check("http.server.request.duration" not in agent,
            "no service metrics in the agent's resource")


if __name__ == "__main__":
    main()
