#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz (run once; the seeds are checked in). Needs the
kvtier Python package's generated protobuf modules (scripts/python_venv.sh's python).

  make_seeds.py OUT_DIR   (tests/fuzz/corpus)
"""
import json
import os
import struct
import sys

from kvtier.v1 import cache_store_pb2 as pb
from kvtier.v1 import common_pb2 as common

out = sys.argv[1]


def write(target, name, data):
    os.makedirs(f"{out}/{target}", exist_ok=True)
    with open(f"{out}/{target}/{name}", "wb") as f:
        f.write(data)


# Trace lines.
write("trace_parser_fuzzer", "record", json.dumps(
    {"timestamp": 27, "input_length": 1030, "output_length": 4, "hash_ids": [0, 1, 2]}).encode())
write("trace_parser_fuzzer", "unknown_fields",
      b'{"note": {"a": [1, "x]"]}, "hash_ids": [5], "flag": true, "s": "q\\"uote"}')
write("trace_parser_fuzzer", "empty_ids", b'{"hash_ids": []}')

# Safetensors files.
def safetensors(header, data):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data

write("safetensors_fuzzer", "f32", safetensors(
    {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, b"\x00" * 16))
write("safetensors_fuzzer", "f16_bf16_meta", safetensors(
    {"__metadata__": {"format": "pt"},
     "a": {"dtype": "F16", "shape": [3], "data_offsets": [0, 6]},
     "b": {"dtype": "BF16", "shape": [1, 2], "data_offsets": [6, 10]}}, b"\x3c" * 10))
write("safetensors_fuzzer", "escapes", safetensors(
    {"w\\u0041\n": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}, b"\x00" * 4))

# Wire messages: [cut byte][cut byte][protobuf].
put_data = pb.PutRequest(data=b"\x01" * 300).SerializeToString()
write("payload_wire_fuzzer", "put_data", b"\x05\x07" + put_data)
fetch = pb.FetchResponse(block=3, offset=64, data=b"\x02" * 200,
                         ranges=[pb.BlockRange(block=0, offset=0, length=100),
                                 pb.BlockRange(block=1, offset=0, length=100)]).SerializeToString()
write("payload_wire_fuzzer", "fetch_ranges", b"\x11\x03" + fetch)
header = pb.PutRequest(header=pb.PutHeader(num_blocks=1, token_ids=[1, 2, 3, 4]))
write("payload_wire_fuzzer", "put_header", b"\x00\x00" + header.SerializeToString())

# Store requests: [method][request]; the store holds blocks 0-1 of tokens 0..7 of this
# layout for tenant "fuzz" (store_requests_fuzzer.cc).
layout = common.KvLayout(model_id="fuzz", num_layers=2, num_kv_heads=1, head_dim=16,
                         dtype=common.DTYPE_FP16, tokens_per_block=4)
tokens = list(range(8))
write("store_requests_fuzzer", "lookup", b"\x00" + pb.LookupRequest(
    layout=layout, token_ids=tokens + [9, 9, 9, 9]).SerializeToString())
write("store_requests_fuzzer", "lookup_present", b"\x00" + pb.LookupRequest(
    layout=layout, token_ids=tokens, report_present=True, packed_keys=True,
    no_lease=True).SerializeToString())
ph = pb.PutHeader(layout=layout, token_ids=tokens + [8, 9, 10, 11], first_block=2, num_blocks=1)
write("store_requests_fuzzer", "put", b"\x01" + ph.SerializeToString() + b"\xaa" * 128)
ph_idx = pb.PutHeader(layout=layout, token_ids=tokens + [8, 9, 10, 11], num_blocks=2,
                      block_indices=[0, 2], last_block_partial=True)
write("store_requests_fuzzer", "put_indices", b"\x01" + ph_idx.SerializeToString())
ph_shm = pb.PutHeader(layout=layout, token_ids=tokens, num_blocks=1,
                      shm=pb.SharedMemoryBlocks(region_id=b"r" * 16, offsets=[0]))
write("store_requests_fuzzer", "put_shm", b"\x01" + ph_shm.SerializeToString())
write("store_requests_fuzzer", "fetch_lease", b"\x02" + pb.FetchRequest(
    lease_id=1, order=pb.FETCH_ORDER_LAYER_MAJOR, max_chunk_bytes=100).SerializeToString())
write("store_requests_fuzzer", "fetch_shm", b"\x02" + pb.FetchRequest(
    block_keys=[b"\x00" * 32], shm=pb.SharedMemoryBlocks(region_id=b"x" * 16,
                                                          offsets=[0])).SerializeToString())
write("store_requests_fuzzer", "pin", b"\x03" + pb.PinRequest(
    block_keys=[b"\x01" * 32], ttl_ms=5, skip_missing=True).SerializeToString())
write("store_requests_fuzzer", "unpin", b"\x04" + pb.UnpinRequest(
    block_keys=[b"\x01" * 32, b"\x02" * 31]).SerializeToString())
write("store_requests_fuzzer", "delete", b"\x05" + pb.DeleteRequest(
    block_keys=[b"\x01" * 32], skip_missing=True).SerializeToString())
write("store_requests_fuzzer", "release", b"\x06" + pb.ReleaseRequest(
    lease_id=12345).SerializeToString())

# T2 patches: (u16 offset / 64, u8 length, bytes).
def patch(offset, data):
    return struct.pack("<HB", offset // 64, len(data)) + data

write("t2_recovery_fuzzer", "untouched", b"")
write("t2_recovery_fuzzer", "superblock_byte", patch(0, b"\xff"))
write("t2_recovery_fuzzer", "slab_table", patch(4096, b"\x07\x00\x00\x00\xff\xff"))
write("t2_recovery_fuzzer", "record_header", patch(8192, b"\x00" * 8) + patch(8192 + 64, b"\xff" * 16))
