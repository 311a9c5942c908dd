"""Same-node delivery from Python: the store copies blocks into and out of a sealed memfd
region this process attached over the store's attach socket."""
import os
import signal
import tempfile

import numpy as np
import pytest

from conftest import Store
from kvtier import CacheStoreClient, KvLayout, SharedMemoryRegion, StoreError

LAYOUT = KvLayout("py-shm", num_layers=4, num_kv_heads=2, head_dim=32, dtype="fp16",
                  tokens_per_block=8)


def prompt(blocks, seed):
    return [(seed * 7919 + i * 31) % 128000 for i in range(blocks * LAYOUT.tokens_per_block)]


@pytest.fixture
def shm_store():
    d = tempfile.mkdtemp(prefix="kvtier-py-shm-")
    sock = os.path.join(d, "shm.sock")
    s = Store(f"--shm_socket={sock}")
    yield s, sock
    s.stop(signal.SIGKILL)


def test_put_and_fetch_through_the_region(shm_store):
    store, sock = shm_store
    n, bb = 6, LAYOUT.block_bytes
    with SharedMemoryRegion(2 * n * bb) as region, \
            CacheStoreClient(store.target, tenant="py", shm_socket=sock) as c:
        src = region.array(0, n * bb)
        src[:] = np.random.default_rng(1).integers(0, 256, n * bb, dtype=np.uint8)
        tokens = prompt(n, 1)
        assert c.put(LAYOUT, tokens, 0, src, shm=region).stored_blocks == n
        found = c.lookup(LAYOUT, tokens)
        for layer_major in (False, True):
            out = [region.array(n * bb + i * bb, bb) for i in range(n)]
            for o in out:
                o[:] = 0
            reports = []
            r = c.fetch(out, lease_id=found.lease_id, layer_major=layer_major, shm=region,
                        on_chunk=lambda *a: reports.append(a))
            assert r.bytes == n * bb
            assert np.array_equal(np.concatenate(out), src)
            assert len(reports) >= n
        assert c.same_node_calls == 3  # the Put and both Fetches moved no payload over gRPC
        c.release(found.lease_id)
        # A buffer outside the region is refused before anything is sent.
        with pytest.raises(ValueError, match="outside the region"):
            c.fetch([np.zeros(bb, np.uint8)], keys=found.keys[:1], shm=region)


def test_without_a_socket_same_node_calls_use_the_socket():
    store = Store()
    try:
        n, bb = 2, LAYOUT.block_bytes
        with SharedMemoryRegion(n * bb) as region, \
                CacheStoreClient(store.target, tenant="py", shm_socket="/nonexistent.sock") as c:
            src = region.array(0, n * bb)
            src[:] = 7
            tokens = prompt(n, 2)
            assert c.put(LAYOUT, tokens, 0, src, shm=region).stored_blocks == n
            found = c.lookup(LAYOUT, tokens)
            out = [np.zeros(bb, np.uint8) for _ in range(n)]
            c.fetch(out, lease_id=found.lease_id)
            assert np.array_equal(np.concatenate(out), src)
            assert c.same_node_calls == 0
    finally:
        store.stop(signal.SIGKILL)


def test_a_store_without_its_socket_refuses_by_name(tmp_path):
    with SharedMemoryRegion(4096) as region:
        with pytest.raises(StoreError) as e:
            region.region_id(str(tmp_path / "none.sock"), "py")
        assert e.value.code.name == "UNAVAILABLE"
