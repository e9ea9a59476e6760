#!/usr/bin/env python3
"""callgrind_sum.py - per-function instruction counts from callgrind output files.

Usage: callgrind_sum.py OUT [OUT ...]            -> JSON {function: {self, incl, calls}}
       callgrind_sum.py --top N OUT [OUT ...]    -> a table of the N costliest (inclusive)
       callgrind_sum.py --callers TEXT OUT [...] -> who calls the functions named with TEXT

Unlike callgrind_annotate this merges every inlined fragment of a function into it (callgrind
keys costs by the file each inlined line came from) and counts calls, so that a cost per call
(`incl / calls`) can be compared between two builds. Several files (one per process) add up.
"""
import json
import re
import sys
from collections import defaultdict

NAME = re.compile(r"^\((\d+)\)(?: (.*))?$")


def parse(path, acc, edges):
    names = {}
    fn = None
    call_target = None
    pending_calls = 0

    def resolve(spec):
        m = NAME.match(spec.strip())
        if not m:
            return spec.strip()
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), spec)

    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("fn="):
                fn = resolve(line[3:])
                acc[fn]  # exists
            elif line.startswith("cfn="):
                call_target = resolve(line[4:])
            elif line.startswith("calls="):
                pending_calls = int(line[6:].split()[0])
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if pending_calls and call_target is not None:
                    acc[fn]["incl"] += cost
                    acc[call_target]["calls"] += pending_calls
                    edge = edges[(fn, call_target)]
                    edge[0] += pending_calls
                    edge[1] += cost
                    pending_calls = 0
                    call_target = None
                elif fn is not None:
                    acc[fn]["self"] += cost
                    acc[fn]["incl"] += cost


def main(argv):
    top = None
    callers = None
    if argv and argv[0] == "--callers":
        callers = argv[1]
        argv = argv[2:]
    if argv and argv[0] == "--top":
        top = int(argv[1])
        argv = argv[2:]
    acc = defaultdict(lambda: {"self": 0, "incl": 0, "calls": 0})
    edges = defaultdict(lambda: [0, 0])
    for p in argv:
        parse(p, acc, edges)
    if callers is not None:
        rows = sorted(((k, v) for k, v in edges.items() if callers in k[1]), key=lambda kv: -kv[1][0])
        for (a, b), (n, cost) in rows[:40]:
            print(f"{n:>9} {cost:>12}  {a[:110]}  ->  {b[:60]}")
        return
    if top is None:
        json.dump(acc, sys.stdout, indent=0, sort_keys=True)
        print()
        return
    rows = sorted(acc.items(), key=lambda kv: -kv[1]["incl"])[:top]
    print(f"{'incl':>12} {'self':>12} {'calls':>9} {'incl/call':>10}  function")
    for name, c in rows:
        per = c["incl"] / c["calls"] if c["calls"] else float("nan")
        print(f"{c['incl']:>12} {c['self']:>12} {c['calls']:>9} {per:>10.1f}  {name[:150]}")


if __name__ == "__main__":
    main(sys.argv[1:])
