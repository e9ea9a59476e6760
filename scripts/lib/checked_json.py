"""Reads one JSON report and checks that it measured what a comparison script says it did.

Used by scripts/compare-tcp.sh and scripts/shm-compare.sh: a comparison that measured another
transport, size or peer than it names is a defect, so each figure is taken only after its own
JSON says what it ran.

    checked_json.py ours TEST TRANSPORT SIZE [API] < bench.json    -> prints the figure
    checked_json.py peer FIGURE < anchors.json                     -> prints the figure
Exits 3 with the reason when the report does not match.
"""
import json
import sys


def fail(msg):
    print(f"checked_json: {msg}", file=sys.stderr)
    sys.exit(3)


def ours(report, test, transport, size, api=None):
    t = report.get("tests", {}).get(test)
    if t is None:
        fail(f"bench report has no '{test}' test")
    if t.get("transport") != transport:
        fail(f"'{test}' ran over {t.get('transport')!r}, not {transport!r}")
    if test == "latency":
        if t.get("size_bytes") != size:
            fail(f"latency ran {t.get('size_bytes')} B pings, not {size} B")
        f = t["figures"]
        return f"{f['median_ns']} {f['p99_ns']}"
    if test == "throughput":
        if api is not None and t.get("api") != api:
            fail(f"throughput used the {t.get('api')!r} API, not {api!r}")
        rs = [r for r in t.get("results", []) if r.get("message_bytes") == size]
        if not rs:
            fail(f"throughput has no result for {size} B messages")
        r = rs[0]
        return f"{r['bytes'] / r['seconds'] / 1e9:.3f}"
    fail(f"unknown test {test}")


def peer(report, figure):
    v = report.get(figure)
    if v is None:
        err = report.get("_meta", {}).get("errors", {}).get(figure)
        fail(f"peer figure {figure} missing ({err or 'no value'})")
    return str(v)


def main():
    report = json.load(sys.stdin)
    kind, args = sys.argv[1], sys.argv[2:]
    if kind == "ours":
        print(ours(report, args[0], args[1], int(args[2]), args[3] if len(args) > 3 else None))
    elif kind == "peer":
        print(peer(report, args[0]))
    else:
        fail(f"unknown kind {kind}")


if __name__ == "__main__":
    main()
