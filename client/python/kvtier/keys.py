"""Chained block keys, as cache_store/block_key.h derives them (DESIGN.md section 2).

key_0 = SHA-256("kvtier.ns.v1" | u32le len(tenant) | tenant | u64le layout fingerprint |
                u32le len(salt) | salt)
key_i = SHA-256(key_{i-1} | tokens of block i as u32le)

Only full blocks are keyed. The store derives keys itself from the caller's authenticated
tenant; clients use these for routing and to name blocks they looked up. The known-answer
vectors in tests/data/block_key_vectors.json are checked by the C++ and the Python tests.
"""
from __future__ import annotations

import hashlib
import struct
from typing import List, Sequence, Union

import numpy as np

from kvtier.layout import KvLayout

Bytesish = Union[bytes, str]


def _b(v: Bytesish) -> bytes:
    return v.encode() if isinstance(v, str) else bytes(v)


def namespace_key(tenant: Bytesish, layout_fingerprint: int, salt: Bytesish = b"") -> bytes:
    tenant, salt = _b(tenant), _b(salt)
    buf = (b"kvtier.ns.v1" + struct.pack("<I", len(tenant)) + tenant +
           struct.pack("<Q", layout_fingerprint) + struct.pack("<I", len(salt)) + salt)
    return hashlib.sha256(buf).digest()


def block_keys(tenant: Bytesish, layout: KvLayout, tokens: Sequence[int],
               salt: Bytesish = b"") -> List[bytes]:
    """The 32-byte keys of the prompt's full blocks, in order."""
    layout.validate()
    t = np.asarray(tokens, dtype=np.int64)
    if t.ndim != 1:
        raise ValueError("tokens must be a flat sequence of token ids")
    if t.size and (t.min() < 0 or t.max() > 0xFFFFFFFF):
        raise ValueError("token ids must fit in 32 bits")
    raw = t.astype("<u4").tobytes()
    step = 4 * layout.tokens_per_block
    key = namespace_key(tenant, layout.fingerprint(), salt)
    keys = []
    for i in range(len(t) // layout.tokens_per_block):
        key = hashlib.sha256(key + raw[i * step:(i + 1) * step]).digest()
        keys.append(key)
    return keys
