"""kvtier.ShardedClient against three real kvtier-store processes."""
import pathlib
import signal
import time

import numpy as np
import pytest

from conftest import Store
from kvtier import KvLayout, ShardedClient, StoreError, connect
from kvtier.placement import rank_shards, shard_name_hash

ROOT = pathlib.Path(__file__).resolve().parents[3]
LAYOUT = KvLayout("py-shard", num_layers=4, num_kv_heads=2, head_dim=32, dtype="fp16",
                  tokens_per_block=8)


def prompt(blocks, seed):
    return [(seed * 7919 + i * 31) % 128000 for i in range(blocks * LAYOUT.tokens_per_block)]


def payload(blocks, seed):
    return np.random.default_rng(seed).integers(0, 256, blocks * LAYOUT.block_bytes,
                                                dtype=np.uint8)


@pytest.fixture
def shards():
    stores = [Store(f"--shard_id=py-{i}") for i in range(3)]
    yield stores
    for s in stores:
        s.stop(signal.SIGKILL)


def cluster(stores, **kw):
    opts = dict(replication=2, placement_span=2, tenant="py", timeout=2.0, min_backoff_s=0.1,
                max_backoff_s=0.4)
    opts.update(kw)
    return ShardedClient(",".join(s.target for s in stores), **opts)


def test_rendezvous_vectors_shared_with_cpp():
    lines = [l for l in (ROOT / "tests/data/rendezvous_vectors.txt").read_text().splitlines()
             if l and not l.startswith("#")]
    hashes = [shard_name_hash(n) for n in lines[0].split(",")]
    for line in lines[1:]:
        key, ranking = line.split("|")
        assert rank_shards(hashes, bytes.fromhex(key)) == [int(x) for x in ranking.split(",")]
    assert len(lines) > 10


def test_targets_are_checked_and_one_target_is_one_store():
    for bad in ("a:1,,b:2", "dns:///nameonly", "dns://auth/x:1"):
        with pytest.raises(ValueError):
            ShardedClient(bad)
    with pytest.raises(ValueError):
        ShardedClient("127.0.0.1:1,127.0.0.1:2", replication=0)
    assert type(connect("127.0.0.1:1")).__name__ == "CacheStoreClient"


def test_put_lookup_fetch_across_three_shards_with_two_copies(shards):
    with cluster(shards) as c:
        assert sorted(s.id for s in c.shards()) == ["py-0", "py-1", "py-2"]
        n = 24
        tokens, data = prompt(n, 1), payload(n, 1)
        put = c.put(LAYOUT, tokens, 0, data, output_tokens=300)
        assert put.failed_blocks == 0 and put.stored_blocks == 2 * n
        stats = [s.client.stats() for s in c._snapshot()]
        held = [st.tiers[0].used_blocks for st in stats]
        assert sum(held) == 2 * n and all(0 < h < n for h in held), held
        assert sum(st.put_output_reported_blocks for st in stats) == 2 * n  # every shard told

        found = c.lookup(LAYOUT, tokens)
        assert found.matched_blocks == n and found.lease_id
        out = [np.zeros(LAYOUT.block_bytes, np.uint8) for _ in range(n)]
        reports = []
        r = c.fetch(out, lease_id=found.lease_id, layer_major=True,
                    on_chunk=lambda b, off, length: reports.append((b, off // LAYOUT.layer_bytes)))
        assert r.bytes == data.size and np.array_equal(np.concatenate(out), data)
        # Layer-major across shards: every block's layer l before any layer l + 1, once each.
        assert len(reports) == n * LAYOUT.num_layers == len(set(reports))
        assert [l for _, l in reports] == sorted(l for _, l in reports)
        c.release(found.lease_id)
        with pytest.raises(StoreError):
            c.release(found.lease_id)

        # Another tenant finds nothing; Delete reaches every copy.
        with cluster(shards, tenant="other") as o:
            assert o.lookup(LAYOUT, tokens).matched_blocks == 0
        assert c.delete(found.keys) == 2 * n


def test_a_dead_shard_is_a_miss_for_nothing_with_two_copies(shards):
    with cluster(shards) as c:
        n = 16
        tokens, data = prompt(n, 2), payload(n, 2)
        c.put(LAYOUT, tokens, 0, data)
        shards[1].stop(signal.SIGKILL)
        start = time.monotonic()
        found = c.lookup(LAYOUT, tokens)
        assert time.monotonic() - start < 3
        assert found.matched_blocks == n
        out = [np.zeros(LAYOUT.block_bytes, np.uint8) for _ in range(n)]
        c.fetch(out, lease_id=found.lease_id)
        assert np.array_equal(np.concatenate(out), data)
        c.release(found.lease_id)
        status = {s.id: s for s in c.shards()}
        assert not status["py-1"].healthy and status["py-1"].lookup_failures >= 1
        # New blocks still get a copy (on the live shards).
        more = prompt(4, 3)
        assert c.put(LAYOUT, more, 0, payload(4, 3)).failed_blocks == 0
        assert c.lookup(LAYOUT, more, lease=False).matched_blocks == 4


def test_a_shard_failing_mid_fetch_hands_its_blocks_to_the_other_copy(shards):
    with cluster(shards) as c:
        n = 16
        tokens, data = prompt(n, 4), payload(n, 4)
        c.put(LAYOUT, tokens, 0, data)
        found = c.lookup(LAYOUT, tokens)
        # The first holder of block 0 fails before the fetch reaches it.
        first = c._located[found.keys[0]][0][0]
        next(s for s in shards if s.target == first.target).stop(signal.SIGKILL)
        out = [np.zeros(LAYOUT.block_bytes, np.uint8) for _ in range(n)]
        r = c.fetch(out, lease_id=found.lease_id, layer_major=True, on_chunk=lambda *a: None)
        assert np.array_equal(np.concatenate(out), data)
        assert sum(s.failover_blocks for s in c.shards()) > 0


def test_same_node_delivery_with_the_shards_on_this_node(tmp_path):
    from kvtier import SharedMemoryRegion
    stores = [Store(f"--shard_id=py-{i}", f"--shm_socket={tmp_path}/py-{i}.sock")
              for i in range(3)]
    try:
        n, bb = 12, LAYOUT.block_bytes
        with cluster(stores, shm_socket_dir=str(tmp_path)) as c, \
                SharedMemoryRegion(2 * n * bb) as region:
            src = region.array(0, n * bb)
            src[:] = payload(n, 5)
            tokens = prompt(n, 5)
            assert c.put(LAYOUT, tokens, 0, src, shm=region).failed_blocks == 0
            found = c.lookup(LAYOUT, tokens)
            out = [region.array(n * bb + i * bb, bb) for i in range(n)]
            c.fetch(out, lease_id=found.lease_id, layer_major=True, shm=region,
                    on_chunk=lambda *a: None)
            assert np.array_equal(np.concatenate(out), src)
            used = sum(s.client.same_node_calls for s in c._snapshot())
            assert used >= 4, used  # puts and fetches went through the region
            c.release(found.lease_id)
    finally:
        for s in stores:
            s.stop(signal.SIGKILL)
