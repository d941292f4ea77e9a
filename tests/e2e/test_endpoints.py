"""The HTTP surface: /healthz lists every probe group and says they attached,
/ lists the endpoints, unknown paths are 404 and other methods 405, /metrics
passes `promtool check metrics`, and docs/metrics.md lists exactly the
metrics the agent serves, with their types."""
import json
import os
import re
import subprocess
import urllib.request

import ks


def doc_metrics():
    path = os.path.join(ks.SRC, "docs", "metrics.md")
    rows = {}
    for line in open(path):
        m = re.match(r"^\| `([a-z0-9_:]+)` \| (counter|gauge|histogram) \|", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def served_metrics(text):
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def main():
    ks.require_root()
    r = ks.Result("endpoints")
    with ks.Agent() as agent:
        h = agent.health
        names = {g["name"]: g for g in h["groups"]}
        r.eq(sorted(names), ["http", "node", "pgstatements", "postgres",
                             "process", "profile", "sched", "tcp"],
             "probe groups listed")
        st = names.pop("pgstatements")
        r.check(not st["enabled"] and not st["attached"] and
                "not in the default set" in st["error"],
                "pgstatements left out by default: %s" % st["error"])
        for g in names.values():
            if g["name"] in ("postgres", "node") and not g["attached"]:
                # Attached when such a process runs; until then it says
                # so.
                r.check("attached when one runs" in g["error"],
                        "group %s waits for its process: %s" % (g["name"],
                                                               g["error"]))
                continue
            r.check(g["attached"] and g["programs"] > 0 and not g["error"],
                    "group %s attached (%d programs)" % (g["name"],
                                                         g["programs"]))
        r.eq(h["status"], "ok", "health status")
        r.check(h["processes_tracked"] > 0, "processes tracked")

        st, hdr, body = ks.http_get(agent.url + "/")
        r.check(st == 200 and "/metrics" in body and "/healthz" in body,
                "index lists endpoints")
        st, _, _ = ks.http_get(agent.url + "/nope")
        r.eq(st, 404, "unknown path")
        st, _, body = ks.http_get(agent.url + "/v1/traces")
        r.check(st == 404 and "--traces" in body,
                "/v1/traces without --traces: 404 naming the flag")
        req = urllib.request.Request(agent.url + "/metrics", method="POST",
                                     data=b"x")
        try:
            urllib.request.urlopen(req, timeout=5)
            st = 200
        except urllib.error.HTTPError as e:
            st = e.code
        r.eq(st, 405, "POST /metrics")

        st, hdr, text = ks.http_get(agent.url + "/metrics")
        r.check(hdr.get("Content-Type", "").startswith(
            "text/plain; version=0.0.4"), "content type 0.0.4")
        p = subprocess.run(["promtool", "check", "metrics"], input=text,
                           capture_output=True, text=True)
        # Exit 3 means lint remarks only (e.g. counters without a unit
        # suffix); 1 is a format error.
        r.check(p.returncode in (0, 3) and "error" not in p.stderr.lower(),
                "promtool check metrics: exit %d %s" % (p.returncode,
                                                       p.stderr[:300]))
        served = served_metrics(text)
        docs = doc_metrics()
        r.eq(sorted(set(served) - set(docs)), [],
             "served but not in docs/metrics.md")
        r.eq(sorted(set(docs) - set(served)), [],
             "in docs/metrics.md but not served")
        r.eq({k: v for k, v in served.items() if docs.get(k, v) != v}, {},
             "types agree with docs/metrics.md")
    r.done()


if __name__ == "__main__":
    main()
