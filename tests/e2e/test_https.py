"""HTTPS inside Node, end to end: OpenSSL's SSL_read/SSL_write in the node
binary give the plaintext, so requests to a Node HTTPS server (self-signed
certificate made by the test with the openssl CLI, clients curl -k) are in
http_server_request_duration_seconds like plain ones, with
url_scheme="https" and the listening port; the encrypted bytes on the
socket are never mistaken for requests."""
import os
import subprocess
import tempfile

import ks
import services

SVC = "ks-e2e-https"
M = "http_server_request_duration_seconds_count"


def main():
    ks.require_root()
    r = ks.Result("https")
    tmp = tempfile.mkdtemp()
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                    "-subj", "/CN=localhost"], check=True,
                   capture_output=True)
    with services.NodeApp({"OTEL_SERVICE_NAME": SVC, "TLS_CERT": cert,
                           "TLS_KEY": key}) as app:
        base = "https://127.0.0.1:%d" % app.port
        with ks.Agent() as agent:
            for i in range(5):
                out = subprocess.run(["curl", "-sk", base + "/users/%d" % i],
                                     capture_output=True, text=True)
                r.check('"id"' in out.stdout, "curl -k answered")
            # keep-alive: three requests on one TLS connection
            subprocess.run(["curl", "-sk", base + "/users/1", base +
                            "/users/2", base + "/nope"], capture_output=True)

            def got():
                s = agent.metrics()
                return (ks.value(s, M, service_name=SVC, url_scheme="https",
                                 http_route="/users/{id}",
                                 http_response_status_code="200",
                                 server_port=str(app.port)),
                        ks.value(s, M, service_name=SVC, url_scheme="https",
                                 http_route="/nope",
                                 http_response_status_code="404"),
                        ks.value(s, M, service_name=SVC, url_scheme="http"))
            ks.wait_for(lambda: got() == (7, 1, 0), 10)
            ok, nope, plain = got()
            r.eq(ok, 7, "HTTPS requests counted with url_scheme=https and "
                 "the server port")
            r.eq(nope, 1, "HTTPS 404 counted")
            r.eq(plain, 0, "no encrypted bytes taken for plain HTTP")
    r.done()


if __name__ == "__main__":
    main()
