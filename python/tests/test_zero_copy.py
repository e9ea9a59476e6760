"""A large array from an mmap'd file goes with zero_copy=True without Python-heap copies."""
from __future__ import annotations

import hashlib
import mmap
import os
import tracemalloc

import pytest

# The figure: 1 GiB (about 5 s here, a 1 GiB temporary file); a copy would allocate
# the whole size. HF_ZERO_COPY_MIB overrides it (e.g. 64 on a small disk).
SIZE = int(os.environ.get("HF_ZERO_COPY_MIB", "1024")) << 20


def test_mmap_numpy_send_allocates_under_1_mib(pair, tmp_path):
    np = pytest.importorskip("numpy")
    path = tmp_path / "tensor.bin"
    with open(path, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(SIZE >> 20):
            f.write(chunk)
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as mm:
        arr = np.frombuffer(mm, dtype=np.float32)
        want = hashlib.sha256(mm).hexdigest()
        tracemalloc.start()
        r = pair.send_data_sync("a", "b", arr, zero_copy=True, data_type="tensor")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert r.bytes == SIZE
        assert peak < 1 << 20, f"the send allocated {peak} bytes on the Python heap"
        m = pair.receive_sync("b", timeout=30)
        assert len(m) == SIZE and hashlib.sha256(m.payload).hexdigest() == want
        del arr, m
