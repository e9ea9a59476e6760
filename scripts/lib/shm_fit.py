#!/usr/bin/env python3
"""shm_fit.py OUTDIR HFABRIC PINGS ROUNDS - the fit of scripts/shm-instructions.sh.

Per side, the reading loop (drain_until, inclusive) costs c + hits*h + empties*e: h per poll
that finds a frame and handles it, e per poll that finds nothing, c once per run (connection
set-up, the bench's metrics request). hits = the frames the other side sent (its Conn::send
calls). The rounds differ in pings and in how often each side polled in vain; a least-squares
fit over them gives h and e. One JSON line per round trip (see the script's header).
"""
import json
import sys

DRAIN = "hyperfabric::runtime::shmlink::data::drain_until"
SEND = "hyperfabric::runtime::conn::Conn::send"


def load(out, rounds):
    runs = []
    for r in range(1, rounds + 1):
        d = f"{out}/round{r}"
        bench = json.load(open(f"{d}/bench.json"))["tests"]["latency"]
        if bench["transport"] != "shm" or bench["size_bytes"] != 64:
            sys.exit(f"shm_fit: round {r} did not measure shm 64 B: {bench['transport']}")
        runs.append({side: json.load(open(f"{d}/{side}.json")) for side in ("client", "server")})
    return runs


def solve(m, v):
    """Gaussian elimination of the small system m x = v (None when singular)."""
    n = len(v)
    a = [row[:] + [v[i]] for i, row in enumerate(m)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(a[r][c]))
        if abs(a[p][c]) < 1e-9:
            return None
        a[c], a[p] = a[p], a[c]
        for r in range(n):
            if r != c:
                f = a[r][c] / a[c][c]
                a[r] = [x - f * y for x, y in zip(a[r], a[c])]
    return [a[i][n] / a[i][i] for i in range(n)]


def fit(runs, side, other):
    """(h, e, worst residual per hit) of `side`: least squares of
    incl = c + hits*h + empties*e (c: once per run, such as set-up and a metrics request)."""
    rows = []
    for run in runs:
        drain, hits = run[side][DRAIN], run[other][SEND]["calls"]
        rows.append(((1.0, hits, drain["calls"] - hits), drain["incl"]))
    m = [[sum(x[i] * x[j] for x, _ in rows) for j in range(3)] for i in range(3)]
    v = [sum(x[i] * y for x, y in rows) for i in range(3)]
    sol = solve(m, v)
    if sol is None:
        return None, None, None
    c, h, e = sol
    worst = max(abs(y - c - x[1] * h - x[2] * e) / x[1] for x, y in rows)
    return round(h, 1), round(e, 2), round(worst, 1)


def main(out, hf, n, rounds):
    runs = load(out, rounds)
    ch, ce, cres = fit(runs, "client", "server")
    sh, se, sres = fit(runs, "server", "client")
    # The ping's send: per call, the difference of the two rounds furthest apart in pings
    # (a one-off send, such as the metrics request, cancels out).
    sends = sorted((run["client"][SEND] for run in runs), key=lambda s: s["calls"])
    lo, hi = sends[0], sends[-1]
    send = round((hi["incl"] - lo["incl"]) / max(hi["calls"] - lo["calls"], 1), 1)
    total = None if None in (ch, sh) else round(send + sh + ch, 1)
    print(json.dumps({
        "binary": hf, "pings": n, "rounds": rounds, "per_rtt": total,
        "client_send": send, "server_hit": sh, "client_hit": ch,
        "empty_poll": {"client": ce, "server": se},
        "fit_residual_per_hit": {"client": cres, "server": sres}, "outdir": out,
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
