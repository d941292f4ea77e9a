"""TCP telemetry end to end: exactly N connections and M refused connects,
made by processes named with OTEL_SERVICE_NAME, are counted for the right
service on both sides; bytes and closes add up."""
import os
import subprocess
import sys
import textwrap

import ks

N, M = 25, 7
PAYLOAD = 1000  # bytes the client sends on each connection

SERVER = textwrap.dedent("""
    import socket, sys
    s = socket.socket()
    s.bind(("127.0.0.1", 0)); s.listen(128)
    print(s.getsockname()[1], flush=True)
    for _ in range(int(sys.argv[1])):
        c, _ = s.accept()
        got = 0
        while got < %d:
            b = c.recv(65536)
            if not b: break
            got += len(b)
        c.sendall(b"k")
        c.close()
""" % PAYLOAD)

CLIENT = textwrap.dedent("""
    import socket, sys
    port, closed, n, m = map(int, sys.argv[1:5])
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(b"x" * %d)
        c.recv(1)
        c.close()
    refused = 0
    for _ in range(m):
        try:
            socket.create_connection(("127.0.0.1", closed)).close()
        except ConnectionRefusedError:
            refused += 1
    print(refused)
""" % PAYLOAD)


def main():
    ks.require_root()
    r = ks.Result("tcp")
    env = dict(os.environ)
    with ks.Agent() as agent:
        env["OTEL_SERVICE_NAME"] = "ks-e2e-server"
        srv = subprocess.Popen([sys.executable, "-c", SERVER, str(N)],
                               env=env, stdout=subprocess.PIPE, text=True)
        port = int(srv.stdout.readline())
        closed = ks.free_port()  # nothing listens there
        env["OTEL_SERVICE_NAME"] = "ks-e2e-client"
        out = subprocess.run([sys.executable, "-c", CLIENT, str(port),
                              str(closed), str(N), str(M)], env=env,
                             capture_output=True, text=True, check=True)
        r.eq(int(out.stdout), M, "client saw every refused connect")
        srv.wait(10)

        def counts():
            s = agent.metrics()
            return {
                "server_passive": ks.value(
                    s, "katascope_tcp_connections_opened_total",
                    service_name="ks-e2e-server", direction="passive"),
                "client_active": ks.value(
                    s, "katascope_tcp_connections_opened_total",
                    service_name="ks-e2e-client", direction="active"),
                "client_failed": ks.value(
                    s, "katascope_tcp_connect_failed_total",
                    service_name="ks-e2e-client"),
                "server_closed": ks.value(
                    s, "katascope_tcp_connections_closed_total",
                    service_name="ks-e2e-server", direction="passive"),
                "client_closed": ks.value(
                    s, "katascope_tcp_connections_closed_total",
                    service_name="ks-e2e-client", direction="active"),
                "server_rx": ks.value(
                    s, "katascope_tcp_received_bytes_total",
                    service_name="ks-e2e-server"),
                "client_tx": ks.value(
                    s, "katascope_tcp_sent_bytes_total",
                    service_name="ks-e2e-client"),
                "connect_hist": ks.value(
                    s, "katascope_tcp_connect_duration_seconds_count",
                    service_name="ks-e2e-client"),
                "server_active": ks.value(
                    s, "katascope_tcp_connections_opened_total",
                    service_name="ks-e2e-server", direction="active"),
                "client_passive": ks.value(
                    s, "katascope_tcp_connections_opened_total",
                    service_name="ks-e2e-client", direction="passive"),
            }

        want = {"server_passive": N, "client_active": N, "client_failed": M,
                "server_closed": N, "client_closed": N,
                "server_rx": N * PAYLOAD, "client_tx": N * PAYLOAD,
                "connect_hist": N, "server_active": 0, "client_passive": 0}
        got = ks.wait_for(lambda: (lambda c: c if c == want else None)(
            counts()), timeout=10) or counts()
        for k in sorted(want):
            r.eq(got[k], want[k], k)
        # The agent's own scrapes are not a monitored service's traffic.
        s = agent.metrics()
        r.eq(ks.value(s, "katascope_tcp_connections_opened_total",
                      service_name=agent.self_name), 0,
             "agent's own connections not counted")
        r.eq(ks.value(s, "katascope_ringbuf_lost_total"), 0,
             "no ring-buffer record lost")
    r.done()


if __name__ == "__main__":
    main()
