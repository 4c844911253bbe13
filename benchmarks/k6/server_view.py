"""The server's side of one k6 stage: its CPU per request and its own latency histogram.

k6 runs on the same machine as the server here, so its latencies include time the server
spent waiting for a CPU the load generator held. This prints what the server itself saw.

    python server_view.py snapshot PORT PID > before.json
    ... run a stage ...
    python server_view.py diff before.json PORT PID ROUTE
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

METRIC = "conveyor_http_request_duration_seconds"


def snapshot(port: str, pid: str) -> dict[str, object]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    buckets: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != METRIC:
            continue
        for s in family.samples:
            if s.name == METRIC + "_bucket" and s.labels.get("method") == "POST":
                buckets.setdefault(s.labels["route"], {})[s.labels["le"]] = s.value
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return {"buckets": buckets, "cpu_ticks": ticks}


def diff(before_file: str, port: str, pid: str, route: str) -> str:
    before = json.loads(Path(before_file).read_text())
    after = snapshot(port, pid)
    b = before["buckets"].get(route, {})
    a = after["buckets"].get(route, {})
    total = a.get("+Inf", 0) - b.get("+Inf", 0)
    if not total:
        return f"server: no requests on {route}"
    cpu = (after["cpu_ticks"] - before["cpu_ticks"]) / 100  # type: ignore[operator]
    within = []
    for le in ("0.01", "0.025", "0.05", "0.1"):
        share = (a.get(le, 0) - b.get(le, 0)) / total
        within.append(f"<={float(le) * 1000:g}ms {share * 100:.2f}%")
    return (
        f"server: {total:.0f} requests, {cpu / total * 1e6:.0f} us CPU each; "
        f"own latency {' '.join(within)}"
    )


if __name__ == "__main__":
    if sys.argv[1] == "snapshot":
        print(json.dumps(snapshot(sys.argv[2], sys.argv[3])))
    else:
        print(diff(*sys.argv[2:6]))
