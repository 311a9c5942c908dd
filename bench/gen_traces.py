#!/usr/bin/env python3
"""Synthetic KV-cache traces in the Mooncake format (JSONL: timestamp ms, input_length,
output_length, hash_ids with one id per 512-token block; equal ids at equal positions mean
an identical prefix up to and including that block), each with a different reuse structure,
so that a cache policy is judged on more than one workload:

  chat    multi-turn conversations: a few shared system prompts (Zipf popularity), sessions
          that arrive as a Poisson process, each turn's prompt = the previous prompt + the
          answer + a new user message, think times between turns; many sessions end after
          one turn, so most blocks are never reused (the structure of real chat traces).
  rag     retrieval-augmented QA: a system prompt, then 1-3 documents drawn from a corpus
          with Zipf popularity, then a unique question; only the system prompt and the first
          document form a shared prefix, everything after the first document is one-time.
  agent   tool-using agents: long contexts that grow by a tool call and its result every
          few seconds, with fan-out (several samples branch from the same context) and a
          few long few-shot templates shared by all agents.
  mixed   a hot chat workload interleaved with a scan: long one-off documents (summarise
          this file) that are never seen again and take half the blocks.
  conversation
          the structure that a sample of the public Mooncake conversation trace's ids shows:
          every prompt starts with one shared block, a session's first prompt is a long
          unique document or question (1 to ~250 blocks, median ~14), and a follow-up turn
          reuses the whole previous prompt, its last block included, adding a block or two
          (here the answer and the next message start a new block: these segments are
          padded to whole blocks). About 70% of sessions are one request and turns come
          ~1.5 minutes apart (rates guessed from that sample, not fitted to the trace), so
          a returning block's next use is far away.

Prompts are built from token segments; block j of a prompt is identified by the segment
pieces covering tokens [512j, 512(j+1)) and by its parent block, so a partial last block
that the next turn extends gets a new id, as it does in an engine (except where a kind
pads its segments to whole blocks, as conversation does).

Usage: gen_traces.py KIND OUT.jsonl [--requests N] [--seed S]
       gen_traces.py all OUTDIR      (writes every kind with the defaults)
"""
import argparse
import bisect
import json
import os
import random

BLOCK = 512


class Ids:
    """Hash ids by (parent id, block content): identical prefixes get identical ids."""

    def __init__(self):
        self.ids = {}

    def blocks(self, segments):
        """segments: list of (segment id, tokens). Returns (hash_ids, input_length)."""
        pieces, out, parent, total = [], [], None, 0
        # Walk the segments, cutting them at block boundaries.
        block_fill = 0
        for seg, length in segments:
            start = 0
            while start < length:
                take = min(length - start, BLOCK - block_fill)
                pieces.append((seg, start, take))
                start += take
                block_fill += take
                total += take
                if block_fill == BLOCK:
                    parent = self._id(parent, pieces)
                    out.append(parent)
                    pieces, block_fill = [], 0
        if pieces:
            out.append(self._id(parent, pieces))
        return out, total

    def _id(self, parent, pieces):
        key = (parent, tuple(pieces))
        if key not in self.ids:
            self.ids[key] = len(self.ids)
        return self.ids[key]


class Zipf:
    def __init__(self, rng, n, s):
        self.rng = rng
        w = [1.0 / (i + 1) ** s for i in range(n)]
        self.cdf, acc = [], 0.0
        for x in w:
            acc += x
            self.cdf.append(acc)

    def __call__(self):
        return bisect.bisect_left(self.cdf, self.rng.random() * self.cdf[-1])


class Segments:
    def __init__(self):
        self.next = 0

    def new(self):
        self.next += 1
        return self.next


def chat(rng, requests):
    segs, events = Segments(), []
    systems = [(segs.new(), rng.randint(300, 3000)) for _ in range(8)]
    pick_system = Zipf(rng, len(systems), 1.2)
    t = 0.0
    while len(events) < requests * 2:
        t += rng.expovariate(1 / 900.0)  # a new session every ~0.9 s
        prompt = [systems[pick_system()]]
        turns = 1 if rng.random() < 0.55 else min(1 + int(rng.expovariate(1 / 4.0)), 30)
        when = t
        for _ in range(turns):
            prompt = prompt + [(segs.new(), int(rng.lognormvariate(5.5, 1.2)) + 10)]
            out = int(rng.lognormvariate(5.8, 0.8)) + 5
            events.append((when, list(prompt), out))
            prompt = prompt + [(segs.new(), out)]
            when += rng.expovariate(1 / 60000.0) + 5000  # think time: ~1 minute
    return events


def rag(rng, requests):
    segs, events = Segments(), []
    system = (segs.new(), 1200)
    docs = [(segs.new(), rng.randint(1500, 6000)) for _ in range(3000)]
    pick = Zipf(rng, len(docs), 0.9)
    t = 0.0
    for _ in range(requests):
        t += rng.expovariate(1 / 400.0)
        k = rng.choice((1, 2, 2, 3))
        prompt = [system] + [docs[pick()] for _ in range(k)] + [(segs.new(), rng.randint(20, 300))]
        events.append((t, prompt, rng.randint(20, 400)))
    return events


def agent(rng, requests):
    segs, events, live = Segments(), [], []
    templates = [(segs.new(), rng.randint(4000, 12000)) for _ in range(4)]
    t = 0.0
    while len(events) < requests:
        t += rng.expovariate(1 / 100.0)
        if not live or (len(live) < 400 and rng.random() < 0.12):
            live.append([[templates[rng.randrange(len(templates))], (segs.new(), rng.randint(200, 1500))], 0])
        a = rng.randrange(len(live))
        ctx, steps = live[a]
        fan = 3 if rng.random() < 0.15 else 1  # sample several continuations of one context
        for _ in range(fan):
            events.append((t, list(ctx), rng.randint(50, 300)))
        # The agent keeps one continuation and appends a tool result.
        ctx = ctx + [(segs.new(), rng.randint(50, 300)), (segs.new(), int(rng.lognormvariate(6.0, 1.0)))]
        steps += 1
        if steps > rng.randint(5, 40) or sum(n for _, n in ctx) > 120000:
            live.pop(a)
        else:
            live[a] = [ctx, steps]
    return events[:requests]


def mixed(rng, requests):
    hot = chat(random.Random(rng.random()), requests)
    segs, events, t = Segments(), [], 0.0
    segs.next = 10**9  # distinct from the chat segments
    scans = []
    for _ in range(requests // 4):
        t += rng.expovariate(1 / 1800.0)
        scans.append((t, [(segs.new(), rng.randint(8000, 40000))], rng.randint(100, 500)))
    return hot + scans


def conversation(rng, requests):
    segs, events = Segments(), []
    system = (segs.new(), BLOCK)
    t = 0.0
    while len(events) < requests * 2:
        t += rng.expovariate(1 / 420.0)  # ~2.4 sessions a second, ~3.6 requests
        first = min(int(rng.lognormvariate(8.85, 1.0)), 128000)
        prompt, tokens = [system, (segs.new(), _whole_blocks(first))], BLOCK + first
        turns = 1 if rng.random() < 0.7 else 2 + int(rng.expovariate(1 / 2.0))
        when = t
        for _ in range(turns):
            out = rng.randint(1, 30) if rng.random() < 0.08 else int(rng.lognormvariate(5.85, 0.7)) + 5
            events.append((when, list(prompt), out, tokens))
            # The answer and the next message start a new block, as in the public trace.
            added = out + int(rng.lognormvariate(5.7, 1.0)) + 10
            prompt = prompt + [(segs.new(), _whole_blocks(added))]
            tokens += added
            when += rng.lognormvariate(11.4, 0.5)  # think time: median ~90 s
    return events


def _whole_blocks(tokens):
    """Tokens padded to whole blocks: the next segment starts a new block."""
    return -(-tokens // BLOCK) * BLOCK


KINDS = {"chat": chat, "rag": rag, "agent": agent, "mixed": mixed, "conversation": conversation}


def write(kind, path, requests, seed):
    rng = random.Random(seed)
    events = sorted(KINDS[kind](rng, requests), key=lambda e: e[0])[:requests]
    ids = Ids()
    with open(path, "w") as f:
        for when, segments, out, *told in events:
            # An event may say its prompt's length in tokens when its segments are padded
            # to whole blocks (conversation); the ids come from the padded segments.
            hash_ids, length = ids.blocks(segments)
            length = told[0] if told else length
            f.write(json.dumps({"timestamp": int(when), "input_length": length,
                                "output_length": out, "hash_ids": hash_ids}) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=sorted(KINDS) + ["all"])
    ap.add_argument("out")
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.kind == "all":
        os.makedirs(a.out, exist_ok=True)
        for k in sorted(KINDS):
            write(k, os.path.join(a.out, f"{k}.jsonl"), a.requests, a.seed)
    else:
        write(a.kind, a.out, a.requests, a.seed)


if __name__ == "__main__":
    main()
