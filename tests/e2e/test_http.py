"""HTTP server requests end to end: a real Node server, started before the
agent, with a keep-alive connection opened before the agent too; an exact
mix of requests (keep-alive and new connections, pipelined, split over
reads, 1 MiB uploads, chunked, HEAD, 204, 404, 500, aborted) is counted
exactly per label set, and every /slow request lands in the bucket of the
time the server really waited."""
import http.client
import json
import os
import socket
import subprocess
import time
import uuid

import ks

METRIC = "http_server_request_duration_seconds"
SVC = "ks-e2e-api"


def start_node():
    app = os.path.join(ks.SRC, "tests", "e2e", "app", "server.js")
    env = dict(os.environ, OTEL_SERVICE_NAME=SVC)
    p = subprocess.Popen(["node", app, "0"], env=env, stdout=subprocess.PIPE,
                         text=True)
    line = p.stdout.readline().split()
    assert line and line[0] == "ready", line
    return p, int(line[1])


def raw(port, data, read_until=None, pause=0.0):
    """Send data (bytes, or a list of pieces sent with pauses) on a new
    connection; return what came back once read_until responses arrived."""
    s = socket.create_connection(("127.0.0.1", port))
    for piece in (data if isinstance(data, list) else [data]):
        s.sendall(piece)
        time.sleep(pause)
    got = b""
    while read_until and got.count(b"HTTP/1.1 ") < read_until:
        b = s.recv(65536)
        if not b:
            break
        got += b
    time.sleep(0.05)
    s.close()
    return got


def req(path):
    return b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode()


def main():
    ks.require_root()
    r = ks.Result("http")
    node, port = start_node()
    try:
        early = http.client.HTTPConnection("127.0.0.1", port)
        early.request("GET", "/users/0")  # before the agent: not counted
        early.getresponse().read()
        with ks.Agent() as agent:
            run_mix(r, agent, port, early)
    finally:
        node.kill()
        node.wait()
    r.done()


def run_mix(r, agent, port, early):
    want = {}  # (method, route, status) -> count

    def expect(method, route, status, n=1):
        k = (method, route, str(status))
        want[k] = want.get(k, 0) + n

    # The connection opened before the agent started.
    for i in range(5):
        early.request("GET", "/pre/%d" % i)
        early.getresponse().read()
    expect("GET", "/pre/{id}", 200, 5)

    ka = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(20):
        ka.request("GET", "/users/%d" % (1000 + i))
        ka.getresponse().read()
    expect("GET", "/users/{id}", 200, 20)
    for _ in range(10):
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("GET", "/users/%s" % uuid.uuid4())
        c.getresponse().read()
        c.close()
    expect("GET", "/users/{id}", 200, 10)

    slow = [30, 60, 180, 400] * 2
    waited = []
    for ms in slow:
        ka.request("GET", "/slow?ms=%d" % ms)
        waited.append(json.loads(ka.getresponse().read())["waited_ms"])
    expect("GET", "/slow", 200, len(slow))

    for _ in range(5):
        ka.request("GET", "/error")
        ka.getresponse().read()
        ka.request("GET", "/nope")
        ka.getresponse().read()
    expect("GET", "/error", 500, 5)
    expect("GET", "/nope", 404, 5)

    for _ in range(3):  # three requests in one write, answered in order
        got = raw(port, req("/users/1") + req("/users/2") + req("/users/3"),
                  read_until=3)
        r.eq(got.count(b"HTTP/1.1 200"), 3, "pipelined batch answered")
    expect("GET", "/users/{id}", 200, 9)

    # A request whose head arrives in three pieces, 30 ms apart.
    got = raw(port, [b"GET /users/77 HTTP/1.1\r\n", b"Host: x\r\n",
                     b"\r\n"], read_until=1, pause=0.03)
    r.check(b"200 OK" in got, "split request answered")
    expect("GET", "/users/{id}", 200, 1)

    body = b"y" * (1 << 20)
    for _ in range(2):
        ka.request("POST", "/upload", body=body)
        r.eq(json.loads(ka.getresponse().read())["bytes"], len(body),
             "1 MiB upload received")
    expect("POST", "/upload", 200, 2)

    # Expect: 100-continue: the interim 100 answer is not the response.
    with open("/tmp/ks-e2e-body", "wb") as f:
        f.write(b"z" * 200000)
    for _ in range(2):
        out = subprocess.run(
            ["curl", "-s", "-H", "Expect: 100-continue", "--data-binary",
             "@/tmp/ks-e2e-body", "http://127.0.0.1:%d/upload" % port],
            capture_output=True, text=True, timeout=30).stdout
        r.check('"bytes":200000' in out, "100-continue upload: %s" % out)
    expect("POST", "/upload", 200, 2)

    for _ in range(3):
        ka.request("GET", "/chunked")
        ka.getresponse().read()
    expect("GET", "/chunked", 200, 3)
    for _ in range(2):
        ka.request("HEAD", "/users/5")
        ka.getresponse().read()
        ka.request("GET", "/empty")
        ka.getresponse().read()
        ka.request("GET", "/big?kb=512")
        r.eq(len(ka.getresponse().read()), 512 * 1024, "512 KiB body")
    expect("HEAD", "/users/{id}", 200, 2)
    expect("GET", "/empty", 204, 2)
    expect("GET", "/big", 200, 2)

    for _ in range(2):  # the client gives up before any answer
        raw(port, req("/hold"), pause=0.1)
    want[("aborted", "/hold", "-")] = 2
    ka.close()
    early.close()

    def counts():
        s = agent.metrics()
        out = {}
        for (name, labels), v in s.items():
            lab = dict(labels)
            if name == METRIC + "_count" and lab["service_name"] == SVC:
                k = (lab["http_request_method"], lab["http_route"],
                     lab["http_response_status_code"])
                out[k] = out.get(k, 0) + int(v)
            if (name == "katascope_http_server_requests_aborted_total" and
                    lab["service_name"] == SVC):
                k = ("aborted", lab["http_route"], "-")
                out[k] = out.get(k, 0) + int(v)
        return out, s

    got, s = ks.wait_for(lambda: (lambda c: c if c[0] == want else None)(
        counts()), timeout=10) or counts()
    for k in sorted(set(want) | set(got)):
        r.eq(got.get(k, 0), want.get(k, 0), "requests %s %s %s" % k)
    r.check(all(dict(l).get("server_port") == str(port)
                for (n, l), v in s.items()
                if n == METRIC + "_count" and dict(l)["service_name"] == SVC),
            "server_port label is the listening port")
    r.eq(ks.value(s, METRIC + "_count", service_name=agent.self_name), 0,
         "the agent's own HTTP is not a service's")

    # Each /slow request in the bucket of what the server really waited:
    # the measured duration is at least the wait and under 40 ms more.
    bounds = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1,
              2.5, 5, 7.5, 10]
    for b in bounds:
        lo = sum(1 for w in waited if w / 1000 <= b - 0.040)
        hi = sum(1 for w in waited if w / 1000 <= b)
        n = ks.value(s, METRIC + "_bucket", service_name=SVC,
                     http_route="/slow", le=("%g" % b))
        r.check(lo <= n <= hi, "/slow le=%g holds %d (between %d and %d)"
                % (b, n, lo, hi))
    total = ks.value(s, METRIC + "_sum", service_name=SVC,
                     http_route="/slow")
    r.check(sum(waited) / 1000 <= total <= sum(waited) / 1000 +
            0.040 * len(waited), "/slow sum %.4f s vs waited %.4f s" %
            (total, sum(waited) / 1000))
    chunked = ks.value(s, METRIC + "_sum", service_name=SVC,
                       http_route="/chunked")
    r.check(chunked >= 3 * 0.019, "chunked responses last >= 20 ms each "
            "(sum %.4f)" % chunked)
    r.eq(ks.value(s, "katascope_http_responses_cut_total"), 0,
         "no response went on after a second of silence")
    r.eq(ks.value(s, "katascope_http_server_responses_unmatched_total",
                  service_name=SVC), 0, "every response matched its request")
    r.eq(ks.value(s, "katascope_map_full_dropped_total",
                  map="request_heads"), 0, "no request head overwritten")


if __name__ == "__main__":
    main()
