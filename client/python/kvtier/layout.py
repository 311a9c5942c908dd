"""KvLayout: the shape of a KV block, as cache_store/kv_layout.h defines it.

A block holds tokens_per_block tokens of every layer, layer-major. Per layer:
  kind "kv_heads": K then V, each [tokens_per_block, num_kv_heads, head_dim] of `dtype`;
  kind "mla": one latent [tokens_per_block, kv_lora_rank + rope_dim] of `dtype`.
For the quantized dtypes (fp8_e4m3, int8) the layer's fp32 scales follow its elements:
K_scale[num_kv_heads] then V_scale[num_kv_heads], or, for MLA, the scales of the
kv_lora_rank part and of the rope_dim part. Its fingerprint (which key derivation uses)
is the same as the C++ one.
"""
from __future__ import annotations

import dataclasses
import hashlib

DTYPES = {"fp32": (1, 4), "fp16": (2, 2), "bf16": (3, 2), "fp8_e4m3": (4, 1), "int8": (5, 1)}
QUANTIZED = ("fp8_e4m3", "int8")
KINDS = ("kv_heads", "mla")


@dataclasses.dataclass(frozen=True)
class KvLayout:
    model_id: str
    num_layers: int
    num_kv_heads: int = 0
    head_dim: int = 0
    dtype: str = "bf16"
    tokens_per_block: int = 16
    kind: str = "kv_heads"
    kv_lora_rank: int = 0
    rope_dim: int = 0

    @classmethod
    def mla(cls, model_id: str, *, num_layers: int, kv_lora_rank: int, rope_dim: int,
            dtype: str = "bf16", tokens_per_block: int = 16) -> "KvLayout":
        """An MLA layout (DeepSeek-V2/V3: kv_lora_rank=512, rope_dim=64)."""
        return cls(model_id, num_layers, dtype=dtype, tokens_per_block=tokens_per_block,
                   kind="mla", kv_lora_rank=kv_lora_rank, rope_dim=rope_dim)

    def validate(self) -> None:
        """Raises ValueError naming the first bad field."""
        if not self.model_id:
            raise ValueError("layout.model_id is empty")
        if self.kind not in KINDS:
            raise ValueError(f"layout.kind {self.kind!r} is not one of {KINDS}")
        positive = ["num_layers", "tokens_per_block"]
        if self.kind == "mla":
            positive.append("kv_lora_rank")
            if self.num_kv_heads or self.head_dim:
                raise ValueError("an MLA layout has no K/V heads: leave num_kv_heads and "
                                 "head_dim unset")
            if not isinstance(self.rope_dim, int) or self.rope_dim < 0:
                raise ValueError(f"layout.rope_dim must be >= 0, got {self.rope_dim!r}")
        else:
            positive += ["num_kv_heads", "head_dim"]
            if self.kv_lora_rank or self.rope_dim:
                raise ValueError("kv_lora_rank and rope_dim belong to MLA layouts")
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"layout.{name} must be a positive integer, got {v!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"layout.dtype {self.dtype!r} is not one of {sorted(DTYPES)}")

    @property
    def dtype_code(self) -> int:
        return DTYPES[self.dtype][0]

    @property
    def quantized(self) -> bool:
        return self.dtype in QUANTIZED

    @property
    def layer_element_bytes(self) -> int:
        width = (self.kv_lora_rank + self.rope_dim if self.kind == "mla"
                 else 2 * self.num_kv_heads * self.head_dim)
        return width * DTYPES[self.dtype][1] * self.tokens_per_block

    @property
    def layer_scale_bytes(self) -> int:
        if not self.quantized:
            return 0
        return 4 * (2 if self.kind == "mla" else 2 * self.num_kv_heads)

    @property
    def layer_bytes(self) -> int:
        return self.layer_element_bytes + self.layer_scale_bytes

    @property
    def block_bytes(self) -> int:
        return self.layer_bytes * self.num_layers

    def fingerprint(self) -> int:
        """The 64-bit layout fingerprint of KvLayout::Fingerprint()."""
        mid = self.model_id.encode()
        if self.kind == "mla":
            canonical = (b"kvtier.layout.mla.v1|%d:" % len(mid) + mid +
                         b"|%d|%d|%d|%d|%d" % (self.num_layers, self.kv_lora_rank, self.rope_dim,
                                               self.dtype_code, self.tokens_per_block))
        else:
            canonical = (b"kvtier.layout.v1|%d:" % len(mid) + mid +
                         b"|%d|%d|%d|%d|%d" % (self.num_layers, self.num_kv_heads, self.head_dim,
                                               self.dtype_code, self.tokens_per_block))
            if self.quantized:
                canonical += b"|scales.f32.per_head"
        return int.from_bytes(hashlib.sha256(canonical).digest()[:8], "big")

    def to_proto(self):
        from kvtier.v1 import common_pb2
        if self.kind == "mla":
            return common_pb2.KvLayout(model_id=self.model_id, num_layers=self.num_layers,
                                       dtype=self.dtype_code,
                                       tokens_per_block=self.tokens_per_block,
                                       kind=common_pb2.LAYOUT_KIND_MLA,
                                       kv_lora_rank=self.kv_lora_rank, rope_dim=self.rope_dim)
        return common_pb2.KvLayout(model_id=self.model_id, num_layers=self.num_layers,
                                   num_kv_heads=self.num_kv_heads, head_dim=self.head_dim,
                                   dtype=self.dtype_code, tokens_per_block=self.tokens_per_block)
