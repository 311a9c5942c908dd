"""KvLayout: the shape of a KV block, as cache_store/kv_layout.h defines it.

A block holds tokens_per_block tokens of every layer; per layer, K then V, each
[tokens_per_block, num_kv_heads, head_dim] of `dtype`. Its fingerprint (which key
derivation uses) is the same as the C++ one.
"""
from __future__ import annotations

import dataclasses
import hashlib

DTYPES = {"fp32": (1, 4), "fp16": (2, 2), "bf16": (3, 2), "fp8_e4m3": (4, 1), "int8": (5, 1)}


@dataclasses.dataclass(frozen=True)
class KvLayout:
    model_id: str
    num_layers: int
    num_kv_heads: int
    head_dim: int
    dtype: str = "bf16"
    tokens_per_block: int = 16

    def validate(self) -> None:
        """Raises ValueError naming the first bad field."""
        if not self.model_id:
            raise ValueError("layout.model_id is empty")
        for name in ("num_layers", "num_kv_heads", "head_dim", "tokens_per_block"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"layout.{name} must be a positive integer, got {v!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"layout.dtype {self.dtype!r} is not one of {sorted(DTYPES)}")

    @property
    def dtype_code(self) -> int:
        return DTYPES[self.dtype][0]

    @property
    def layer_bytes(self) -> int:
        return 2 * self.num_kv_heads * self.head_dim * DTYPES[self.dtype][1] * self.tokens_per_block

    @property
    def block_bytes(self) -> int:
        return self.layer_bytes * self.num_layers

    def fingerprint(self) -> int:
        """The 64-bit layout fingerprint of KvLayout::Fingerprint()."""
        mid = self.model_id.encode()
        canonical = (b"kvtier.layout.v1|%d:" % len(mid) + mid +
                     b"|%d|%d|%d|%d|%d" % (self.num_layers, self.num_kv_heads, self.head_dim,
                                           self.dtype_code, self.tokens_per_block))
        return int.from_bytes(hashlib.sha256(canonical).digest()[:8], "big")

    def to_proto(self):
        from kvtier.v1 import common_pb2
        return common_pb2.KvLayout(model_id=self.model_id, num_layers=self.num_layers,
                                   num_kv_heads=self.num_kv_heads, head_dim=self.head_dim,
                                   dtype=self.dtype_code, tokens_per_block=self.tokens_per_block)
