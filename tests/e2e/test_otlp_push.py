"""OTLP/HTTP push end to end: the agent POSTs to a real receiver in this
process (http.server), and the receiver's view is checked against /metrics.

Every body is gunzipped and decoded twice, by katascope's own protobuf-c
code (build/otlp_dump) and by the independent protobufjs decoders of
@opentelemetry/otlp-transformer (tests/e2e/app/otlp_decode.js). Then the
collector misbehaves in each way the OTLP spec names: it answers 400 (the
batch is dropped, never retried), 503 with Retry-After: 1 (the same batch
comes back no sooner than 1 s later), it is slow beyond --otlp-timeout
(timeouts, retried), and it is down (connection refused; the queued batches
arrive once it is back). The agent keeps serving /healthz 200 throughout,
and its katascope_otlp_* self-metrics count exactly the requests the
receiver saw. Last, SIGTERM while the collector hangs: the agent exits 0
within a few seconds."""
import gzip
import http.server
import json
import os
import re
import socket
import subprocess
import threading
import time
import uuid

import ks
from services import NodeApp

SVC = "ks-e2e-push-%s" % uuid.uuid4().hex[:6]
HIST = "http_server_request_duration_seconds"
APP_DIR = os.path.join(ks.SRC, "tests", "e2e", "app")
DUMP = os.path.join(os.path.dirname(os.path.abspath(ks.BIN)), "otlp_dump")
TIMEOUT_S = 1.0  # --otlp-timeout


class Receiver:
    """An OTLP/HTTP collector stand-in. mode: ok, 400, 503 (Retry-After: 1),
    slow (sleeps past the agent's timeout), hang. A mode set with a count
    applies to that many requests, then the receiver answers ok again."""

    def __init__(self, port=0):
        self.lock = threading.Lock()
        self.requests = []  # dicts: t_in, t_out, path, headers, raw, status
        self.mode, self.left = "ok", 0
        self.conns = []
        self.port = port
        self.start()

    def start(self):
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the agent

            def setup(self):
                super().setup()
                with recv.lock:
                    recv.conns.append(self.connection)

            def do_POST(self):
                t_in = time.time()
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with recv.lock:
                    mode = recv.mode
                    if recv.left:
                        recv.left -= 1
                        if not recv.left:
                            recv.mode = "ok"
                    req = {"t_in": t_in, "path": self.path,
                           "headers": dict(self.headers), "wire": body,
                           "mode": mode}
                    recv.requests.append(req)
                if self.headers.get("Content-Encoding") == "gzip":
                    req["raw"] = gzip.decompress(body)
                else:
                    req["raw"] = body
                status, extra = 200, {}
                if mode == "400":
                    status = 400
                elif mode == "503":
                    status, extra = 503, {"Retry-After": "1"}
                elif mode == "slow":
                    time.sleep(TIMEOUT_S * 2.5)
                elif mode == "hang":
                    time.sleep(30)
                # An empty ExportMetricsServiceResponse, or a Status with
                # a message (field 2) for errors.
                out = b"" if status == 200 else b"\x12\x07bad req"
                try:
                    self.send_response(status)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/x-protobuf")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                    self.wfile.flush()
                except OSError:
                    pass  # the agent gave up (timeout)
                req["t_out"] = time.time()
                req["status"] = status

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        """Refuse connections, and end the kept-alive ones."""
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def set_mode(self, mode, count=0):
        with self.lock:
            self.mode, self.left = mode, count

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def metrics_posts(self):
        return [r for r in self.snapshot() if r["path"] == "/v1/metrics"]


def decode_c(raw):
    p = subprocess.run([DUMP], input=raw, stdout=subprocess.PIPE, check=True)
    return json.loads(p.stdout)


def js_resources(req):
    """protobufjs JSON -> {service: (resource attrs, {metric: points})} in
    the form of decode_c, so the two decoders compare directly."""
    out = {}
    for rm in req.get("resourceMetrics", []):
        ra = {kv["key"]: ks.otlp_value(kv.get("value", {}))
              for kv in rm.get("resource", {}).get("attributes", [])}
        ms = {}
        for sm in rm.get("scopeMetrics", []):
            for m in sm.get("metrics", []):
                if m.get("data") != "histogram":
                    continue
                pts = []
                for p in m["histogram"].get("dataPoints", []):
                    pts.append({
                        "attributes": {kv["key"]: ks.otlp_value(kv["value"])
                                       for kv in p.get("attributes", [])},
                        "count": int(p.get("count", 0)),
                        "sum": p.get("sum", 0.0),
                        "bounds": p.get("explicitBounds", []),
                        "buckets": [int(c) for c in p.get("bucketCounts",
                                                          [])]})
                ms[m["name"]] = pts
        out[ra["service.name"]] = (ra, ms)
    return out


def c_resources(req):
    out = {}
    for r in req["resources"]:
        ms = {m["name"]: [{k: p[k] for k in ("attributes", "count", "sum",
                                              "bounds", "buckets")}
                          for p in m["points"]]
              for m in r["metrics"] if m["type"] == "histogram"}
        out[r["attributes"]["service.name"]] = (r["attributes"], ms)
    return out


def otlp_http_points(res):
    """{frozenset(prom labels): (count, sum, buckets)} of the service."""
    names = {"http.request.method": "http_request_method",
             "http.route": "http_route",
             "http.response.status_code": "http_response_status_code",
             "server.port": "server_port", "url.scheme": "url_scheme"}
    out = {}
    for p in res.get(SVC, ({}, {}))[1].get("http.server.request.duration",
                                           []):
        labels = frozenset((names[k], str(v))
                           for k, v in p["attributes"].items())
        out[labels] = (p["count"], p["sum"], p["buckets"])
    return out


def prom_http_points(samples):
    out = ks.histograms(samples, HIST, SVC)
    res = {}
    for key, (count, total, cum) in out.items():
        les = sorted(cum, key=lambda le: float(le))
        buckets, prev = [], 0
        for le in les:
            buckets.append(cum[le] - prev)
            prev = cum[le]
        res[key] = (count, total, buckets)
    return res


def svc_hist(samples):
    return ks.service_series(samples, HIST, SVC)


def self_value(agent, name, **labels):
    return ks.value(agent.metrics(), name, **labels)


def healthy(r, agent, what):
    st = ks.http_get(agent.url + "/healthz")[0]
    r.check(agent.proc.poll() is None and st == 200,
            "%s: agent running, /healthz 200" % what)


def main():
    ks.require_root()
    r = ks.Result("otlp_push")
    if not os.path.exists(os.path.join(APP_DIR, "node_modules",
                                       "@opentelemetry")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=APP_DIR,
                       check=True)
    r.check(os.access(DUMP, os.X_OK), "otlp_dump built at %s" % DUMP)
    recv = Receiver()
    endpoint = "http://127.0.0.1:%d" % recv.port
    with NodeApp({"OTEL_SERVICE_NAME": SVC}) as app:
        os.environ.update(K8S_NODE_NAME="node-e2e", K8S_NAMESPACE="ks-ns",
                          K8S_POD_NAME="katascope-e2e-pod")
        try:
            agent = ks.Agent("--otlp-endpoint", endpoint + "/",
                             "--otlp-interval", "1s",
                             "--otlp-timeout", "%dms" % (TIMEOUT_S * 1000),
                             "--otlp-headers",
                             "x-katascope-test=e2e%20ok%2C1,"
                             "Authorization=Bearer abc")
        finally:
            for k in ("K8S_NODE_NAME", "K8S_NAMESPACE", "K8S_POD_NAME"):
                del os.environ[k]
        try:
            check_push(r, recv, agent, app)
            check_400(r, recv, agent)
            check_503(r, recv, agent)
            check_slow(r, recv, agent)
            recv = check_down(r, recv, agent)
            check_accounting(r, agent)
        except BaseException:
            agent.proc.kill()
            raise
        check_stop_hanging(r, recv, agent)
    recv.stop()
    check_traces_push(r)
    r.done()


def check_traces_push(r):
    """With --traces, spans go to <endpoint>/v1/traces: every request of a
    known mix arrives once, as a SERVER span, gzip'ed, decodable by the
    independent decoder."""
    svc = SVC + "-traces"
    recv = Receiver()
    n_users, n_slow = 6, 2
    with NodeApp({"OTEL_SERVICE_NAME": svc}) as app:
        with ks.Agent("--traces", "--otlp-endpoint",
                      "http://127.0.0.1:%d" % recv.port,
                      "--otlp-interval", "1s") as agent:
            for i in range(n_users):
                ks.http_get("%s/users/%d" % (app.url, i))
            for _ in range(n_slow):
                ks.http_get(app.url + "/slow?ms=30")

            def spans():
                out = []
                for q in recv.snapshot():
                    if q["path"] != "/v1/traces":
                        continue
                    d = ks.otlp_decode(q["raw"], "traces")
                    for rs in d.get("resourceSpans", []):
                        ra = ks.otlp_attrs(
                            rs.get("resource", {}).get("attributes"))
                        if ra.get("service.name") != svc:
                            continue
                        for ss in rs.get("scopeSpans", []):
                            out.extend(ss.get("spans", []))
                return out

            got = ks.wait_for(lambda: (lambda s: s if len(s) >= n_users +
                                       n_slow else None)(spans()),
                              timeout=10) or spans()
            time.sleep(2)  # one more poll: nothing is sent twice
            got = spans()
            posts = [q for q in recv.snapshot() if q["path"] == "/v1/traces"]
            r.check(all(q["headers"].get("Content-Encoding") == "gzip"
                        for q in posts) and posts,
                    "traces pushed gzip'ed to /v1/traces (%d posts)" %
                    len(posts))
            names = sorted(sp["name"] for sp in got)
            r.eq(names, sorted(["GET /users/{id}"] * n_users +
                               ["GET /slow"] * n_slow),
                 "each request pushed once as a span")
            r.check(all(sp["kind"] == "SPAN_KIND_SERVER" for sp in got),
                    "server spans")
            r.check(self_value(agent, "katascope_otlp_exported_batches_total",
                               signal="traces") >= 1,
                    "katascope_otlp_exported_batches_total{signal=traces}")
    recv.stop()


def check_push(r, recv, agent, app):
    n_users, n_slow, n_missing = 9, 2, 3
    for i in range(n_users):
        ks.http_get("%s/users/%d" % (app.url, i))
    for _ in range(n_slow):
        ks.http_get(app.url + "/slow?ms=30")
    for _ in range(n_missing):
        ks.http_get(app.url + "/missing")
    total = n_users + n_slow + n_missing
    r.check(ks.wait_for(lambda: ks.value(agent.metrics(), HIST + "_count",
                                         service_name=SVC) >= total),
            "the %d requests are in /metrics" % total)

    # The load has stopped: a push between two equal scrapes saw exactly
    # what /metrics says.
    for _ in range(20):
        before = agent.metrics()
        n = len(recv.metrics_posts())
        ks.wait_for(lambda: len(recv.metrics_posts()) > n, timeout=5,
                    interval=0.05)
        after = agent.metrics()
        posts = recv.metrics_posts()
        if svc_hist(before) == svc_hist(after) and len(posts) > n:
            break
    push = posts[n]
    prom = prom_http_points(before)
    r.eq(sum(v[0] for v in prom.values()), total,
         "/metrics counts all %d requests" % total)
    c = c_resources(decode_c(push["raw"]))
    js = js_resources(ks.otlp_decode(push["raw"]))
    r.eq(otlp_http_points(c), prom,
         "protobuf-c decode: counts, sums, buckets equal /metrics")
    r.eq(otlp_http_points(js), prom,
         "protobufjs decode: counts, sums, buckets equal /metrics")
    r.eq(sorted(c), sorted(js), "both decoders see the same resources")

    h = push["headers"]
    r.eq(push["path"], "/v1/metrics", "path appended to the endpoint")
    r.eq(h.get("Content-Type"), "application/x-protobuf", "Content-Type")
    r.eq(h.get("Content-Encoding"), "gzip", "Content-Encoding")
    r.check(push["wire"][:2] == b"\x1f\x8b" and
            len(push["wire"]) < len(push["raw"]),
            "the body is gzip (%d -> %d bytes)" % (len(push["raw"]),
                                                   len(push["wire"])))
    r.eq(h.get("x-katascope-test"), "e2e ok,1",
         "--otlp-headers value arrives %-decoded")
    r.eq(h.get("Authorization"), "Bearer abc", "Authorization header")
    r.check((h.get("User-Agent") or "").startswith("katascope/"),
            "User-Agent katascope/...")
    r.check("Expect" not in h, "no Expect: 100-continue")

    # Resource attributes, from both decoders.
    for name, res in (("protobuf-c", c), ("protobufjs", js)):
        svc = res.get(SVC, ({}, {}))[0]
        want = {"service.name": SVC, "host.name": os.uname().nodename,
                "k8s.node.name": "node-e2e", "process.pid": app.proc.pid,
                "process.executable.name": "node",
                "telemetry.sdk.name": "katascope",
                "telemetry.sdk.version": agent.health["version"]}
        cg = open("/proc/%d/cgroup" % app.proc.pid).read()
        if re.search(r"[0-9a-f]{64}", cg):
            want["container.id"] = svc.get("container.id")
            r.check(re.fullmatch(r"[0-9a-f]{64}", svc.get("container.id")
                                 or ""), "container.id of the node app")
        if "kubepods" in cg:
            want["k8s.pod.uid"] = svc.get("k8s.pod.uid")
        r.eq(svc, want, "%s: the service's resource" % name)
        own = res.get("katascope", ({}, {}))[0]
        r.eq({k: own.get(k) for k in ("process.pid", "k8s.namespace.name",
                                      "k8s.pod.name", "k8s.node.name",
                                      "process.executable.name",
                                      "telemetry.sdk.language")},
             {"process.pid": agent.proc.pid, "k8s.namespace.name": "ks-ns",
              "k8s.pod.name": "katascope-e2e-pod",
              "k8s.node.name": "node-e2e",
              "process.executable.name": "katascope",
              "telemetry.sdk.language": None},
             "%s: the agent's own resource" % name)

    # Every request the receiver answered is counted, once.
    def counts():
        m = agent.metrics()
        return (ks.value(m, "katascope_otlp_requests_total",
                         signal="metrics", outcome="success"),
                ks.value(m, "katascope_otlp_exported_batches_total",
                         signal="metrics"))
    got = ks.wait_for(lambda: counts()[0] == len(recv.metrics_posts()) and
                      counts(), timeout=3, interval=0.05)
    r.check(got, "requests_total{success} == exported == POSTs received")
    if got:
        r.eq(got[0], got[1], "every success exported one batch")
    r.check(ks.value(agent.metrics(),
                     "katascope_otlp_last_success_timestamp_seconds",
                     signal="metrics") > time.time() - 5,
            "last success timestamp is recent")
    r.eq([p["path"] for p in recv.snapshot() if p["path"] != "/v1/metrics"],
         [], "nothing else POSTed (no trace source yet)")
    healthy(r, agent, "normal")


def wait_mode_done(recv, mode, count):
    """Until count requests were answered in mode and one more ok came."""
    def done():
        reqs = recv.metrics_posts()
        hit = [i for i, q in enumerate(reqs) if q["mode"] == mode]
        return (len(hit) == count and len(reqs) > hit[-1] + 1 and
                "status" in reqs[-1] and reqs[-1]["status"] == 200)
    return ks.wait_for(done, timeout=20, interval=0.05)


def counter(agent, name, **labels):
    return ks.value(agent.metrics(), name, signal="metrics", **labels)


def check_400(r, recv, agent):
    retries0 = counter(agent, "katascope_otlp_retries_total")
    recv.set_mode("400", 2)
    r.check(wait_mode_done(recv, "400", 2), "two 400s, then an ok")
    reqs = recv.metrics_posts()
    bad = [i for i, q in enumerate(reqs) if q["mode"] == "400"]
    # Not retried: the request after a 400 carries a newer snapshot.
    r.check(all(reqs[i]["raw"] != reqs[i + 1]["raw"] for i in bad),
            "a batch answered 400 is never sent again")
    r.eq(ks.wait_for(lambda: counter(
        agent, "katascope_otlp_requests_total", outcome="rejected") == 2 and
        counter(agent, "katascope_otlp_dropped_batches_total",
                reason="non_retryable"), timeout=3), 2,
        "400: requests{rejected} == dropped{non_retryable} == 2")
    r.check(counter(agent, "katascope_otlp_dropped_bytes_total",
                    reason="non_retryable") ==
            sum(len(reqs[i]["raw"]) for i in bad),
            "dropped bytes == the two bodies' encoded size")
    r.eq(counter(agent, "katascope_otlp_retries_total"), retries0,
         "no retries after a 400")
    healthy(r, agent, "400")


def check_503(r, recv, agent):
    retries0 = counter(agent, "katascope_otlp_retries_total")
    recv.set_mode("503", 2)
    r.check(wait_mode_done(recv, "503", 2), "two 503s, then an ok")
    reqs = recv.metrics_posts()
    i = [k for k, q in enumerate(reqs) if q["mode"] == "503"][0]
    a, b, c = reqs[i], reqs[i + 1], reqs[i + 2]
    r.check(a["raw"] == b["raw"] == c["raw"],
            "the same batch is re-sent after each 503")
    gaps = [b["t_in"] - a["t_out"], c["t_in"] - b["t_out"]]
    r.check(all(g >= 0.99 for g in gaps),
            "Retry-After: 1 honoured: re-sent after %s s" %
            ", ".join("%.3f" % g for g in gaps))
    r.check(all(g < 3 for g in gaps), "and not much later")
    r.eq(ks.wait_for(lambda: counter(agent, "katascope_otlp_retries_total") -
                     retries0 == 2 and 2, timeout=3), 2,
         "503: retries_total +2")
    r.eq(counter(agent, "katascope_otlp_requests_total",
                 outcome="retryable"), 2, "requests{retryable} == 2")
    healthy(r, agent, "503")


def check_slow(r, recv, agent):
    retries0 = counter(agent, "katascope_otlp_retries_total")
    recv.set_mode("slow", 2)
    r.check(wait_mode_done(recv, "slow", 2), "two slow answers, then an ok")
    reqs = recv.metrics_posts()
    i = [k for k, q in enumerate(reqs) if q["mode"] == "slow"][0]
    r.check(reqs[i]["raw"] == reqs[i + 1]["raw"] == reqs[i + 2]["raw"],
            "the timed-out batch is re-sent")
    waited = reqs[i + 1]["t_in"] - reqs[i]["t_in"]
    r.check(waited >= TIMEOUT_S + 0.5 * 1.0 - 0.01,
            "re-sent after the timeout plus backoff (%.3f s)" % waited)
    r.eq(counter(agent, "katascope_otlp_requests_total", outcome="timeout"),
         2, "slow: requests{timeout} == 2")
    r.eq(counter(agent, "katascope_otlp_retries_total") - retries0, 2,
         "slow: retries_total +2")
    healthy(r, agent, "slow")


def check_down(r, recv, agent):
    port = recv.port
    recv.stop()
    ok = ks.wait_for(lambda: counter(agent, "katascope_otlp_requests_total",
                                     outcome="network_error") >= 2,
                     timeout=10, interval=0.1)
    r.check(ok, "collector down: network errors counted")
    # Nothing is in flight to the old receiver any more.
    exported0 = counter(agent, "katascope_otlp_exported_batches_total")
    healthy(r, agent, "down")
    queued = ks.wait_for(lambda: ks.value(agent.metrics(),
                                          "katascope_otlp_queue_batches"),
                         timeout=3, interval=0.1)
    r.check(queued >= 1, "batches wait in the queue (%d)" % queued)
    recv2 = Receiver(port)
    ok = ks.wait_for(lambda: ks.value(agent.metrics(),
                                      "katascope_otlp_queue_batches") == 0
                     and len(recv2.metrics_posts()) > queued,
                     timeout=15, interval=0.1)
    r.check(ok, "collector back: the queued batches arrive")
    posts = recv2.metrics_posts()
    times = []
    for p in posts:
        c = decode_c(p["raw"])
        own = [m for res in c["resources"]
               if res["attributes"]["service.name"] == "katascope"
               for m in res["metrics"]]
        times.append(max(int(pt["time"]) for m in own for pt in m["points"]))
    r.check(times == sorted(times) and len(set(times)) == len(times),
            "in the order they were taken")
    got = ks.wait_for(lambda: counter(
        agent, "katascope_otlp_exported_batches_total") - exported0 ==
        len(recv2.metrics_posts()), timeout=3)
    r.check(got, "exported_batches counts each batch the collector got")
    r.eq(counter(agent, "katascope_otlp_dropped_batches_total",
                 reason="retries_exhausted") +
         counter(agent, "katascope_otlp_dropped_batches_total",
                 reason="queue_full"), 0, "nothing lost in the outage")
    return recv2


def check_accounting(r, agent):
    """Once the queue is empty, every request is accounted for exactly:
    each ended a batch (exported or dropped) or was followed by a retry."""
    def balanced():
        m = agent.metrics()

        def v(name, **kw):
            return ks.value(m, name, signal="metrics", **kw)
        reqs = v("katascope_otlp_requests_total")
        ends = (v("katascope_otlp_exported_batches_total") +
                v("katascope_otlp_dropped_batches_total",
                  reason="non_retryable") +
                v("katascope_otlp_dropped_batches_total",
                  reason="retries_exhausted") +
                v("katascope_otlp_retries_total"))
        return (reqs, ends) if reqs == ends else None
    got = ks.wait_for(balanced, timeout=5, interval=0.05)
    r.check(got, "requests == exported + dropped + retries (%s)" % (got,))


def check_stop_hanging(r, recv, agent):
    n = len(recv.metrics_posts())
    recv.set_mode("hang")
    ks.wait_for(lambda: len(recv.metrics_posts()) > n, timeout=5,
                interval=0.05)
    t0 = time.time()
    agent.stop()  # asserts exit 0 (and no sanitizer report)
    took = time.time() - t0
    r.check(took < 5, "SIGTERM with the collector hanging: exit 0 in %.1f s"
            % took)
    r.check("stopping" in open(agent.log.name).read(), "agent logged stop")


if __name__ == "__main__":
    main()
