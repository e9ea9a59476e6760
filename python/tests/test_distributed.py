"""hyperfabric.distributed over real separate processes: one rank per Python process, each
running its node of a generated fabric file, checked against the Rust reference's values
(``collective::reference``: small integers, exact in every element type)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from typing import List

import pytest

np = pytest.importorskip("numpy")

# The ranks' common prelude: the reference's value and expected reduction, and a report.
PRELUDE = r'''
import json, os, sys, time, threading
import numpy as np
import hyperfabric.distributed as dist
from hyperfabric import errors

def value(op, r, n):
    i = np.arange(n)
    if op == "prod":
        return np.where((r + i) % 3 == 0, 2.0, 1.0)
    return ((r * 7 + i) % 4).astype(np.float64)

def reduced(op, world, n, dtype):
    vals = [value(op, r, n).astype(dtype) for r in range(world)]
    if op in ("sum", "avg"):
        acc = vals[0]
        for v in vals[1:]:
            acc = (acc + v).astype(dtype)
        if op == "avg":
            acc = (acc / world) if np.issubdtype(dtype, np.floating) else acc // world
        return acc.astype(dtype)
    if op == "min":
        return np.minimum.reduce(vals).astype(dtype)
    if op == "max":
        return np.maximum.reduce(vals).astype(dtype)
    acc = vals[0]
    for v in vals[1:]:
        acc = (acc * v).astype(dtype)
    return acc

def report(**kw):
    print("RESULT " + json.dumps(kw), flush=True)
'''


def free_ports(n: int) -> List[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def fabric_file(tmp_path, n: int, send_timeout_ms: int = 5000) -> str:
    text = f'[fabric]\nname = "dist-test"\nsend_timeout_ms = {send_timeout_ms}\n'
    for i, port in enumerate(free_ports(n)):
        text += f'\n[[nodes]]\nid = "rank-{i}"\nhardware = "cpu-cluster"\nlisten = "127.0.0.1:{port}"\n'
    path = tmp_path / "fabric.toml"
    path.write_text(text)
    return str(path)


def run_ranks(tmp_path, n: int, body: str, timeout: float = 180, **fabric_kw) -> List[dict]:
    """Runs ``body`` in ``n`` processes (``RANK``, ``WORLD_SIZE`` and ``FABRIC`` set) and
    returns each rank's ``report(...)`` fields (all its reports merged); a rank that exits
    non-zero fails the test."""
    fabric = fabric_file(tmp_path, n, **fabric_kw)
    script = PRELUDE + textwrap.dedent(body)
    procs = []
    for r in range(n):
        env = dict(os.environ, RANK=str(r), WORLD_SIZE=str(n), FABRIC=fabric)
        procs.append(subprocess.Popen([sys.executable, "-c", script], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for r, p in enumerate(procs):
            out, err = p.communicate(timeout=timeout)
            assert p.returncode == 0, f"rank {r} exited {p.returncode}:\n{out}\n{err}"
            merged: dict = {}
            for ln in out.splitlines():
                if ln.startswith("RESULT "):
                    merged.update(json.loads(ln[len("RESULT "):]))
            results.append(merged)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


def test_all_reduce_of_every_op_and_type_matches_the_reference(tmp_path):
    results = run_ranks(tmp_path, 3, r'''
        dist.init_process_group(os.environ["FABRIC"], timeout=30)
        r, world = dist.get_rank(), dist.get_world_size()
        wrong = {}
        for dtype in (np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8):
            for op in ("sum", "avg", "min", "max", "prod"):
                for n in (0, 1, 5, 300, 70_000):
                    a = value(op, r, n).astype(dtype)
                    dist.all_reduce(a, op=op)
                    bad = int(np.count_nonzero(a != reduced(op, world, n, dtype)))
                    if bad:
                        wrong[f"{np.dtype(dtype).name} {op} {n}"] = bad
        dist.destroy_process_group()
        report(rank=r, wrong=wrong)
    ''')
    for res in results:
        assert res["wrong"] == {}, res


def test_all_reduce_on_the_arena_matches_the_reference(tmp_path):
    results = run_ranks(tmp_path, 3, r'''
        # arena=True: the slot up to small_bytes, the chunked stage (8 KiB per rank) above.
        dist.init_process_group(os.environ["FABRIC"], timeout=30, arena=True,
                                small_bytes=64, arena_bytes=8192)
        r, world = dist.get_rank(), dist.get_world_size()
        wrong = {}
        for dtype in (np.float32, np.float64, np.int32, np.uint8):
            for op in ("sum", "avg", "max"):
                for n in (0, 5, 300, 70_000):
                    a = value(op, r, n).astype(dtype)
                    dist.all_reduce(a, op=op)
                    bad = int(np.count_nonzero(a != reduced(op, world, n, dtype)))
                    if bad:
                        wrong[f"{np.dtype(dtype).name} {op} {n}"] = bad
        dist.barrier()
        dist.destroy_process_group()
        report(rank=r, wrong=wrong)
    ''')
    for res in results:
        assert res["wrong"] == {}, res


def test_the_other_collectives_and_async_handles(tmp_path):
    results = run_ranks(tmp_path, 4, r'''
        # Small messages and a low doubling threshold: every collective here takes many
        # chunks, a full window and (all_reduce) the ring.
        g = dist.init_process_group(os.environ["FABRIC"], timeout=30, chunk_bytes=256,
                                    small_bytes=64, window=4)
        r, world, per = g.rank(), g.size(), 50
        ok = {}
        rs = value("sum", r, world * per).astype(np.float32)
        dist.reduce_scatter(rs, op=dist.ReduceOp.SUM)
        want = reduced("sum", world, world * per, np.float32)
        ok["reduce_scatter"] = bool((rs[r * per:(r + 1) * per] == want[r * per:(r + 1) * per]).all())
        ag = np.where(np.arange(world * per) // per == r, np.arange(world * per), -1).astype(np.int64)
        dist.all_gather(ag)
        ok["all_gather"] = bool((ag == np.arange(world * per)).all())
        b = np.arange(100, dtype=np.float64) * (1 if r == 2 else -1)
        dist.broadcast(b, src=2)
        ok["broadcast"] = bool((b == np.arange(100)).all())
        mine = value("max", r, 77).astype(np.int32)
        red = mine.copy()
        dist.reduce(red, dst=1, op="max")
        ok["reduce"] = bool((red == reduced("max", world, 77, np.int32)).all() if r == 1
                            else (red == mine).all())
        a2a = (r * 1000 + np.arange(world * per)).astype(np.int64)
        dist.all_to_all(a2a)
        want = np.concatenate([j * 1000 + np.arange(r * per, (r + 1) * per) for j in range(world)])
        ok["all_to_all"] = bool((a2a == want).all())
        bufs = [np.full(1000, r + k, dtype=np.float32) for k in range(5)]
        works = [dist.all_reduce(x, async_op=True) for x in bufs]
        works.append(dist.barrier(async_op=True))
        ok["async"] = all(w.wait() for w in works) and all(w.is_completed() for w in works)
        ok["async values"] = all(bool((x == sum(q + k for q in range(world))).all())
                                 for k, x in enumerate(bufs))
        dist.barrier()
        dist.destroy_process_group()
        report(rank=r, ok=ok)
    ''')
    for res in results:
        assert all(res["ok"].values()), res


def test_bad_calls_raise_typed_errors(tmp_path):
    results = run_ranks(tmp_path, 2, r'''
        dist.init_process_group(os.environ["FABRIC"], timeout=10)
        r = dist.get_rank()
        seen = {}
        def catch(name, f, *exc):
            try:
                f()
                seen[name] = "no error"
            except exc as e:
                seen[name] = type(e).__name__
        catch("dtype", lambda: dist.all_reduce(np.zeros(4, dtype=np.complex64)), TypeError)
        ro = np.zeros(4, dtype=np.float32); ro.flags.writeable = False
        catch("read-only", lambda: dist.all_reduce(ro), ValueError)
        catch("strided", lambda: dist.all_reduce(np.zeros(8, dtype=np.float32)[::2]), ValueError)
        catch("op", lambda: dist.all_reduce(np.zeros(4, dtype=np.float32), op="median"), ValueError)
        catch("root", lambda: dist.broadcast(np.zeros(4, dtype=np.float32), src=5), ValueError)
        catch("blocks", lambda: dist.reduce_scatter(np.zeros(3, dtype=np.float32)), errors.InvalidArgument)
        dist.barrier()
        # Ranks that disagree on the size: a mismatch (or the other's abort), then the group
        # refuses more.
        catch("mismatch", lambda: dist.all_reduce(np.ones(10 + r, dtype=np.float32)),
              errors.CollectiveMismatch, errors.CollectiveAborted)
        catch("after", lambda: dist.barrier(), errors.GroupFailed)
        dist.destroy_process_group()
        catch("destroyed", lambda: dist.barrier(), RuntimeError)
        report(rank=r, seen=seen)
    ''')
    for res in results:
        s = res["seen"]
        assert s["dtype"] == "TypeError" and s["read-only"] == "ValueError", s
        assert s["strided"] == "ValueError" and s["op"] == "ValueError", s
        assert s["root"] == "ValueError" and s["blocks"] == "InvalidArgument", s
        assert s["mismatch"] in ("CollectiveMismatch", "CollectiveAborted"), s
        assert s["after"] == "GroupFailed" and s["destroyed"] == "RuntimeError", s
    assert any(res["seen"]["mismatch"] == "CollectiveMismatch" for res in results), results


def test_a_killed_rank_makes_the_others_raise_instead_of_hanging(tmp_path):
    results = run_ranks(tmp_path, 3, r'''
        dist.init_process_group(os.environ["FABRIC"], timeout=1.0)
        r = dist.get_rank()
        a = np.ones(1 << 18, dtype=np.float32)
        dist.all_reduce(a)  # every rank is up and connected
        if r == 2:
            os._exit(0)  # dies without a word, before the next all_reduce
        try:
            dist.all_reduce(a)
            report(rank=r, error=None)
        except errors.HyperFabricError as e:
            report(rank=r, error=type(e).__name__)
    ''', send_timeout_ms=1000)
    for res in results[:2]:
        assert res["error"] is not None, res


def test_the_gil_is_released_while_a_collective_waits(tmp_path):
    # Rank 1 joins the barrier only after a Python thread of rank 0 wrote a file, which that
    # thread can do only while rank 0's main thread waits in the barrier without the GIL.
    # The bounds only tell "never" (the GIL held throughout) from "eventually": a loaded
    # 2-core machine once took over 15 s to run the writing thread (CI), so they are wide.
    results = run_ranks(tmp_path, 2, r'''
        dist.init_process_group(os.environ["FABRIC"], timeout=90)
        r = dist.get_rank()
        flag = os.environ["FABRIC"] + ".flag"
        dist.barrier()
        if r == 0:
            entered = threading.Event()
            def write_flag():
                entered.wait()
                time.sleep(0.3)  # the main thread is inside barrier() by now
                open(flag, "w").close()
            t = threading.Thread(target=write_flag)
            t.start()
            entered.set()
            dist.barrier()
            t.join()
            report(rank=r, joined=True)
        else:
            for _ in range(600):
                if os.path.exists(flag):
                    break
                time.sleep(0.1)
            seen = os.path.exists(flag)
            dist.barrier()
            report(rank=r, joined=seen)
        # A handle's wait with a timeout: rank 1 comes a second late.
        if r == 1:
            time.sleep(1.0)
        w = dist.barrier(async_op=True)
        early = w.wait(timeout=0.05) if r == 0 else None
        late = w.wait()
        dist.destroy_process_group()
        report(rank=r, early=early, late=late)
    ''')
    assert results[1]["joined"], "rank 0's thread could not run while it waited in barrier()"
    assert results[0]["early"] is False and results[0]["late"] is True, results


def test_init_process_group_checks_its_arguments(tmp_path):
    import hyperfabric.distributed as dist

    fabric = fabric_file(tmp_path, 2)
    with pytest.raises(ValueError, match="rank 5"):
        dist.init_process_group(fabric, rank=5)
    with pytest.raises(ValueError, match="world_size 3"):
        dist.init_process_group(fabric, rank=0, world_size=3)
    with pytest.raises(ValueError, match="not node"):
        dist.init_process_group(fabric, rank=0, node="rank-1")
    from hyperfabric.errors import ConfigError
    with pytest.raises(ConfigError):
        dist.init_process_group(str(tmp_path / "missing.toml"), rank=0)
    from hyperfabric.errors import InvalidArgument
    with pytest.raises(InvalidArgument, match="window"):
        dist.init_process_group(fabric, rank=0, window=0)
    with pytest.raises(InvalidArgument, match="chunk_bytes"):
        dist.init_process_group(fabric, rank=0, chunk_bytes=4)
    with pytest.raises(InvalidArgument, match="timeout"):
        dist.init_process_group(fabric, rank=0, timeout=0)
    with pytest.raises(ValueError, match="transport"):
        dist.init_process_group(fabric, rank=0, transport="carrier-pigeon")
    assert not dist.is_initialized()
    # One rank alone: a group of one reduces nothing and returns at once.
    g = dist.init_process_group(fabric, node="rank-0", ranks=["rank-0"], timeout=2)
    a = np.arange(6, dtype=np.float32)
    dist.all_reduce(a, op="avg")
    assert (a == np.arange(6)).all() and dist.get_world_size() == 1
    with pytest.raises(RuntimeError, match="already"):
        dist.init_process_group(fabric, rank=0)
    dist.destroy_process_group(g)
    assert not dist.is_initialized()
