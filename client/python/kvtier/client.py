"""CacheStoreClient: the Python client of one kvtier-store (kvtier.v1.CacheStore).

Like the C++ client (client/cache_store_client.h):
- every call has a deadline (`timeout`, or the call's own) covering all its attempts;
- UNAVAILABLE alone is retried, with jittered exponential backoff, while the deadline
  allows; a Fetch that has reported bytes through `on_chunk` is not retried;
- put computes the XXH3-64 of every layer of every block, which the store checks;
- fetch writes straight into the caller's buffers (numpy arrays, bytearrays, memoryviews,
  CPU torch tensors) and verifies every layer against the checksum taken at Put as soon
  as it is complete, before reporting it; a mismatch raises DataLossError (treat it as a
  miss).

A cluster of shards: kvtier.sharded.ShardedClient (or kvtier.connect). Same-node delivery:
kvtier.same_node.SharedMemoryRegion with `shm_socket` (the store copies blocks straight
between its memory and the region; a store that refuses is fallen back from to the socket).
"""
from __future__ import annotations

import dataclasses
import random
import time
from typing import Callable, Iterator, List, Optional, Sequence

import grpc
import numpy as np
import xxhash

from kvtier.layout import KvLayout


class StoreError(Exception):
    """A call failed; `code` is the grpc.StatusCode."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class DataLossError(StoreError):
    """Bytes that did not match their checksum (never returned): treat it as a miss."""

    def __init__(self, message: str):
        super().__init__(grpc.StatusCode.DATA_LOSS, message)


@dataclasses.dataclass
class LookupResult:
    matched_blocks: int
    total_blocks: int
    keys: List[bytes]
    tiers: List[int]
    lease_id: int
    lease_ttl_s: float
    block_bytes: int
    # With report_present: the prompt indices of every cached block (keys and tiers then
    # describe these).
    present_blocks: List[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class PutResult:
    stored_blocks: int
    existing_blocks: int
    keys: List[bytes]
    # A cluster's Put: carried blocks that no shard committed.
    failed_blocks: int = 0


@dataclasses.dataclass
class FetchedBlock:
    key: bytes
    size: int
    tier: int
    layer_checksums: List[int]


@dataclasses.dataclass
class FetchResult:
    blocks: List[FetchedBlock]
    bytes: int


def _writable_bytes(buf) -> memoryview:
    """A flat, writable byte view of a caller buffer, without a copy."""
    if hasattr(buf, "detach") and hasattr(buf, "numpy"):  # a torch tensor
        if buf.device.type != "cpu":
            raise ValueError("fetch writes into CPU memory; copy device tensors yourself")
        buf = buf.detach().numpy()
    mv = memoryview(buf)
    if mv.readonly:
        raise ValueError("fetch needs writable buffers")
    if not mv.contiguous:
        raise ValueError("fetch needs contiguous buffers")
    return mv.cast("B")


def _readable_bytes(buf) -> memoryview:
    if hasattr(buf, "detach") and hasattr(buf, "numpy"):
        buf = buf.detach().cpu().numpy()
    mv = memoryview(buf)
    if not mv.contiguous:
        raise ValueError("put needs contiguous buffers")
    return mv.cast("B")


def split_blocks(payload, block_bytes: int, keep_address: bool = False) -> List:
    """The blocks of a Put payload (the blocks back to back), as views (no copy).
    keep_address: numpy views, whose address a SharedMemoryRegion can place."""
    data = _readable_bytes(payload)
    if len(data) == 0 or len(data) % block_bytes:
        raise ValueError(f"a Put payload is a whole number of {block_bytes}-byte blocks; "
                         f"got {len(data)} bytes")
    flat = np.asarray(payload).reshape(-1).view(np.uint8) if keep_address else data
    return [flat[i:i + block_bytes] for i in range(0, len(data), block_bytes)]


class CacheStoreClient:
    def __init__(self, target: str, *, tenant: Optional[str] = None,
                 auth_token: Optional[str] = None, timeout: float = 10.0,
                 max_attempts: int = 4, initial_backoff: float = 0.05, max_backoff: float = 2.0,
                 tls: bool = False, root_certificates: Optional[bytes] = None,
                 max_message_bytes: int = 16 << 20, put_chunk_bytes: int = 4 << 20,
                 shm_socket: Optional[str] = None):
        """shm_socket: the store's attach socket (kvtier-store --shm_socket) as seen from
        here, for same-node calls (fetch/put with shm=a SharedMemoryRegion)."""
        from kvtier.v1 import cache_store_pb2_grpc

        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.keepalive_time_ms", 30000),
                   ("grpc.initial_reconnect_backoff_ms", 200),
                   ("grpc.max_reconnect_backoff_ms", 2000)]
        if tls:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = cache_store_pb2_grpc.CacheStoreStub(self._channel)
        self._metadata = []
        if tenant:
            self._metadata.append(("x-kvtier-tenant", tenant))
        if auth_token:
            self._metadata.append(("authorization", f"Bearer {auth_token}"))
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.put_chunk_bytes = put_chunk_bytes
        self.shm_socket = shm_socket
        self.same_node_calls = 0  # fetches and puts the store served through a region
        self._tenant = tenant or ""
        self._auth_token = auth_token or ""

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- plumbing ------------------------------------------------------------------------

    def _place_in_region(self, shm, buffers, target) -> bool:
        """Fills `target` (a SharedMemoryBlocks) with the region's id and where each buffer
        lies in it, for a same-node call; False (use the socket) when this client has no
        attach socket or the store will not attach the region."""
        if shm is None or not self.shm_socket:
            return False
        offsets = [shm.offset_of(b) for b in buffers]
        try:
            target.region_id = shm.region_id(self.shm_socket, self._tenant, self._auth_token)
        except StoreError as e:
            if e.code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND,
                          grpc.StatusCode.UNAVAILABLE):
                return False
            raise
        target.offsets.extend(offsets)
        return True

    def _with_retries(self, attempt: Callable[[float], object], timeout: Optional[float],
                      max_attempts: Optional[int] = None):
        """Runs attempt(seconds_left) until it does not raise UNAVAILABLE, the attempts run
        out, or the next backoff would pass the deadline."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        backoff = self.initial_backoff
        attempts = self.max_attempts if max_attempts is None else max_attempts
        for i in range(1, attempts + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                raise StoreError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed")
            try:
                return attempt(left)
            except grpc.RpcError as e:
                code, details = e.code(), e.details()
                sleep = backoff / 2 + random.uniform(0, backoff / 2)
                if (code != grpc.StatusCode.UNAVAILABLE or i == attempts or
                        time.monotonic() + sleep >= deadline):
                    raise StoreError(code, details) from None
                time.sleep(sleep)
                backoff = min(backoff * 2, self.max_backoff)
        raise AssertionError("unreachable")

    def _unary(self, method, request, timeout):
        return self._with_retries(
            lambda left: method(request, timeout=left, metadata=self._metadata), timeout)

    # -- calls ---------------------------------------------------------------------------

    def lookup(self, layout: KvLayout, tokens: Sequence[int], *, salt: bytes = b"",
               lease: bool = True, lease_ttl_s: float = 0, report_present: bool = False,
               timeout: Optional[float] = None) -> LookupResult:
        """The longest cached prefix of the prompt's full blocks, leased unless lease=False.
        report_present: every cached block of the prompt (one shard of a cluster)."""
        from kvtier.v1 import cache_store_pb2

        layout.validate()
        request = cache_store_pb2.LookupRequest(
            layout=layout.to_proto(), token_ids=list(map(int, tokens)), cache_salt=bytes(salt),
            no_lease=not lease, lease_ttl_ms=int(lease_ttl_s * 1000), packed_keys=True,
            report_present=report_present)
        r = self._unary(self._stub.Lookup, request, timeout)
        packed = r.packed_block_keys
        keys = ([packed[i:i + 32] for i in range(0, len(packed), 32)] if packed
                else list(r.block_keys))
        described = len(r.present_blocks) if report_present else r.matched_blocks
        if len(keys) != described or len(r.tiers) != described:
            raise StoreError(grpc.StatusCode.INTERNAL, "the store listed another number of keys")
        return LookupResult(matched_blocks=r.matched_blocks, total_blocks=r.total_blocks,
                            keys=keys, tiers=list(r.tiers), lease_id=r.lease_id,
                            lease_ttl_s=r.lease_ttl_ms / 1000, block_bytes=r.block_bytes,
                            present_blocks=list(r.present_blocks))

    def put(self, layout: KvLayout, tokens: Sequence[int], first_block: int, payload, *,
            salt: bytes = b"", last_block_partial: bool = False,
            block_indices: Sequence[int] = (), shm=None, output_tokens: int = 0,
            timeout: Optional[float] = None) -> PutResult:
        """Stores blocks [first_block, first_block + n) of the prompt; `payload` is the n
        blocks' bytes back to back (any contiguous buffer). Idempotent. With block_indices
        (strictly ascending, first_block 0), the blocks carried are those of the prompt.
        output_tokens: the tokens the request generated (or its max_tokens before it ends),
        a hint for the store's T2 admission (PutHeader.output_tokens); 0: not said."""
        layout.validate()
        blocks = split_blocks(payload, layout.block_bytes, keep_address=shm is not None)
        return self.put_blocks(layout, tokens, first_block, blocks, salt=salt,
                               last_block_partial=last_block_partial,
                               block_indices=block_indices, shm=shm,
                               output_tokens=output_tokens, timeout=timeout)

    def put_blocks(self, layout: KvLayout, tokens: Sequence[int], first_block: int,
                   blocks: Sequence, *, salt: bytes = b"", last_block_partial: bool = False,
                   block_indices: Sequence[int] = (), shm=None, output_tokens: int = 0,
                   timeout: Optional[float] = None) -> PutResult:
        """The same with the blocks wherever they are (e.g. pages): blocks[i] is block
        first_block + i (or block_indices[i]), each exactly block_bytes long. With shm (a
        SharedMemoryRegion holding every block) the store copies them from there."""
        from kvtier.v1 import cache_store_pb2

        layout.validate()
        bb = layout.block_bytes
        views = [_readable_bytes(b) for b in blocks]
        if not views:
            raise ValueError("a Put carries at least one block")
        for i, v in enumerate(views):
            if len(v) != bb:
                raise ValueError(f"block {i} of the Put has {len(v)} bytes, not {bb}")
        n = len(views)
        if block_indices and len(block_indices) != n:
            raise ValueError(f"the Put names {len(block_indices)} block indices for {n} blocks")
        if not 0 <= int(output_tokens) < 2**32:
            raise ValueError(f"output_tokens is {output_tokens}; it must be in [0, 2**32)")
        lb = layout.layer_bytes
        h = cache_store_pb2.PutHeader(
            layout=layout.to_proto(), token_ids=list(map(int, tokens)), cache_salt=bytes(salt),
            first_block=first_block, num_blocks=n, last_block_partial=last_block_partial,
            block_indices=list(block_indices), output_tokens=int(output_tokens))
        # Same-node: the store copies (and hashes) the blocks where they lie; no payload here.
        same_node = self._place_in_region(shm, blocks, h.shm)
        if not same_node:
            h.layer_checksums.extend(xxhash.xxh3_64_intdigest(v[off:off + lb])
                                     for v in views for off in range(0, bb, lb))
        header = cache_store_pb2.PutRequest(header=h)

        def requests() -> Iterator:
            yield header
            if same_node:
                return
            for v in views:
                for off in range(0, bb, self.put_chunk_bytes):
                    yield cache_store_pb2.PutRequest(data=bytes(v[off:off + self.put_chunk_bytes]))

        r = self._with_retries(
            lambda left: self._stub.Put(requests(), timeout=left, metadata=self._metadata),
            timeout)
        self.same_node_calls += same_node
        return PutResult(stored_blocks=r.stored_blocks, existing_blocks=r.existing_blocks,
                         keys=list(r.block_keys))

    def fetch(self, out: Sequence, *, lease_id: int = 0, keys: Sequence[bytes] = (),
              layer_major: bool = False,
              on_chunk: Optional[Callable[[int, int, int], None]] = None,
              max_chunk_bytes: int = 0, shm=None,
              timeout: Optional[float] = None) -> FetchResult:
        """Fetches the blocks of a lease (or explicit keys) into out[i] for block i. With
        shm (a SharedMemoryRegion holding every out buffer) and a shm_socket, the store
        copies the blocks into the region itself; this side still verifies every layer.

        on_chunk(block, offset, length) is called as soon as whole layers of a block are in
        its buffer and verified (layer-major: layer 0 of every block first)."""
        from kvtier.v1 import cache_store_pb2

        if bool(lease_id) == bool(keys):
            raise ValueError("fetch names a lease or keys, not both and not neither")
        views = [_writable_bytes(b) for b in out]
        request = cache_store_pb2.FetchRequest(
            lease_id=lease_id, block_keys=list(keys), max_chunk_bytes=max_chunk_bytes,
            order=(cache_store_pb2.FETCH_ORDER_LAYER_MAJOR if layer_major
                   else cache_store_pb2.FETCH_ORDER_BLOCK_MAJOR))
        same_node = self._place_in_region(shm, out, request.shm)

        def attempt(left: float) -> FetchResult:
            stream = self._stub.Fetch(request, timeout=left, metadata=self._metadata)
            blocks: List[FetchedBlock] = []
            arrived: List[int] = []
            verified: List[int] = []  # layers verified per block
            total = 0
            for i, message in enumerate(stream):
                if i == 0:
                    if len(message.blocks) != len(views):
                        raise DataLossError(f"the store sent {len(message.blocks)} blocks for "
                                            f"{len(views)} buffers")
                    for b, fb in enumerate(message.blocks):
                        if fb.size_bytes > len(views[b]):
                            raise ValueError(f"buffer {b} holds {len(views[b])} bytes; the block "
                                             f"has {fb.size_bytes}")
                        if not fb.layer_checksums or fb.size_bytes % len(fb.layer_checksums):
                            raise DataLossError(f"block {b}: malformed layer checksums")
                        blocks.append(FetchedBlock(fb.key, fb.size_bytes, fb.tier,
                                                   list(fb.layer_checksums)))
                    arrived = [0] * len(blocks)
                    verified = [0] * len(blocks)
                    continue
                ranges = ([(r.block, r.offset, r.length) for r in message.ranges]
                          if message.ranges else [(message.block, message.offset,
                                                   len(message.data))])
                data = memoryview(message.data)
                pos = 0
                for b, off, length in ranges:
                    if b >= len(blocks) or off != arrived[b] or off + length > blocks[b].size:
                        raise DataLossError(f"the store sent an unexpected range of block {b}")
                    if not same_node:  # same-node: the store copied it into the region
                        if pos + length > len(data):
                            raise DataLossError("a Fetch message is shorter than its ranges")
                        views[b][off:off + length] = data[pos:pos + length]
                        pos += length
                    arrived[b] += length
                    fb = blocks[b]
                    lb = fb.size // len(fb.layer_checksums)
                    first = verified[b]
                    while verified[b] < len(fb.layer_checksums) and \
                            (verified[b] + 1) * lb <= arrived[b]:
                        l = verified[b]
                        if xxhash.xxh3_64_intdigest(views[b][l * lb:(l + 1) * lb]) != \
                                fb.layer_checksums[l]:
                            raise DataLossError(f"block {b} layer {l} failed its checksum")
                        verified[b] += 1
                    if verified[b] > first:
                        total += (verified[b] - first) * lb
                        if on_chunk is not None:
                            on_chunk(b, first * lb, (verified[b] - first) * lb)
            if not blocks and not views:
                return FetchResult(blocks=[], bytes=0)
            for b, fb in enumerate(blocks):
                if verified[b] != len(fb.layer_checksums):
                    raise DataLossError(f"block {b} arrived incomplete")
            return FetchResult(blocks=blocks, bytes=total)

        # A Fetch that may have handed layers to the caller is not retried: a retry would
        # rewrite bytes the caller is using.
        result = self._with_retries(attempt, timeout, 1 if on_chunk is not None else None)
        self.same_node_calls += same_node
        return result

    def release(self, lease_id: int, *, timeout: Optional[float] = None) -> None:
        from kvtier.v1 import cache_store_pb2
        self._unary(self._stub.Release, cache_store_pb2.ReleaseRequest(lease_id=lease_id), timeout)

    def pin(self, keys: Sequence[bytes], *, ttl_s: float = 0, skip_missing: bool = False,
            timeout: Optional[float] = None) -> float:
        """Pins the blocks; returns the TTL granted in seconds. skip_missing: blocks this
        store does not hold are skipped rather than NOT_FOUND (one shard of a cluster)."""
        return self.pin_counted(keys, ttl_s=ttl_s, skip_missing=skip_missing,
                                timeout=timeout)[0]

    def pin_counted(self, keys: Sequence[bytes], *, ttl_s: float = 0,
                    skip_missing: bool = False, timeout: Optional[float] = None):
        """(TTL granted in seconds, blocks pinned)."""
        from kvtier.v1 import cache_store_pb2
        r = self._unary(self._stub.Pin, cache_store_pb2.PinRequest(
            block_keys=list(keys), ttl_ms=int(ttl_s * 1000), skip_missing=skip_missing), timeout)
        return r.ttl_ms / 1000, r.pinned_blocks

    def unpin(self, keys: Sequence[bytes], *, skip_missing: bool = False,
              timeout: Optional[float] = None) -> int:
        from kvtier.v1 import cache_store_pb2
        return self._unary(self._stub.Unpin, cache_store_pb2.UnpinRequest(
            block_keys=list(keys), skip_missing=skip_missing), timeout).unpinned_blocks

    def delete(self, keys: Sequence[bytes], *, skip_missing: bool = False,
               timeout: Optional[float] = None) -> int:
        from kvtier.v1 import cache_store_pb2
        return self._unary(self._stub.Delete, cache_store_pb2.DeleteRequest(
            block_keys=list(keys), skip_missing=skip_missing), timeout).deleted_blocks

    def stats(self, *, timeout: Optional[float] = None):
        """The store's StatsResponse (kvtier.v1.cache_store_pb2.StatsResponse)."""
        from kvtier.v1 import cache_store_pb2
        return self._unary(self._stub.Stats, cache_store_pb2.StatsRequest(), timeout)

    def watch_events(self, *, duration_s: float = 30.0) -> Iterator:
        """Yields WatchEventsResponse messages for `duration_s` (the first one is empty: the
        watch is live). Not retried: a broken watch ends the iteration with StoreError."""
        from kvtier.v1 import cache_store_pb2
        stream = self._stub.WatchEvents(cache_store_pb2.WatchEventsRequest(),
                                        timeout=duration_s, metadata=self._metadata)
        try:
            for message in stream:
                yield message
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise StoreError(e.code(), e.details()) from None
        finally:
            stream.cancel()
