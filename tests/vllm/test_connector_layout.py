"""The connector's conversion between vLLM's pages and kvtier's block bytes (run by
`make test-vllm`, which has torch and vllm): K/V of 16-bit caches and of fp8 caches, whose
blocks carry their per-head scales."""
import torch

from kvtier.layout import KvLayout
from kvtier.vllm import pack_layer, unpack_layer

H, T, D, N = 2, 16, 64, 3  # kv heads, block size, head dim, blocks


def pages_of(dtype):
    """[N, H, T, 2 * D] of dtype, as uint8 bytes: vLLM's per-layer view (K | V per token)."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(N, H, T, 2 * D, generator=g)
    return x.to(dtype).contiguous().view(torch.uint8).reshape(N, H, T, -1)


def test_sixteen_bit_pages_round_trip_in_kvtier_order():
    pages = pages_of(torch.bfloat16)
    packed = pack_layer(pages)
    layout = KvLayout("m", 1, H, D, "bf16", T)
    assert packed.shape == (N, layout.layer_bytes)
    # kvtier's layer: K[tokens][heads][dim] then V: token 5, head 1, dim 3 of K and of V.
    k = packed[1].view(torch.bfloat16).reshape(2, T, H, D)
    v_pages = pages[1].view(torch.bfloat16).reshape(H, T, 2 * D)
    assert k[0, 5, 1, 3] == v_pages[1, 5, 3]
    assert k[1, 5, 1, 3] == v_pages[1, 5, D + 3]
    assert torch.equal(unpack_layer(packed, pages.shape), pages)


def test_fp8_blocks_carry_their_scales_and_are_rescaled_into_other_scales():
    pages = pages_of(torch.float8_e4m3fn)
    layout = KvLayout("m", 1, H, D, "fp8_e4m3", T)
    packed = pack_layer(pages, (0.5, 0.25))
    assert packed.shape == (N, layout.layer_bytes)
    tail = packed[:, layout.layer_element_bytes:].contiguous().view(torch.float32)
    assert tail.tolist() == [[0.5, 0.5, 0.25, 0.25]] * N
    # The same scales: the bytes come back as they were.
    assert torch.equal(unpack_layer(packed, pages.shape, (0.5, 0.25)), pages)
    # An engine whose scales are twice as large: every value is kept, in its units.
    back = unpack_layer(packed, pages.shape, (1.0, 0.5))
    before = pages.view(torch.float8_e4m3fn).to(torch.float32)
    after = back.view(torch.float8_e4m3fn).to(torch.float32)
    # value = element x scale: 0.5 x before == 1.0 x after (within e4m3 rounding).
    assert torch.allclose(after * 1.0, before * 0.5, rtol=0.07, atol=1e-3)
