"""ShardedClient: one cache over N kvtier-store shards, as client/sharded_client.h does it.

- Shards come from a list "host:port,host:port" or every address of "dns:///NAME:PORT"
  (re-resolved every resolve_interval_s); a shard joins under the name its Stats report
  (StatsResponse.shard_id).
- A Put's blocks go in runs of placement_span (counted from its first block) to the first
  `replication` live shards of the rendezvous ranking of each run's first routing key
  (kvtier.placement, the same as the C++ client's).
- lookup asks every live shard which of the prompt's blocks it holds (report_present; an
  ordinary lookup when there is one shard) and returns the longest prefix held somewhere,
  under one lease of this client that stands for the shards' leases.
- fetch reads each block from a shard that holds it, the shards in parallel, straight
  into the caller's buffers; in layer-major order on_chunk reports layer l once every block
  has it; a shard that fails hands its blocks to the next holder (bytes already reported
  are never rewritten: such blocks are refetched into scratch and only their tail copied).
- A shard that is down, refuses or is slower than the deadline is a miss for its blocks,
  never an error: it is skipped for a backoff (doubling) and tried again after it.
- fetch by keys needs the keys of a lookup through this client whose lease is held.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import random
import socket
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import grpc
import numpy as np

from kvtier.client import (CacheStoreClient, FetchResult, LookupResult, PutResult, StoreError,
                           _writable_bytes, split_blocks)
from kvtier.layout import KvLayout
from kvtier.placement import rank_shards, routing_keys, shard_name_hash

_SHARD_FAILURES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                   grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL,
                   grpc.StatusCode.ABORTED, grpc.StatusCode.DATA_LOSS}


def _is_shard_failure(e: BaseException) -> bool:
    return isinstance(e, StoreError) and e.code in _SHARD_FAILURES


def parse_targets(spec: str) -> Tuple[bool, List[str], str, str]:
    """(dns, static targets, dns host, dns port); ValueError naming the problem."""
    if spec.startswith("dns:"):
        rest = spec[4:]
        if not rest.startswith("///"):
            raise ValueError(f"store target {spec!r}: a DNS target is dns:///NAME:PORT")
        host, sep, port = rest[3:].rpartition(":")
        if not sep or not host or not port:
            raise ValueError(f"store target {spec!r}: a DNS target needs NAME:PORT")
        return True, [], host.strip("[]"), port
    targets = [t.strip() for t in spec.split(",")]
    if not targets or any(not t for t in targets):
        raise ValueError(f"store target {spec!r} has an empty entry")
    return False, sorted(set(targets)), "", ""


def is_cluster(spec: str) -> bool:
    return spec.startswith("dns:") or "," in spec


@dataclasses.dataclass
class ShardStatus:
    target: str
    id: str
    healthy: bool
    lookups: int = 0
    lookup_failures: int = 0
    put_blocks_committed: int = 0
    put_blocks_failed: int = 0
    fetched_blocks: int = 0
    fetch_failures: int = 0
    failover_blocks: int = 0


class _Shard:
    def __init__(self, target: str, client: CacheStoreClient):
        self.target = target
        self.client = client
        self.id = ""
        self.hash = 0
        self.lock = threading.Lock()
        self.down_until = 0.0
        self.backoff = 0.0
        self.counts = {k: 0 for k in ("lookups", "lookup_failures", "put_blocks_committed",
                                      "put_blocks_failed", "fetched_blocks", "fetch_failures",
                                      "failover_blocks")}

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counts[name] += n

    def usable(self) -> bool:
        with self.lock:
            return time.monotonic() >= self.down_until

    def note(self, error: Optional[BaseException], min_backoff: float, max_backoff: float):
        with self.lock:
            if error is None:
                self.backoff, self.down_until = 0.0, 0.0
            elif _is_shard_failure(error):
                self.backoff = min(max(self.backoff * 2, min_backoff), max_backoff)
                self.down_until = time.monotonic() + self.backoff / 2 + \
                    random.uniform(0, self.backoff / 2)


@dataclasses.dataclass
class _Lease:
    shard_leases: List[Tuple[_Shard, int]]
    keys: List[bytes]
    expires: float


class ShardedClient:
    def __init__(self, targets: str, *, replication: int = 1, placement_span: int = 128,
                 resolve_interval_s: float = 10.0, min_backoff_s: float = 0.25,
                 max_backoff_s: float = 10.0, threads: int = 16,
                 shm_socket_dir: Optional[str] = None, **client_options):
        """client_options: CacheStoreClient's (tenant, auth_token, timeout, tls, ...).
        shm_socket_dir: the attach sockets of the stores on this node as <shard_id>.sock;
        fetch and put with shm= use same-node delivery with those shards."""
        self._dns, self._static, self._host, self._port = parse_targets(targets)
        if replication < 1:
            raise ValueError("the replication factor is at least 1")
        self.spec = targets
        self.replication = replication
        self.placement_span = max(1, placement_span)
        self.min_backoff, self.max_backoff = min_backoff_s, max_backoff_s
        client_options.pop("shm_socket", None)
        self._client_options = dict(client_options, max_attempts=1)
        self._shm_socket_dir = shm_socket_dir
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads)
        self._lock = threading.Lock()
        self._by_target: Dict[str, _Shard] = {}
        self._view: List[_Shard] = []
        self._leases: Dict[int, _Lease] = {}
        self._located: Dict[bytes, List] = {}  # key -> [holders, leases]
        self._next_lease = 1
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self.refresh()
        self._refresher = threading.Thread(target=self._refresh_loop, args=(resolve_interval_s,),
                                           daemon=True)
        self._refresher.start()

    def close(self) -> None:
        self._stop.set()
        self._refresher.join()
        self._pool.shutdown(wait=True)
        with self._lock:
            for s in self._by_target.values():
                s.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- membership ----------------------------------------------------------------------

    def _resolve(self) -> List[str]:
        if not self._dns:
            return self._static
        found = set()
        for family, _, _, _, addr in socket.getaddrinfo(self._host, self._port,
                                                         type=socket.SOCK_STREAM):
            found.add(f"[{addr[0]}]:{addr[1]}" if family == socket.AF_INET6
                      else f"{addr[0]}:{addr[1]}")
        return sorted(found)

    def _refresh_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.refresh()
            except Exception:  # a DNS hiccup keeps the shards we know
                pass

    def refresh(self) -> None:
        """Resolves the targets and learns new shards' names now."""
        with self._refresh_lock:
            try:
                targets = self._resolve()
            except OSError:
                return
            with self._lock:
                nxt = {}
                for t in targets:
                    nxt[t] = self._by_target.get(t) or _Shard(
                        t, CacheStoreClient(t, **self._client_options))
                self._by_target = nxt
                unnamed = [s for s in nxt.values() if not s.id]

            def learn(s: _Shard) -> Optional[str]:
                try:
                    return s.client.stats().shard_id or s.target
                except StoreError:
                    return None

            names = list(self._pool.map(learn, unnamed))
            with self._lock:
                for s, name in zip(unnamed, names):
                    if name:
                        s.id, s.hash = name, shard_name_hash(name)
                        if self._shm_socket_dir:
                            sock = os.path.join(self._shm_socket_dir, f"{name}.sock")
                            if os.path.exists(sock):
                                s.client.shm_socket = sock  # this shard is on our node
                view, seen = [], set()
                for s in sorted((s for s in self._by_target.values() if s.id),
                                key=lambda s: (s.id, s.target)):
                    if s.id not in seen:
                        seen.add(s.id)
                        view.append(s)
                self._view = view

    def shards(self) -> List[ShardStatus]:
        with self._lock:
            shards = sorted(self._by_target.values(), key=lambda s: s.target)
        out = []
        for s in shards:
            with s.lock:
                counts = dict(s.counts)
            out.append(ShardStatus(target=s.target, id=s.id, healthy=bool(s.id) and s.usable(),
                                   **counts))
        return out

    def _snapshot(self) -> List[_Shard]:
        with self._lock:
            return list(self._view)

    def _note(self, shard: _Shard, error: Optional[BaseException]) -> None:
        shard.note(error, self.min_backoff, self.max_backoff)

    # -- lookup and leases ---------------------------------------------------------------

    def lookup(self, layout: KvLayout, tokens: Sequence[int], *, salt: bytes = b"",
               lease: bool = True, lease_ttl_s: float = 0) -> LookupResult:
        layout.validate()
        view = self._snapshot()
        total = len(tokens) // layout.tokens_per_block
        present_mode = len(view) > 1

        def ask(s: _Shard):
            s.count("lookups")
            try:
                r = s.client.lookup(layout, tokens, salt=salt, lease=lease,
                                    lease_ttl_s=lease_ttl_s, report_present=present_mode)
                self._note(s, None)
                if not present_mode:
                    r.present_blocks = list(range(r.matched_blocks))
                return r
            except StoreError as e:
                s.count("lookup_failures")
                self._note(s, e)
                return e

        usable = [s for s in view if s.usable()]
        answers = list(self._pool.map(ask, usable))
        holders: List[List[Tuple[int, int]]] = [[] for _ in range(total)]
        request_error = None
        any_ok = False
        for i, a in enumerate(answers):
            if isinstance(a, StoreError):
                if not _is_shard_failure(a):
                    request_error = a
                continue
            any_ok = True
            for j, b in enumerate(a.present_blocks):
                if b < total:
                    holders[b].append((i, j))
        if not any_ok and request_error is not None:
            raise request_error
        matched = 0
        while matched < total and holders[matched]:
            matched += 1
        keys, tiers, chosen = [], [], []
        for b in range(matched):
            h = holders[b]
            h = h[b % len(h):] + h[:b % len(h)]  # spread reads over the copies
            first, pos = answers[h[0][0]], h[0][1]
            keys.append(first.keys[pos])
            tiers.append(first.tiers[pos])
            chosen.append([usable[i] for i, _ in h])
        shard_leases = [(usable[i], a.lease_id) for i, a in enumerate(answers)
                        if not isinstance(a, StoreError) and a.lease_id]
        ttls = [a.lease_ttl_s for a in answers if not isinstance(a, StoreError) and a.lease_id]
        result = LookupResult(matched_blocks=matched, total_blocks=total, keys=keys, tiers=tiers,
                              lease_id=0, lease_ttl_s=min(ttls) if ttls else 0.0,
                              block_bytes=layout.block_bytes)
        if matched == 0 or not lease:
            self._release_shard_leases(shard_leases)
            return result
        with self._lock:
            self._sweep_leases()
            for key, hs in zip(keys, chosen):
                loc = self._located.setdefault(key, [hs, 0])
                loc[1] += 1
            result.lease_id = self._next_lease
            self._next_lease += 1
            self._leases[result.lease_id] = _Lease(shard_leases, keys,
                                                   time.monotonic() + result.lease_ttl_s)
        return result

    def _forget(self, lease: _Lease) -> None:
        for key in lease.keys:
            loc = self._located.get(key)
            if loc is not None:
                loc[1] -= 1
                if loc[1] == 0:
                    del self._located[key]

    def _sweep_leases(self) -> None:
        now = time.monotonic()
        for lid in [lid for lid, l in self._leases.items() if l.expires < now]:
            self._forget(self._leases.pop(lid))

    def _release_shard_leases(self, shard_leases) -> None:
        def release(item):
            s, lid = item
            if not s.usable():
                return  # it lapses at its TTL
            try:
                s.client.release(lid)
            except StoreError as e:
                if _is_shard_failure(e):
                    self._note(s, e)
        list(self._pool.map(release, shard_leases))

    def release(self, lease_id: int) -> None:
        with self._lock:
            lease = self._leases.pop(lease_id, None)
            if lease is None:
                raise StoreError(grpc.StatusCode.NOT_FOUND,
                                 f"no lease {lease_id} (released or expired)")
            self._forget(lease)
        self._release_shard_leases(lease.shard_leases)

    # -- put -----------------------------------------------------------------------------

    def put(self, layout: KvLayout, tokens: Sequence[int], first_block: int, payload, *,
            salt: bytes = b"", last_block_partial: bool = False, shm=None,
            output_tokens: int = 0) -> PutResult:
        layout.validate()
        blocks = split_blocks(payload, layout.block_bytes, keep_address=shm is not None)
        n = len(blocks)
        full = len(tokens) // layout.tokens_per_block
        if first_block + n > full:
            raise ValueError(f"the Put carries blocks up to {first_block + n - 1} but its "
                             f"{len(tokens)} token ids hold only {full} full blocks")
        view = self._snapshot()
        if not view:
            raise StoreError(grpc.StatusCode.UNAVAILABLE,
                             f"no store shard of {self.spec!r} has answered yet")
        routing = routing_keys(layout, salt, list(tokens)[:(first_block + n) *
                                                          layout.tokens_per_block])
        hashes = [s.hash for s in view]
        usable = [s.usable() for s in view]
        per_shard: Dict[int, List[int]] = {}
        for i in range(n):
            head = first_block + (i // self.placement_span) * self.placement_span
            taken = 0
            for s in rank_shards(hashes, routing[head]):
                if taken == self.replication:
                    break
                if usable[s]:
                    per_shard.setdefault(s, []).append(i)
                    taken += 1

        def put_on(item):
            s_index, mine = item
            s = view[s_index]
            try:
                r = s.client.put_blocks(layout, tokens, 0, [blocks[i] for i in mine], salt=salt,
                                        last_block_partial=last_block_partial and mine[-1] == n - 1,
                                        block_indices=[first_block + i for i in mine], shm=shm,
                                        output_tokens=output_tokens)
                self._note(s, None)
                s.count("put_blocks_committed", len(mine))
                return mine, r
            except StoreError as e:
                self._note(s, e)
                s.count("put_blocks_failed", len(mine))
                return mine, e

        outcomes = list(self._pool.map(put_on, per_shard.items()))
        keys: List[Optional[bytes]] = [None] * n
        stored = existing = 0
        first_error = None
        for mine, r in outcomes:
            if isinstance(r, StoreError):
                first_error = first_error or r
                continue
            stored += r.stored_blocks
            existing += r.existing_blocks
            for i, k in zip(mine, r.keys):
                keys[i] = keys[i] or k
        failed = sum(k is None for k in keys)
        if failed == n:
            raise first_error or StoreError(grpc.StatusCode.UNAVAILABLE,
                                            "every store shard that owns these blocks is down")
        return PutResult(stored_blocks=stored, existing_blocks=existing,
                         keys=[k or b"" for k in keys], failed_blocks=failed)

    # -- fetch ---------------------------------------------------------------------------

    def fetch(self, out: Sequence, *, lease_id: int = 0, keys: Sequence[bytes] = (),
              layer_major: bool = False,
              on_chunk: Optional[Callable[[int, int, int], None]] = None,
              max_chunk_bytes: int = 0, shm=None) -> FetchResult:
        with self._lock:
            self._sweep_leases()
            if lease_id:
                lease = self._leases.get(lease_id)
                if lease is None:
                    raise StoreError(grpc.StatusCode.NOT_FOUND,
                                     f"no lease {lease_id} (released or expired)")
                wanted = list(keys) or list(lease.keys)
            else:
                wanted = list(keys)
            holders = []
            for k in wanted:
                loc = self._located.get(k)
                if loc is None:
                    raise StoreError(grpc.StatusCode.NOT_FOUND,
                                     f"block {k.hex()[:16]}... is not one this client found: a "
                                     "sharded fetch takes the keys of a lookup through it "
                                     "whose lease is held")
                holders.append(list(loc[0]))
        if not wanted:
            raise ValueError("a fetch names at least one block")
        if len(out) != len(wanted):
            raise ValueError(f"a fetch of {len(wanted)} blocks needs as many buffers, "
                             f"not {len(out)}")
        views = [_writable_bytes(b) for b in out]
        n = len(wanted)
        cv = threading.Condition()
        delivered = [0] * n
        layer_bytes = [0] * n
        done = [False] * n
        tried = [0] * n
        blocks = [None] * n
        retry = list(range(n))
        state = {"running": 0, "changes": 0, "error": None}

        def run(shard: _Shard, mine: List[int]) -> None:
            scratch = {}
            targets = []
            with cv:
                for b in mine:
                    if delivered[b]:
                        scratch[b] = np.zeros(len(views[b]), np.uint8)
                        targets.append(scratch[b])
                    else:
                        targets.append(views[b])

            def chunk(i, off, length):
                b = mine[i]
                with cv:
                    if off > delivered[b] or off + length <= delivered[b]:
                        return
                    if b in scratch:
                        views[b][delivered[b]:off + length] = \
                            memoryview(scratch[b])[delivered[b]:off + length]
                    if not layer_bytes[b] and layer_major:
                        layer_bytes[b] = length
                    delivered[b] = off + length
                    state["changes"] += 1
                    cv.notify_all()

            try:
                r = shard.client.fetch(targets, keys=[wanted[b] for b in mine],
                                       layer_major=layer_major, on_chunk=chunk,
                                       max_chunk_bytes=max_chunk_bytes,
                                       shm=shm if not scratch else None)
                error = None
            except (StoreError, ValueError) as e:
                r, error = None, e
            self._note(shard, error if isinstance(error, StoreError) else None)
            shard.count("fetched_blocks" if error is None else "fetch_failures",
                        len(mine) if error is None else 1)
            with cv:
                for i, b in enumerate(mine):
                    if error is None:
                        blocks[b] = r.blocks[i]
                        delivered[b] = max(delivered[b], r.blocks[i].size)
                        done[b] = True
                    else:
                        retry.append(b)
                if error is not None:
                    state["error"] = f"store shard {shard.id} ({shard.target}): {error}"
                state["running"] -= 1
                state["changes"] += 1
                cv.notify_all()

        lost: List[int] = []
        reported = [0] * n
        layers_reported = 0
        seen = -1
        while True:
            launch: Dict[_Shard, List[int]] = {}
            emit = []
            with cv:
                cv.wait_for(lambda: state["changes"] != seen or retry)
                seen = state["changes"]
                for b in retry:
                    nxt = None
                    while tried[b] < len(holders[b]):
                        h = holders[b][tried[b]]
                        tried[b] += 1
                        if h.usable():
                            nxt = h
                            break
                    if nxt is None:
                        lost.append(b)
                        done[b] = True
                        continue
                    if tried[b] > 1:
                        nxt.count("failover_blocks")
                    launch.setdefault(nxt, []).append(b)
                retry.clear()
                if on_chunk is not None:
                    if layer_major:
                        have = [delivered[b] // layer_bytes[b] if layer_bytes[b] else 0
                                for b in range(n)]
                        pending = [have[b] for b in range(n) if not done[b]]
                        ready = min(pending) if pending else max(have)
                        while layers_reported < ready:
                            l = layers_reported
                            for b in range(n):
                                lb = layer_bytes[b]
                                if lb and (l + 1) * lb <= delivered[b]:
                                    emit.append((b, l * lb, lb))
                                    reported[b] = (l + 1) * lb
                            layers_reported += 1
                    else:
                        for b in range(n):
                            if delivered[b] > reported[b]:
                                emit.append((b, reported[b], delivered[b] - reported[b]))
                                reported[b] = delivered[b]
                state["running"] += len(launch)
                finished = state["running"] == 0
            for b, off, length in emit:
                on_chunk(b, off, length)
            for shard, mine in launch.items():
                self._pool.submit(run, shard, mine)
            if finished:
                break
        if lost:
            raise StoreError(grpc.StatusCode.UNAVAILABLE,
                             f"{len(lost)} of {n} blocks (first: block {min(lost)}) could not be "
                             f"fetched from any store shard that held them; last error: "
                             f"{state['error']}")
        return FetchResult(blocks=blocks, bytes=sum(delivered))

    # -- pin, unpin, delete: every live shard -------------------------------------------

    def _everywhere(self, call):
        def one(s: _Shard):
            try:
                r = call(s.client)
                self._note(s, None)
                return r
            except StoreError as e:
                self._note(s, e)
                return e
        results = list(self._pool.map(one, [s for s in self._snapshot() if s.usable()]))
        ok = [r for r in results if not isinstance(r, StoreError)]
        if not ok:
            raise next((r for r in results if isinstance(r, StoreError)),
                       StoreError(grpc.StatusCode.UNAVAILABLE, "no store shard answered"))
        return ok

    def pin(self, keys: Sequence[bytes], *, ttl_s: float = 0) -> float:
        ok = self._everywhere(lambda c: c.pin_counted(keys, ttl_s=ttl_s, skip_missing=True))
        held = [ttl for ttl, pinned in ok if pinned]
        if not held:
            raise StoreError(grpc.StatusCode.NOT_FOUND, "no live store shard holds these blocks")
        return min(held)

    def unpin(self, keys: Sequence[bytes]) -> int:
        return sum(self._everywhere(lambda c: c.unpin(keys, skip_missing=True)))

    def delete(self, keys: Sequence[bytes]) -> int:
        return sum(self._everywhere(lambda c: c.delete(keys, skip_missing=True)))


def connect(target: str, *, replication: int = 1, **options):
    """A CacheStoreClient for one HOST:PORT, a ShardedClient for a list or a dns:/// name."""
    if is_cluster(target):
        return ShardedClient(target, replication=replication, **options)
    return CacheStoreClient(target, **options)
