"""Bad input gets one clear line and a non-zero exit, never a crash:
unknown flags and bad values (exit 2), a busy or unavailable --listen
address, and running without the needed privileges."""
import os
import shutil
import socket
import subprocess
import tempfile

import ks


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=30,
                          **kw)


def one_line(r, res, what, want_code, needle):
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    r.eq(res.returncode, want_code, what + ": exit code")
    r.check(len(lines) == 1 and needle in lines[0],
            "%s: one line naming %r: %r" % (what, needle, res.stderr))


def main():
    ks.require_root()
    r = ks.Result("cli")
    b = ks.BIN
    one_line(r, run([b, "--bogus"]), "unknown flag", 2, "--bogus")
    one_line(r, run([b, "--listen", "nohost"]), "bad --listen", 2, "--listen")
    one_line(r, run([b, "--listen", "127.0.0.1:99999"]), "bad port", 2,
             "--listen")
    one_line(r, run([b, "--pid", "x"]), "bad --pid", 2, "--pid")
    one_line(r, run([b, "--log-level", "loud"]), "bad --log-level", 2,
             "--log-level")
    one_line(r, run([b, "--probes", "node,nod"]), "bad --probes", 2,
             "--probes")
    one_line(r, run([b, "--listen"]), "missing value", 2, "--listen")
    one_line(r, run([b, "--traces", "--trace-sample-ratio", "2"]),
             "bad --trace-sample-ratio", 2, "--trace-sample-ratio")
    one_line(r, run([b, "--trace-keep-slower-than", "soon"]),
             "bad --trace-keep-slower-than", 2, "--trace-keep-slower-than")
    one_line(r, run([b, "--traces"], env=dict(os.environ,
                                              OTEL_TRACES_SAMPLER="maybe")),
             "bad OTEL_TRACES_SAMPLER", 2, "OTEL_TRACES_SAMPLER")
    one_line(r, run([b, "--otlp-endpoint", "collector:4318"]),
             "bad --otlp-endpoint", 2, "--otlp-endpoint")
    one_line(r, run([b, "--otlp-endpoint", "http://c", "--otlp-interval",
                     "15"]), "bad --otlp-interval", 2, "--otlp-interval")
    one_line(r, run([b, "--otlp-endpoint", "http://c", "--otlp-headers",
                     "token"]), "bad --otlp-headers", 2, "--otlp-headers")
    one_line(r, run([b], env=dict(os.environ,
                                  OTEL_EXPORTER_OTLP_ENDPOINT="ftp://c")),
             "bad OTEL_EXPORTER_OTLP_ENDPOINT", 2,
             "OTEL_EXPORTER_OTLP_ENDPOINT")
    res = run([b, "--help"])
    r.check(res.returncode == 0 and "--listen" in res.stdout, "--help")
    res = run([b, "--version"])
    r.check(res.returncode == 0 and res.stdout.startswith("katascope "),
            "--version")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        one_line(r, run([b, "--listen", "127.0.0.1:%d" % port]),
                 "busy port", 1, "Address already in use")
    one_line(r, run([b, "--listen", "192.0.2.1:9464"]),
             "address not on this host", 1, "192.0.2.1:9464")

    # Privileges: an unprivileged user, and root without CAP_BPF/SYS_ADMIN.
    d = tempfile.mkdtemp()
    os.chmod(d, 0o755)
    copy = os.path.join(d, "katascope")
    shutil.copy(b, copy)
    os.chmod(copy, 0o755)
    one_line(r, run(["setpriv", "--reuid=65534", "--regid=65534",
                     "--clear-groups", copy]),
             "not root", 1, "missing capability CAP_BPF")
    one_line(r, run(["capsh", "--drop=cap_bpf,cap_sys_admin", "--",
                     "-c", "exec " + copy]),
             "root without CAP_BPF", 1, "missing capability CAP_BPF")
    one_line(r, run(["capsh", "--drop=cap_sys_ptrace", "--",
                     "-c", "exec " + copy]),
             "root without CAP_SYS_PTRACE", 1,
             "missing capability CAP_SYS_PTRACE")
    shutil.rmtree(d)
    r.done()


if __name__ == "__main__":
    main()
