"""More of the HTTP contract, end to end:
- every write path (write, writev, sendmsg, sendfile; reads by recvmsg) of a
  raw-socket server is counted exactly;
- the last exchange of an idle keep-alive connection is ended by the idle
  sweep within 2 s, and a response pausing longer than a second mid-body is
  cut at the pause and counted as cut;
- a Node service calling another over HTTP gets
  http_client_request_duration_seconds with the upstream's address, port
  and status, as many as it made;
- a client whose socket's fd is taken over by another connection (dup2,
  no close) reports the second exchange with the new connection's port;
- an exchange a server answers just before its process exits (no close)
  is counted at once, not after the idle sweep's second;
- requests of a label set seen before are counted in the kernel: exact
  counts and buckets with far fewer records than requests, ids merged,
  query strings ignored, requests the agent cannot parse still counted as
  unparsed;
- the per-service route guard turns the 11th and later distinct values at
  one path position into '*', and counts each request it rewrote;
- --max-series caps label sets, the rest going to one series labelled
  otel_metric_overflow="true"."""
import os
import socket
import subprocess
import sys
import time

import ks
import services

SRV = "http_server_request_duration_seconds"
CLI = "http_client_request_duration_seconds"


def start_raw():
    app = os.path.join(ks.SRC, "tests", "e2e", "app", "rawserver.py")
    env = dict(os.environ, OTEL_SERVICE_NAME="ks-e2e-raw")
    p = subprocess.Popen([sys.executable, app], env=env,
                         stdout=subprocess.PIPE, text=True)
    return p, int(p.stdout.readline().split()[1])


def series(s, name, svc):
    out = {}
    for (n, labels), v in s.items():
        lab = dict(labels)
        if n == name and lab.get("service_name") == svc:
            out[lab.get("http_route")] = out.get(lab.get("http_route"), 0) + v
    return out


def main():
    ks.require_root()
    r = ks.Result("http_paths")
    raw, raw_port = start_raw()
    try:
        with services.NodeApp({"OTEL_SERVICE_NAME": "ks-e2e-upstream"}) as up, \
                services.NodeApp({"OTEL_SERVICE_NAME": "ks-e2e-front",
                                  "UPSTREAM_PORT": str(up.port)}) as front:
            with ks.Agent() as agent:
                write_paths(r, agent, raw_port)
                client_calls(r, agent, front, up)
                fd_reuse(r, agent, raw_port, up)
                exit_server(r, agent)
                kernel_counted(r, agent, up)
                route_guard(r, agent, up)
            with ks.Agent("--max-series", "5") as agent:
                overflow(r, agent, up)
    finally:
        raw.kill()
        raw.wait()
    r.done()


def write_paths(r, agent, port):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port)
    paths = ["/write", "/writev", "/sendmsg", "/sendfile"]
    for _ in range(3):
        for p in paths:
            c.request("GET", p)
            resp = c.getresponse()
            r.eq(len(resp.read()), 3000, p + " body")
    c.close()
    want = {p: 3 for p in paths}
    got = ks.wait_for(lambda: (lambda g: g if g == want else None)(
        series(agent.metrics(), SRV + "_count", "ks-e2e-raw")), 10) or \
        series(agent.metrics(), SRV + "_count", "ks-e2e-raw")
    for p in paths:
        r.eq(got.get(p, 0), 3, "requests answered by %s" % p[1:])
    s = agent.metrics()
    r.eq(ks.value(s, "katascope_http_server_ended_idle_total",
                  service_name="ks-e2e-raw"), 0,
         "closed connections: no exchange ended by the idle sweep")
    idle_end(r, agent, port)


def idle_end(r, agent, port):
    import http.client

    def count(route):
        return series(agent.metrics(), SRV + "_count",
                      "ks-e2e-raw").get(route, 0)

    def calls():  # this test's own, as an HTTP client
        return ks.value(agent.metrics(), CLI + "_count",
                        server_port=str(port), http_request_method="GET",
                        http_response_status_code="200")

    # write_paths' 12 calls first (their connection's close ended them).
    ks.wait_for(lambda: calls() >= 12, 4, 0.05)
    calls0 = calls()
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", "/write")
    r.eq(len(c.getresponse().read()), 3000, "keep-alive /write body")
    t0 = time.monotonic()
    got = ks.wait_for(lambda: count("/write") == 4, 4, 0.05)
    took = time.monotonic() - t0
    r.check(got and took <= 2.0, "the last exchange of an idle keep-alive "
            "connection counted within 2 s (%s after %.2f s)" %
            (count("/write"), took))
    got = ks.wait_for(lambda: calls() == calls0 + 1, 4, 0.05)
    took = time.monotonic() - t0
    r.check(got and took <= 2.0, "... and the client's call too (%s after "
            "%.2f s)" % (calls() - calls0, took))
    r.check(took >= 0.9, "... and not before its second of silence "
            "(%.2f s)" % took)
    r.eq(ks.value(agent.metrics(), "katascope_http_server_ended_idle_total",
                  service_name="ks-e2e-raw"), 1, "ended by the idle sweep")
    # 1.6 s of silence mid-body: the exchange ends at the pause, and the
    # bytes after it are counted as a cut response.
    t0 = time.monotonic()
    c.request("GET", "/pause")
    r.eq(len(c.getresponse().read()), 3000, "/pause body, whole")
    r.check(time.monotonic() - t0 >= 1.6, "/pause paused")
    ks.wait_for(lambda: count("/pause") == 1, 4, 0.05)
    s = agent.metrics()
    r.eq(count("/pause"), 1, "/pause counted once")
    dur = ks.value(s, SRV + "_sum", service_name="ks-e2e-raw",
                   http_route="/pause")
    r.check(dur < 0.5, "/pause's duration ends at its pause (%.3f s)" % dur)
    ks.wait_for(lambda: ks.value(agent.metrics(),
                                 "katascope_http_responses_cut_total") >= 2,
                4)  # self-metrics follow the refresh interval
    s = agent.metrics()
    r.check(any(n == "katascope_http_responses_cut_total" for n, _ in s),
            "katascope_http_responses_cut_total is served")
    # This test's own client reads the answer after the same pause.
    r.eq(ks.value(s, "katascope_http_responses_cut_total"), 2,
         "the bytes after the pause counted as a cut response, server "
         "and client side")
    c.close()


def client_calls(r, agent, front, up):
    for i in range(4):
        st, _, _ = ks.http_get(front.url + "/proxy?path=/users/%d" % i)
        r.eq(st, 200, "proxied call")
    for _ in range(2):
        st, _, _ = ks.http_get(front.url + "/proxy?path=/nope")
        r.eq(st, 404, "proxied 404")
    for _ in range(3):  # the upstream waits 30 ms before it answers
        st, _, _ = ks.http_get(front.url + "/proxy?path=/slow%3Fms%3D30")
        r.eq(st, 200, "proxied slow call")

    def n(status, suffix="_count", **le):
        return ks.value(agent.metrics(), CLI + suffix,
                        service_name="ks-e2e-front",
                        server_address="127.0.0.1",
                        server_port=str(up.port),
                        http_request_method="GET",
                        http_response_status_code=status, **le)
    ks.wait_for(lambda: n("200") == 7 and n("404") == 2, 10)
    r.eq(n("200"), 7, "client calls with status 200")
    r.eq(n("404"), 2, "client calls with status 404")
    # A call lasts at least what the upstream waited: the three slow
    # ones are above 25 ms (in the kernel's buckets as in the agent's).
    fast = n("200", "_bucket", le="0.025")
    r.check(fast <= 4, "calls at or below 25 ms: %d, at most the 4 fast "
            "ones" % fast)
    r.check(n("200", "_bucket", le="+Inf") == 7, "every call in +Inf")
    s = agent.metrics()
    up_200 = ks.value(s, SRV + "_count", service_name="ks-e2e-upstream",
                      http_route="/users/{id}")
    r.check(up_200 >= 4, "the upstream saw them as server requests")
    cli = ks.value(s, CLI + "_sum", service_name="ks-e2e-front")
    srv = ks.value(s, SRV + "_sum", service_name="ks-e2e-upstream")
    r.check(cli >= srv > 0, "each call lasts at least its upstream request "
            "(client %.4f s, server %.4f s)" % (cli, srv))


# Two keep-alive GETs on one fd: the first to the raw server, then the fd
# is taken over by a connection to the upstream (dup2 closes the first
# socket without close()) for the second; the process exits without
# closing it.
FD_REUSE = r"""
import os, socket, sys, time
def get(fd, path):
    os.write(fd, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += os.read(fd, 65536)
    head, body = buf.split(b"\r\n\r\n", 1)
    n = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
         if l.lower().startswith(b"content-length:")][0]
    while len(body) < n:
        body += os.read(fd, 65536)
a = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
get(a.fileno(), b"/write")
b = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
os.dup2(b.fileno(), a.fileno())
get(a.fileno(), b"/users/7")
os._exit(0)
"""


def fd_reuse(r, agent, raw_port, up):
    env = dict(os.environ, OTEL_SERVICE_NAME="ks-e2e-fdreuse")
    out = subprocess.run([sys.executable, "-c", FD_REUSE, str(raw_port),
                          str(up.port)], env=env, capture_output=True,
                         text=True, timeout=30)
    r.eq(out.returncode, 0, "fd-reuse client ran (%s)" % out.stderr[-200:])

    def n(port):
        return ks.value(agent.metrics(), CLI + "_count",
                        service_name="ks-e2e-fdreuse", server_port=str(port),
                        http_response_status_code="200")
    ks.wait_for(lambda: n(raw_port) + n(up.port) >= 2, 5)
    r.eq(n(raw_port), 1, "the first exchange, on the first connection")
    r.eq(n(up.port), 1, "the second, on the connection that took its fd "
         "over, with that connection's port")


# A one-request server: answers, then exits without closing the socket.
# Prints its port, then the time it exits.
EXIT_SERVER = r"""
import os, socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
buf = b""
while b"\r\n\r\n" not in buf:
    buf += c.recv(65536)
c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
time.sleep(0.05)
print(time.monotonic(), flush=True)
os._exit(0)
"""


def exit_server(r, agent):
    import socket
    env = dict(os.environ, OTEL_SERVICE_NAME="ks-e2e-exitsrv")
    p = subprocess.Popen([sys.executable, "-c", EXIT_SERVER], env=env,
                         stdout=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline())
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(b"GET /bye HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while not got.endswith(b"ok"):
            more = c.recv(65536)
            if not more:
                break
            got += more
        exited = float(p.stdout.readline())
        p.wait(10)
        c.close()
    finally:
        p.kill()
        p.wait()

    def n():
        return series(agent.metrics(), SRV + "_count",
                      "ks-e2e-exitsrv").get("/bye", 0)
    ks.wait_for(lambda: n() == 1, 0.7, 0.05)
    took = time.monotonic() - exited
    r.eq(n(), 1, "an exchange answered just before its server exited "
         "counted at once (%.2f s after the exit, before any idle sweep)"
         % took)


def kernel_counted(r, agent, up):
    import http.client
    les = ("0.01", "0.025", "0.05", "+Inf")

    def slow_buckets(s):
        return {le: ks.value(s, SRV + "_bucket",
                             service_name="ks-e2e-upstream",
                             http_route="/slow", le=le) for le in les}
    time.sleep(1.2)  # the self-metrics are refreshed every second
    s0 = agent.metrics()
    records0 = ks.value(s0, "katascope_events_total", type="l7")
    slow0 = slow_buckets(s0)
    c = http.client.HTTPConnection("127.0.0.1", up.port)
    for i in range(40):  # one route and status, 40 ids, with queries
        c.request("GET", "/items/%d?page=%d" % (i * 7919, i))
        c.getresponse().read()
    for _ in range(4):  # 12 ms and 30 ms: buckets 0.025 and 0.05
        c.request("GET", "/slow?ms=12")
        c.getresponse().read()
        c.request("GET", "/slow?ms=30")
        c.getresponse().read()
    c.request("GET", "/users/1")  # ends the last /slow exchange
    c.getresponse().read()
    c.close()

    def got():
        s = agent.metrics()
        return (series(s, SRV + "_count", "ks-e2e-upstream"),
                slow_buckets(s))
    ks.wait_for(lambda: got()[0].get("/items/{id}") == 40 and
                got()[1]["+Inf"] - slow0["+Inf"] == 8, 10)
    g, b = got()
    b = {le: b[le] - slow0[le] for le in les}
    r.eq(g.get("/items/{id}"), 40, "40 requests, one label set, all counted")
    r.eq(b["+Inf"], 8, "8 /slow requests counted")
    r.check(b["0.01"] == 0 and b["0.025"] <= 4,
            "no /slow request below what it waited (new in buckets: %s)" % b)
    time.sleep(1.2)
    records = ks.value(agent.metrics(), "katascope_events_total",
                       type="l7") - records0
    r.check(1 <= records <= 20, "%d kernel records for 49 requests on one "
            "connection: the kernel counted most of them" % records)

    # A method the agent's parser does not know (Node answers 400 and
    # closes): the first request's record names its slot unparsed, and the
    # ones the kernel counts after it are unparsed too.
    def unparsed():
        return ks.value(agent.metrics(),
                        "katascope_http_server_requests_unparsed_total",
                        service_name="ks-e2e-upstream")
    u0 = unparsed()
    for _ in range(3):
        sk = socket.create_connection(("127.0.0.1", up.port))
        sk.sendall(b"DELEX /a HTTP/1.1\r\nHost: x\r\n\r\n")
        while sk.recv(4096):
            pass
        sk.close()
    ks.wait_for(lambda: unparsed() - u0 == 3, 10)
    r.eq(unparsed() - u0, 3, "requests of an unknown method: unparsed")


def route_guard(r, agent, up):
    names = ["alice", "bob", "carol", "dave", "erin", "frank", "grace",
             "heidi", "ivan", "judy", "mallory", "niaj", "olivia"]
    for nm in names:
        ks.http_get(up.url + "/people/" + nm)
    # Again on one connection: the kernel counts these in the slots the
    # first ones claimed, and each rewrite still counts.
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", up.port)
    for nm in ["olivia", "alice"] * 3:
        c.request("GET", "/people/" + nm)
        c.getresponse().read()
    c.close()
    want = {"/people/" + nm: 1 for nm in names[:10]}
    want["/people/alice"] = 4
    want["/people/*"] = 6

    def got():
        s = series(agent.metrics(), SRV + "_count", "ks-e2e-upstream")
        return {k: v for k, v in s.items() if k.startswith("/people/")}
    g = ks.wait_for(lambda: (lambda x: x if x == want else None)(got()),
                    10) or got()
    r.eq(g, want, "10 distinct values kept, later ones collapse to *")
    r.eq(ks.value(agent.metrics(), "katascope_http_route_collapsed_total",
                  service_name="ks-e2e-upstream"), 6, "collapses counted")


def overflow(r, agent, up):
    routes = ["/o%d" % i for i in range(8)]
    for p in routes:
        ks.http_get(up.url + p)

    def state():
        s = agent.metrics()
        normal = [l for (n, l), v in s.items() if n == SRV + "_count" and
                  "otel_metric_overflow" not in dict(l)]
        over = ks.value(s, SRV + "_count", otel_metric_overflow="true")
        return len(normal), over, s
    n, over, s = ks.wait_for(lambda: (lambda t: t if t[0] == 5 and
                                      t[0] + t[1] >= 8 else None)(state()),
                             10) or state()
    r.eq(n, 5, "--max-series 5: five label sets")
    r.check(n + over >= len(routes), "the rest counted in the overflow "
            "series (%d)" % over)
    r.check(ks.value(s, "katascope_metric_overflow_total") >= over,
            "overflow self-metric")


if __name__ == "__main__":
    main()
