"""The kvtier package against a real kvtier-store process (KVTIER_STORE_BINARY)."""
import pathlib
import signal
import time

import numpy as np
import pytest

from conftest import Store
from kvtier import CacheStoreClient, DataLossError, KvLayout, StoreError, block_keys

ROOT = pathlib.Path(__file__).resolve().parents[3]
LAYOUT = KvLayout("py-test", num_layers=4, num_kv_heads=2, head_dim=32, dtype="fp16",
                  tokens_per_block=8)


@pytest.fixture
def store():
    s = Store()
    yield s
    s.stop(signal.SIGKILL)


def prompt(blocks, seed):
    return [(seed * 7919 + i * 31) % 128000 for i in range(blocks * LAYOUT.tokens_per_block)]


def payload(blocks, seed):
    return np.random.default_rng(seed).integers(0, 256, blocks * LAYOUT.block_bytes,
                                                dtype=np.uint8)


def test_known_answer_keys_shared_with_cpp():
    path = ROOT / "tests/data/block_key_vectors.txt"
    cases = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        f = line.split("|")
        codes = {1: "fp32", 2: "fp16", 3: "bf16", 4: "fp8_e4m3", 5: "int8"}
        layout = KvLayout(f[1], int(f[2]), int(f[3]), int(f[4]), codes[int(f[5])], int(f[6]))
        tokens = [int(t) for t in f[8].split(",") if t]
        want = [k for k in f[9].split(",") if k]
        assert [k.hex() for k in block_keys(f[0], layout, tokens, f[7])] == want, line
        cases += 1
    assert cases >= 5


def test_known_answer_layouts_shared_with_cpp():
    """Sizes and fingerprints of tests/data/layout_vectors.txt, as the C++ test reads them."""
    codes = {1: "fp32", 2: "fp16", 3: "bf16", 4: "fp8_e4m3", 5: "int8"}
    cases = 0
    for line in (ROOT / "tests/data/layout_vectors.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        f = line.split("|")
        layout = KvLayout(f[1], int(f[2]), int(f[3]), int(f[4]), codes[int(f[7])], int(f[8]),
                          kind=f[0], kv_lora_rank=int(f[5]), rope_dim=int(f[6]))
        layout.validate()
        assert (layout.layer_bytes, layout.block_bytes) == (int(f[9]), int(f[10])), line
        assert f"{layout.fingerprint():016x}" == f[11], line
        cases += 1
    assert cases >= 8


def test_quantized_and_mla_layouts_round_trip_beside_each_other(store):
    """An fp8 layout (scales in the payload) and an MLA one share the store with LAYOUT."""
    fp8 = KvLayout("py-fp8", num_layers=4, num_kv_heads=2, head_dim=32, dtype="fp8_e4m3",
                   tokens_per_block=8)
    mla = KvLayout.mla("py-mla", num_layers=3, kv_lora_rank=64, rope_dim=16, dtype="bf16",
                       tokens_per_block=8)
    assert fp8.layer_bytes == 2 * 2 * 32 * 8 + 2 * 2 * 4
    with CacheStoreClient(store.target, tenant="py") as c:
        tokens = prompt(3, 5)
        for layout in (LAYOUT, fp8, mla):
            data = np.random.default_rng(layout.block_bytes).integers(
                0, 256, 3 * layout.block_bytes, dtype=np.uint8)
            assert c.put(layout, tokens, 0, data).stored_blocks == 3
            found = c.lookup(layout, tokens)
            assert found.matched_blocks == 3 and found.block_bytes == layout.block_bytes
            out = [np.zeros(layout.block_bytes, np.uint8) for _ in range(3)]
            c.fetch(out, lease_id=found.lease_id)
            assert np.array_equal(np.concatenate(out), data)
            c.release(found.lease_id)


def test_put_lookup_fetch_round_trip_in_both_orders(store):
    with CacheStoreClient(store.target, tenant="py") as c:
        tokens, data = prompt(6, 1), payload(6, 1)
        # A partial tail is not a block; output_tokens is a hint for the store's policy.
        put = c.put(LAYOUT, tokens + [1, 2, 3], 0, data, output_tokens=40)
        assert put.stored_blocks == 6
        assert put.keys == block_keys("py", LAYOUT, tokens)  # the store's keys are ours
        assert c.put(LAYOUT, tokens, 0, data).existing_blocks == 6  # idempotent

        found = c.lookup(LAYOUT, tokens)
        assert (found.matched_blocks, found.total_blocks) == (6, 6)
        assert found.lease_id and found.block_bytes == LAYOUT.block_bytes
        for layer_major in (False, True):
            out = [np.zeros(LAYOUT.block_bytes, np.uint8) for _ in range(6)]
            reports = []
            r = c.fetch(out, lease_id=found.lease_id, layer_major=layer_major,
                        on_chunk=lambda b, off, n: reports.append((b, off, n)))
            assert r.bytes == data.size
            assert np.array_equal(np.concatenate(out), data)
            if layer_major:  # every block's layer 0 before any layer 1
                layers = [off // LAYOUT.layer_bytes for _, off, _ in reports]
                assert layers == sorted(layers) and len(reports) == 6 * LAYOUT.num_layers
        c.release(found.lease_id)

        # Into a bytearray and a memoryview by keys; a torch tensor where torch is there.
        ba = bytearray(LAYOUT.block_bytes)
        c.fetch([memoryview(ba)], keys=[found.keys[2]])
        assert bytes(ba) == data[2 * LAYOUT.block_bytes:3 * LAYOUT.block_bytes].tobytes()

        assert c.pin(found.keys[:2], ttl_s=5) > 0
        assert c.unpin(found.keys[:2]) == 2
        assert c.delete(found.keys[5:]) == 1
        assert c.lookup(LAYOUT, tokens, lease=False).matched_blocks == 5
        stats = c.stats()
        assert stats.put_stored_blocks == 6
        assert stats.put_output_reported_blocks == 6


def test_fetch_into_torch_tensors_when_torch_is_installed(store):
    torch = pytest.importorskip("torch")
    with CacheStoreClient(store.target, tenant="py") as c:
        tokens, data = prompt(2, 5), payload(2, 5)
        c.put(LAYOUT, tokens, 0, torch.from_numpy(data))
        found = c.lookup(LAYOUT, tokens)
        out = [torch.zeros(LAYOUT.block_bytes, dtype=torch.uint8) for _ in range(2)]
        c.fetch(out, lease_id=found.lease_id)
        assert np.array_equal(torch.cat(out).numpy(), data)


def test_bad_input_is_refused_by_name_and_stores_nothing(store):
    with CacheStoreClient(store.target, tenant="py") as c:
        tokens = prompt(2, 2)
        with pytest.raises(ValueError, match="whole number of"):
            c.put(LAYOUT, tokens, 0, np.zeros(100, np.uint8))
        with pytest.raises(ValueError, match="num_layers"):
            c.lookup(KvLayout("m", 0, 1, 1), tokens)
        with pytest.raises(ValueError, match="output_tokens is -1"):
            c.put(LAYOUT, tokens, 0, payload(2, 2), output_tokens=-1)
        with pytest.raises(StoreError) as e:  # tokens do not cover the blocks
            c.put(LAYOUT, tokens[:8], 0, payload(2, 2))
        assert e.value.code.name == "INVALID_ARGUMENT" and "hold only" in e.value.message
        with pytest.raises(ValueError, match="writable"):
            c.fetch([b"x" * LAYOUT.block_bytes], keys=[b"\0" * 32])
        with pytest.raises(ValueError, match="lease or keys"):
            c.fetch([bytearray(1)])
        with pytest.raises(StoreError) as e:
            c.fetch([bytearray(LAYOUT.block_bytes)], keys=[b"\1" * 32])
        assert e.value.code.name == "NOT_FOUND"
        assert c.lookup(LAYOUT, tokens, lease=False).matched_blocks == 0
        assert c.stats().put_stored_blocks == 0


def test_tenants_never_see_each_others_blocks(store):
    tokens, data = prompt(3, 3), payload(3, 3)
    with CacheStoreClient(store.target, tenant="a") as a, \
            CacheStoreClient(store.target, tenant="b") as b:
        keys = a.put(LAYOUT, tokens, 0, data).keys
        assert b.lookup(LAYOUT, tokens).matched_blocks == 0
        with pytest.raises(StoreError) as e:
            b.fetch([bytearray(LAYOUT.block_bytes)], keys=keys[:1])
        assert e.value.code.name == "NOT_FOUND"
        with pytest.raises(StoreError):
            b.delete(keys)
        assert a.lookup(LAYOUT, tokens, lease=False).matched_blocks == 3


def test_a_corrupted_layer_is_data_loss_never_returned(store, monkeypatch):
    import xxhash
    with CacheStoreClient(store.target, tenant="py") as c:
        tokens, data = prompt(1, 4), payload(1, 4)
        c.put(LAYOUT, tokens, 0, data)
        found = c.lookup(LAYOUT, tokens)
        # The client's view of a layer's hash is off by one: what arrived does not match.
        real = xxhash.xxh3_64_intdigest
        monkeypatch.setattr(xxhash, "xxh3_64_intdigest", lambda b: real(b) ^ 1)
        reports = []
        with pytest.raises(DataLossError):
            c.fetch([np.zeros(LAYOUT.block_bytes, np.uint8)], lease_id=found.lease_id,
                    on_chunk=lambda *a: reports.append(a))
        assert reports == []  # nothing unverified was reported


def test_a_store_that_dies_is_an_error_within_the_deadline_not_a_hang():
    s = Store()
    with CacheStoreClient(s.target, tenant="py", timeout=2.0) as c:
        tokens = prompt(2, 6)
        c.put(LAYOUT, tokens, 0, payload(2, 6))
        s.stop(signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(StoreError) as e:
            c.lookup(LAYOUT, tokens)
        assert e.value.code.name in ("UNAVAILABLE", "DEADLINE_EXCEEDED")
        assert time.monotonic() - start < 3.0


def test_a_store_stopped_mid_stream_ends_the_fetch_with_an_error():
    # 32 MiB: far more than the transport buffers, so most of it is still to come.
    s = Store("--fetch_chunk_bytes=4096", "--t1_bytes=67108864")
    n = 4096
    with CacheStoreClient(s.target, tenant="py", timeout=5.0) as c:
        tokens, data = prompt(n, 7), payload(n, 7)
        c.put(LAYOUT, tokens, 0, data)
        found = c.lookup(LAYOUT, tokens)
        out = [np.zeros(LAYOUT.block_bytes, np.uint8) for _ in range(n)]
        seen = []

        def on_chunk(b, off, n):
            if not seen:
                s.stop(signal.SIGKILL)  # after the first verified layer
            seen.append(b)

        start = time.monotonic()
        with pytest.raises(StoreError):
            c.fetch(out, lease_id=found.lease_id, on_chunk=on_chunk)
        assert time.monotonic() - start < 6.0
        assert seen and len(seen) < n * LAYOUT.num_layers  # the layers before the death were reported, verified


def test_watch_events_streams_what_happens(store):
    import threading
    with CacheStoreClient(store.target, tenant="py") as c:
        events = []
        live = threading.Event()

        def watch():
            for message in c.watch_events(duration_s=5):
                live.set()
                events.extend(message.events)
                if len(events) >= 2:
                    return

        t = threading.Thread(target=watch)
        t.start()
        assert live.wait(5)  # the first (empty) message: the watch is live
        c.put(LAYOUT, prompt(2, 8), 0, payload(2, 8))
        t.join(10)
        assert not t.is_alive()
        assert [e.type for e in events[:2]] == [1, 1]  # TYPE_STORED


def test_tls_and_bearer_tokens(tmp_path):
    import subprocess as sp
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    sp.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    tokens = tmp_path / "tokens"
    tokens.write_text("secret-a team-a\n")
    s = Store(f"--tls_cert_file={cert}", f"--tls_key_file={key}",
              f"--auth_token_file={tokens}")
    try:
        pem = cert.read_bytes()
        with CacheStoreClient(s.target, tls=True, root_certificates=pem,
                              auth_token="secret-a") as c:
            put = c.put(LAYOUT, prompt(2, 9), 0, payload(2, 9))
            # The store derived the keys from the token's tenant.
            assert put.keys == block_keys("team-a", LAYOUT, prompt(2, 9))
        with CacheStoreClient(s.target, tls=True, root_certificates=pem,
                              auth_token="wrong") as c:
            with pytest.raises(StoreError) as e:
                c.lookup(LAYOUT, prompt(2, 9))
            assert e.value.code.name == "UNAUTHENTICATED"
        with CacheStoreClient(s.target, auth_token="secret-a", timeout=2.0) as c:
            with pytest.raises(StoreError):  # plaintext to a TLS port
                c.lookup(LAYOUT, prompt(2, 9))
    finally:
        s.stop(signal.SIGKILL)
