"""kvtier: the Python client of the kvtier KV-cache store.

    from kvtier import CacheStoreClient, KvLayout, block_keys

    layout = KvLayout("llama-3-8b", num_layers=32, num_kv_heads=8, head_dim=128)
    with CacheStoreClient("127.0.0.1:50051", tenant="team-a") as store:
        store.put(layout, tokens, 0, payload)            # bytes, numpy, torch (CPU)
        found = store.lookup(layout, tokens)
        out = [np.empty(layout.block_bytes, np.uint8) for _ in range(found.matched_blocks)]
        store.fetch(out, lease_id=found.lease_id, layer_major=True)
        store.release(found.lease_id)

A cluster of shards: kvtier.connect("a:50051,b:50051", replication=2, tenant=...) or
kvtier.ShardedClient("dns:///kvtier-store.ns.svc:50051", ...): the same calls.
"""
from kvtier.client import (CacheStoreClient, DataLossError, FetchedBlock, FetchResult,
                           LookupResult, PutResult, StoreError)
from kvtier.keys import block_keys, namespace_key
from kvtier.layout import KvLayout
from kvtier.same_node import SharedMemoryRegion
from kvtier.sharded import ShardedClient, ShardStatus, connect

__all__ = ["CacheStoreClient", "DataLossError", "FetchedBlock", "FetchResult", "KvLayout",
           "LookupResult", "PutResult", "ShardStatus", "ShardedClient", "SharedMemoryRegion", "StoreError",
           "block_keys", "connect", "namespace_key"]
