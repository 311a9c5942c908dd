"""Where a cluster of kvtier-store shards keeps each block: client/shard_placement.h, bit
for bit (tests/data/rendezvous_vectors.txt is checked by the C++ and the Python tests), so
C++ and Python clients of one cluster write a block to the same shards.
"""
from __future__ import annotations

from typing import List, Sequence

import xxhash

from kvtier.keys import block_keys
from kvtier.layout import KvLayout

_M = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finalizer."""
    x = (x + 0x9E3779B97F4A7C15) & _M
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M
    return x ^ (x >> 31)


def shard_name_hash(shard_id: str) -> int:
    return _mix(xxhash.xxh3_64_intdigest(shard_id.encode()))


def rendezvous_weight(shard_hash: int, key: bytes) -> int:
    k = int.from_bytes(key[:8], "little")
    return _mix(k ^ _mix((shard_hash + 0x2545F4914F6CDD1D) & _M))


def rank_shards(shard_hashes: Sequence[int], key: bytes) -> List[int]:
    """Indices into shard_hashes, highest weight first (ties by index)."""
    weights = [rendezvous_weight(h, key) for h in shard_hashes]
    return sorted(range(len(shard_hashes)), key=lambda i: (-weights[i], i))


def routing_keys(layout: KvLayout, salt: bytes, tokens: Sequence[int]) -> List[bytes]:
    """The chained keys of the prompt's full blocks under a namespace without the tenant."""
    return block_keys(b"", layout, tokens, salt)
