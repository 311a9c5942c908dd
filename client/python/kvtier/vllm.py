"""KvtierConnector: vLLM's K/V in kvtier (vLLM's v1 KV connector interface).

    vllm serve MODEL --kv-transfer-config '{"kv_connector": "KvtierConnector",
        "kv_connector_module_path": "kvtier.vllm", "kv_role": "kv_both",
        "kv_connector_extra_config": {"store": "127.0.0.1:50051", "tenant": "team-a"}}'

Extra config: store (HOST:PORT, a list or dns:///NAME:PORT), replication, tenant,
auth_token, salt, timeout_s. docs/vllm.md explains each.

Scheduler side: get_num_new_matched_tokens looks the prompt up in kvtier (with a lease)
and claims the full blocks kvtier holds beyond vLLM's own prefix cache (never the last
prompt token: vLLM computes at least one). build_connector_meta hands the worker the
blocks to load and the prompt blocks computed this step, which it saves.

Worker side: start_load_kv starts a layer-major fetch on a thread; wait_for_layer_load(l)
waits for layer l of every block and copies it into vLLM's pages, so layer l is used while
later layers arrive. save_kv_layer copies each layer of the blocks to save out of the pages;
wait_for_save hands them to a background thread that puts them. Blocks that fail to load
are reported by get_block_ids_with_load_errors, and vLLM recomputes them.

Layout: vLLM's per-layer view is [blocks, kv_heads, block_size, (K | V) bytes]; kvtier's
block is per layer K [block_size, kv_heads, head_dim] then V: converted with one permute per
layer (no loop per token). The kvtier layout's model id is the model's name, its dtype the
K/V dtype, its tokens_per_block vLLM's block size. vLLM's cache_salt and LoRA id go into
kvtier's salt.

An fp8 cache (--kv-cache-dtype fp8 / fp8_e4m3) is kept as kvtier's fp8_e4m3 layout: each
layer's elements as vLLM holds them, then the layer's K and V scales per KV head (vLLM's
per-layer k_scale and v_scale, repeated), so blocks carry their scales. A block saved with
other scales (another engine, another calibration) is rescaled into this engine's on load.
"""
from __future__ import annotations

import dataclasses
import queue
import re
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import grpc
import numpy as np
import torch
from vllm.distributed.kv_transfer.kv_connector.v1.base import (KVConnectorBase_V1,
                                                               KVConnectorMetadata,
                                                               KVConnectorRole)
from vllm.distributed.kv_transfer.kv_connector.v1.metrics import KVConnectorStats
from vllm.logger import init_logger

from kvtier.client import StoreError
from kvtier.layout import KvLayout
from kvtier.sharded import connect

# Under vLLM's logger tree, so that its handlers and level apply.
logger = init_logger("vllm.kvtier_connector")

_STAT_KEYS = ("lookups", "lookup_hit_tokens", "loaded_blocks", "load_failed_blocks",
              "saved_blocks", "save_failed_blocks", "store_errors")


@dataclasses.dataclass
class KvtierConnectorStats(KVConnectorStats):
    """The connector's counters for one interval, summed across workers."""

    def reset(self):
        self.data = {k: 0 for k in _STAT_KEYS}

    def aggregate(self, other: "KVConnectorStats") -> "KVConnectorStats":
        for k, v in (other.data or {}).items():
            self.data[k] = self.data.get(k, 0) + v
        return self

    def reduce(self):
        return {f"kvtier_{k}": v for k, v in self.data.items()}

    def is_empty(self) -> bool:
        return not any(self.data.values())

_TORCH_DTYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
_FP8_CACHE_DTYPES = ("fp8", "fp8_e4m3")
_E4M3_MAX = 448.0


def pack_layer(pages: torch.Tensor, scales: Optional[Tuple[float, float]] = None) -> torch.Tensor:
    """vLLM pages of one layer -> kvtier's bytes of that layer, one row per block.

    pages: [n, kv_heads, block_size, (K | V) bytes] as uint8. scales: (k_scale, v_scale) for
    an fp8 layer, appended as K_scale[kv_heads] then V_scale[kv_heads] (fp32)."""
    n, h, t, c = pages.shape
    raw = pages.contiguous().view(torch.uint8).reshape(n, h, t, 2, c // 2)
    out = raw.permute(0, 3, 2, 1, 4).reshape(n, -1)
    if scales is None:
        return out
    tail = torch.tensor([scales[0]] * h + [scales[1]] * h, dtype=torch.float32)
    return torch.cat([out, tail.view(torch.uint8).reshape(1, -1).expand(n, -1)], dim=1)


def unpack_layer(data: torch.Tensor, shape, scales: Optional[Tuple[float, float]] = None
                 ) -> torch.Tensor:
    """kvtier's bytes of one layer, one row per block -> vLLM pages [n, H, N, (K | V) bytes].

    For an fp8 layer, `scales` are this engine's (k_scale, v_scale): elements of a block
    stored with other scales are converted (value = element x block scale; saturating)."""
    n, h, t, c = shape
    elements = t * h * c
    body = data[:, :elements]
    if scales is not None:
        got = data[:, elements:elements + 8 * h].contiguous().view(torch.float32).reshape(n, 2, h)
        want = torch.tensor(scales, dtype=torch.float32).reshape(1, 2, 1)
        if not torch.equal(got, want.expand(n, 2, h)):
            x = body.contiguous().view(torch.float8_e4m3fn).reshape(n, 2, t, h, c // 2)
            ratio = (got / want).reshape(n, 2, 1, h, 1)
            y = (x.to(torch.float32) * ratio).clamp(-_E4M3_MAX, _E4M3_MAX)
            body = y.to(torch.float8_e4m3fn).view(torch.uint8).reshape(n, elements)
    return body.reshape(n, 2, t, h, c // 2).permute(0, 3, 2, 1, 4).reshape(n, h, t, c)


@dataclasses.dataclass
class _Load:
    req_id: str
    tokens: List[int]  # the prompt up to the last block to load
    first_block: int  # blocks [first_block, first_block + len(block_ids)) of the prompt
    block_ids: List[int]
    salt: bytes


@dataclasses.dataclass
class _Save:
    req_id: str
    tokens: List[int]
    first_block: int
    block_ids: List[int]
    salt: bytes
    output_tokens: int = 0  # the request's max_tokens: PutHeader.output_tokens


def _output_budget(request) -> int:
    """What the request may generate (vLLM's max_tokens), or 0 when it does not say. The
    blocks are saved while the request runs, before its real output length is known; the
    store learns how often prompts come back per output-length class either way."""
    n = getattr(request, "max_tokens", None)
    if n is None:
        n = getattr(getattr(request, "sampling_params", None), "max_tokens", None)
    try:
        return min(max(int(n or 0), 0), 2**32 - 1)
    except (TypeError, ValueError):
        return 0


@dataclasses.dataclass
class KvtierConnectorMetadata(KVConnectorMetadata):
    loads: List[_Load] = dataclasses.field(default_factory=list)
    saves: List[_Save] = dataclasses.field(default_factory=list)


def _salt(request, base: bytes) -> bytes:
    parts = [base]
    cache_salt = getattr(request, "cache_salt", None)
    if cache_salt:
        parts.append(b"cache_salt=" + str(cache_salt).encode())
    lora = getattr(request, "lora_request", None)
    if lora is not None:
        parts.append(b"lora=" + str(getattr(lora, "lora_int_id", lora)).encode())
    return b"|".join(parts)


class KvtierConnector(KVConnectorBase_V1):
    def __init__(self, vllm_config, role: KVConnectorRole, kv_cache_config=None):
        super().__init__(vllm_config=vllm_config, role=role, kv_cache_config=kv_cache_config)
        extra = self._kv_transfer_config.kv_connector_extra_config or {}
        self._block_size = vllm_config.cache_config.block_size
        model = vllm_config.model_config
        parallel = vllm_config.parallel_config
        dtype = model.dtype
        cache_dtype = vllm_config.cache_config.cache_dtype
        if cache_dtype not in ("auto", None) + _FP8_CACHE_DTYPES:
            raise ValueError(f"kvtier: kv cache dtype {cache_dtype!r} has no kvtier layout "
                             f"(auto, fp8 or fp8_e4m3)")
        if dtype not in _TORCH_DTYPES:
            raise ValueError(f"kvtier: K/V dtype {dtype} has no kvtier layout")
        self._fp8 = cache_dtype in _FP8_CACHE_DTYPES
        self._vllm_config = vllm_config
        self._layout = KvLayout(
            model_id=str(extra.get("model_id") or model.served_model_name or model.model),
            num_layers=model.get_num_layers(parallel),
            num_kv_heads=model.get_num_kv_heads(parallel),
            head_dim=model.get_head_size(),
            dtype="fp8_e4m3" if self._fp8 else _TORCH_DTYPES[dtype],
            tokens_per_block=self._block_size)
        self._layout.validate()
        self._salt = str(extra.get("salt", "")).encode()
        self._store = connect(str(extra.get("store", "127.0.0.1:50051")),
                              replication=int(extra.get("replication", 1)),
                              tenant=str(extra.get("tenant", "default")),
                              auth_token=extra.get("auth_token") or None,
                              timeout=float(extra.get("timeout_s", 5.0)))
        self.stats = {k: 0 for k in _STAT_KEYS}  # since start
        self._reported = dict(self.stats)  # at the last get_kv_connector_stats
        # Scheduler side.
        self._pending_loads: Dict[str, _Load] = {}
        self._local_hits: Dict[str, int] = {}
        self._requests: Dict[str, Any] = {}  # running requests, for their generated tokens
        self._salt_of: Dict[str, bytes] = {}
        self._leases: Dict[str, int] = {}
        self._saved_upto: Dict[str, int] = {}
        # Worker side.
        self._layers: List[Tuple[str, torch.Tensor]] = []
        self._layer_index: Dict[str, int] = {}
        self._scales: List[Optional[Tuple[float, float]]] = []  # per layer, fp8 only
        self._load_state: Optional[dict] = None
        self._save_staging: List[Tuple[_Save, np.ndarray]] = []
        self._save_queue: "queue.Queue" = queue.Queue(maxsize=64)
        self._saver: Optional[threading.Thread] = None

    # ---------------------------------------------------------------- scheduler side

    def get_num_new_matched_tokens(self, request, num_computed_tokens: int):
        tokens = list(request.prompt_token_ids or [])
        bs = self._block_size
        # vLLM computes at least the last prompt token.
        usable_blocks = (len(tokens) - 1) // bs
        self._local_hits[request.request_id] = num_computed_tokens
        self._requests[request.request_id] = request
        salt = _salt(request, self._salt)
        self._salt_of[request.request_id] = salt
        if usable_blocks * bs <= num_computed_tokens:
            return 0, False
        try:
            found = self._store.lookup(self._layout, tokens[:usable_blocks * bs], salt=salt)
        except StoreError as e:
            self.stats["store_errors"] += 1
            logger.warning("kvtier lookup failed (a miss): %s", e)
            return 0, False
        self.stats["lookups"] += 1
        if found.lease_id:
            old = self._leases.pop(request.request_id, None)
            if old:
                self._release(old)
            self._leases[request.request_id] = found.lease_id
        hit_tokens = found.matched_blocks * bs
        if hit_tokens <= num_computed_tokens:
            return 0, False
        self.stats["lookup_hit_tokens"] += hit_tokens - num_computed_tokens
        return hit_tokens - num_computed_tokens, False

    def update_state_after_alloc(self, request, blocks, num_external_tokens: int):
        if num_external_tokens <= 0:
            return
        bs = self._block_size
        block_ids = list(blocks.get_block_ids()[0])
        local = self._local_hits.pop(request.request_id, request.num_computed_tokens)
        start = local // bs
        end = (local + num_external_tokens) // bs
        self._pending_loads[request.request_id] = _Load(
            req_id=request.request_id, tokens=list(request.prompt_token_ids[:end * bs]),
            first_block=start, block_ids=block_ids[start:end],
            salt=_salt(request, self._salt))

    def build_connector_meta(self, scheduler_output) -> KVConnectorMetadata:
        meta = KvtierConnectorMetadata(loads=list(self._pending_loads.values()))
        self._pending_loads.clear()
        bs = self._block_size
        # Save every block that becomes full this step (prompt chunks, then the generated
        # tokens, so that the next turn of a conversation finds them): blocks
        # [saved so far, tokens with K/V after this step // block size).
        for new_req in scheduler_output.scheduled_new_reqs:
            tokens = list(new_req.prompt_token_ids or [])
            scheduled = scheduler_output.num_scheduled_tokens.get(new_req.req_id, 0)
            done = min(new_req.num_computed_tokens + scheduled, len(tokens))
            first = new_req.num_computed_tokens // bs
            last = done // bs
            self._saved_upto[new_req.req_id] = max(first, last)
            if last > first:
                ids = list(new_req.block_ids[0])
                meta.saves.append(_Save(new_req.req_id, tokens[:last * bs], first,
                                        ids[first:last], self._salt_of.get(new_req.req_id,
                                                                           self._salt),
                                        _output_budget(self._requests.get(new_req.req_id))))
        cached = scheduler_output.scheduled_cached_reqs
        manager = getattr(self, "_kv_cache_manager", None)
        for i, req_id in enumerate(cached.req_ids):
            request = self._requests.get(req_id)
            if request is None or manager is None or req_id not in self._saved_upto:
                continue
            done = cached.num_computed_tokens[i] + scheduler_output.num_scheduled_tokens.get(
                req_id, 0)
            tokens = list(request.all_token_ids)
            first, last = self._saved_upto[req_id], min(done, len(tokens)) // bs
            if last <= first:
                continue
            ids = list(manager.get_block_ids(req_id)[0])
            if len(ids) < last:
                continue
            self._saved_upto[req_id] = last
            meta.saves.append(_Save(req_id, tokens[:last * bs], first, ids[first:last],
                                    self._salt_of.get(req_id, self._salt),
                                    _output_budget(request)))
        return meta

    def request_finished(self, request, block_ids):
        self._local_hits.pop(request.request_id, None)
        self._requests.pop(request.request_id, None)
        self._salt_of.pop(request.request_id, None)
        self._saved_upto.pop(request.request_id, None)
        lease = self._leases.pop(request.request_id, None)
        if lease:
            self._release(lease)
        return False, None

    def _release(self, lease_id: int) -> None:
        try:
            self._store.release(lease_id)
        except StoreError:
            pass  # it lapses at its TTL

    # ---------------------------------------------------------------- worker side

    def register_kv_caches(self, kv_caches: Dict[str, torch.Tensor]):
        def index(name: str) -> int:
            m = re.search(r"\d+", name)
            return int(m.group()) if m else 0
        self._layers = sorted(kv_caches.items(), key=lambda kv: index(kv[0]))
        self._layer_index = {name: i for i, (name, _) in enumerate(self._layers)}
        lay = self._layout
        context = getattr(getattr(self._vllm_config, "compilation_config", None),
                          "static_forward_context", None) or {}
        self._scales = []
        for name, t in self._layers:
            if self._fp8:  # the attention layer's static per-layer scales
                attn = context.get(name)
                self._scales.append((float(getattr(attn, "_k_scale_float", 1.0)),
                                     float(getattr(attn, "_v_scale_float", 1.0))))
            else:
                self._scales.append(None)
            # [blocks, kv_heads, block_size, (K | V) bytes]
            cell = lay.layer_element_bytes // (lay.tokens_per_block * lay.num_kv_heads)
            if t.dim() != 4 or t.shape[1] != lay.num_kv_heads or \
                    t.shape[2] != lay.tokens_per_block or t.shape[3] * t.element_size() != cell:
                raise ValueError(f"kvtier: layer {name} has an unexpected K/V page view "
                                 f"{tuple(t.shape)} {t.dtype}")
        if len(self._layers) != lay.num_layers:
            raise ValueError(f"kvtier: {len(self._layers)} attention layers, layout says "
                             f"{lay.num_layers}")

    def start_load_kv(self, forward_context, **kwargs: Any) -> None:
        meta = self._get_connector_metadata()
        if not isinstance(meta, KvtierConnectorMetadata) or not meta.loads:
            self._load_state = None
            return
        lay = self._layout
        state = {"cv": threading.Condition(), "loads": [], "errors": set(), "layers": 0,
                 "done": False, "copied": set()}
        for load in meta.loads:
            staging = np.zeros((len(load.block_ids), lay.block_bytes), np.uint8)
            state["loads"].append((load, staging, [0] * len(load.block_ids)))

        def fetch_all():
            for load, staging, arrived in state["loads"]:
                try:
                    found = self._store.lookup(lay, load.tokens, salt=load.salt)
                    want = load.first_block + len(load.block_ids)
                    if found.matched_blocks < want:
                        raise StoreError(grpc.StatusCode.NOT_FOUND,
                                         f"{found.matched_blocks} of {want} blocks still there")
                    keys = found.keys[load.first_block:want]
                    try:
                        def on_chunk(b, off, length, arrived=arrived):
                            with state["cv"]:
                                arrived[b] = max(arrived[b], off + length)
                                state["cv"].notify_all()
                        self._store.fetch([staging[i] for i in range(len(keys))], keys=keys,
                                          layer_major=True, on_chunk=on_chunk)
                    finally:
                        if found.lease_id:
                            self._store.release(found.lease_id)
                    self.stats["loaded_blocks"] += len(keys)
                    logger.info("kvtier: restored %d blocks (%d tokens) of %s", len(keys),
                                len(keys) * lay.tokens_per_block, load.req_id)
                except (StoreError, ValueError) as e:
                    logger.warning("kvtier load of %s failed; vLLM recomputes: %s",
                                   load.req_id, e)
                    self.stats["load_failed_blocks"] += len(load.block_ids)
                    with state["cv"]:
                        state["errors"].update(load.block_ids)
            with state["cv"]:
                state["done"] = True
                state["cv"].notify_all()

        self._load_state = state
        threading.Thread(target=fetch_all, daemon=True).start()

    def wait_for_layer_load(self, layer_name: str) -> None:
        state = self._load_state
        if state is None or layer_name not in self._layer_index:
            return
        l = self._layer_index[layer_name]
        lb = self._layout.layer_bytes
        layer = self._layers[l][1]
        with state["cv"]:
            state["cv"].wait_for(lambda: state["done"] or all(
                all(a >= (l + 1) * lb for a in arrived) for _, _, arrived in state["loads"]))
            failed = set(state["errors"])
        for load, staging, arrived in state["loads"]:
            if any(b in failed for b in load.block_ids) or any(a < (l + 1) * lb for a in arrived):
                with state["cv"]:
                    state["errors"].update(load.block_ids)
                continue
            ids = torch.tensor(load.block_ids, dtype=torch.long)
            data = torch.from_numpy(staging[:, l * lb:(l + 1) * lb])
            pages = unpack_layer(data, (len(load.block_ids), *layer.shape[1:3],
                                        layer.shape[3] * layer.element_size()), self._scales[l])
            layer.view(torch.uint8).view(layer.shape[0], *pages.shape[1:])[ids] = pages

    def get_block_ids_with_load_errors(self) -> set:
        state = self._load_state
        if state is None:
            return set()
        with state["cv"]:
            state["cv"].wait_for(lambda: state["done"])
            return set(state["errors"])

    def save_kv_layer(self, layer_name: str, kv_layer: torch.Tensor, attn_metadata,
                      **kwargs: Any) -> None:
        meta = self._get_connector_metadata()
        if not isinstance(meta, KvtierConnectorMetadata) or not meta.saves:
            return
        l = self._layer_index.get(layer_name)
        if l is None:
            return
        lb = self._layout.layer_bytes
        if not self._save_staging:
            self._save_staging = [(s, np.zeros((len(s.block_ids), self._layout.block_bytes),
                                               np.uint8)) for s in meta.saves]
        for save, staging in self._save_staging:
            ids = torch.tensor(save.block_ids, dtype=torch.long)
            pages = kv_layer.view(torch.uint8).view(
                kv_layer.shape[0], kv_layer.shape[1], kv_layer.shape[2],
                kv_layer.shape[3] * kv_layer.element_size())[ids]
            staging[:, l * lb:(l + 1) * lb] = pack_layer(pages, self._scales[l]).numpy()

    def wait_for_save(self):
        staged, self._save_staging = self._save_staging, []
        if not staged:
            return
        if self._saver is None:
            self._saver = threading.Thread(target=self._save_loop, daemon=True)
            self._saver.start()
        for item in staged:
            try:
                self._save_queue.put_nowait(item)
            except queue.Full:  # a slow store: the blocks are a future miss, not a stall
                self.stats["save_failed_blocks"] += len(item[0].block_ids)

    def _save_loop(self) -> None:
        while True:
            save, staging = self._save_queue.get()
            try:
                self._store.put(self._layout, save.tokens, save.first_block, staging,
                                salt=save.salt, output_tokens=save.output_tokens)
                self.stats["saved_blocks"] += len(save.block_ids)
            except (StoreError, ValueError) as e:
                self.stats["save_failed_blocks"] += len(save.block_ids)
                logger.warning("kvtier save of %s failed: %s", save.req_id, e)
            finally:
                self._save_queue.task_done()

    def get_kv_connector_stats(self):
        """What changed since the last call (vLLM's connector metrics hook)."""
        now = dict(self.stats)
        delta = {k: now[k] - self._reported.get(k, 0) for k in now}
        self._reported = now
        return KvtierConnectorStats(data=delta) if any(delta.values()) else None

    @classmethod
    def build_kv_connector_stats(cls, data=None):
        return KvtierConnectorStats(data=dict(data or {k: 0 for k in _STAT_KEYS}))

    def flush(self, timeout_s: float = 30.0) -> None:
        """Waits for queued saves (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._save_queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def shutdown(self):
        self.flush()
