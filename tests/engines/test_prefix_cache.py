"""The token-keyed prefix cache on its own: longest-prefix lookup, supersession, the byte bound."""

import torch

from app.engines.prefix_cache import BLOCK, PrefixCache


def kv_for(tokens, layers=2, heads=2, dim=4):
    """KV whose values encode the token ids, so a test can see which tokens a slice came from."""
    t = torch.tensor(tokens, dtype=torch.float32)
    k = t.view(1, -1, 1).expand(heads, len(tokens), dim).clone()
    return [(k, -k) for _ in range(layers)]


def nbytes(tokens, layers=2, heads=2, dim=4):
    return len(tokens) * layers * heads * dim * 4 * 2


def test_longest_prefix_then_token_by_token():
    cache = PrefixCache(10**6)
    a = list(range(40))
    cache.insert(a, kv_for(a))
    entry, n = cache.lookup(a[:37] + [999, 1000])
    assert entry is not None and n == 37
    assert torch.equal(entry.kv[0][0][0, :n, 0], torch.arange(37, dtype=torch.float32))
    assert cache.lookup([999] + a) == (None, 0)
    assert cache.lookup(a[:BLOCK - 1]) == (None, 0)  # less than one block is never reused
    assert cache.stats.lookups == 3 and cache.stats.hits == 1 and cache.stats.hit_tokens == 37


def test_picks_the_longer_of_two_branches_and_drops_superseded_entries():
    cache = PrefixCache(10**6)
    q = list(range(32))
    cache.insert(q, kv_for(q))
    turn1 = q + [100 + i for i in range(20)]
    cache.insert(turn1, kv_for(turn1))
    assert len(cache) == 1  # the prompt's entry is a prefix of prompt + answer
    other = q + [500 + i for i in range(20)]
    cache.insert(other, kv_for(other))
    assert len(cache) == 2
    entry, n = cache.lookup(turn1 + [7, 7, 7])
    assert entry.tokens == tuple(turn1) and n == len(turn1)
    entry, n = cache.lookup(q + [500, 501, 999])
    assert entry.tokens == tuple(other) and n == 34
    cache.insert(q, kv_for(q))  # already covered: nothing new is stored
    assert len(cache) == 2 and cache.bytes == nbytes(turn1) + nbytes(other)


def test_memory_stays_under_the_bound_and_evicts_least_recently_used():
    seqs = [[1000 * s + i for i in range(48)] for s in range(6)]
    cache = PrefixCache(nbytes(seqs[0]) * 3)
    for s in seqs[:3]:
        cache.insert(s, kv_for(s))
    cache.lookup(seqs[0])  # touch the oldest: the second becomes least recently used
    cache.insert(seqs[3], kv_for(seqs[3]))
    assert cache.bytes <= cache.max_bytes and len(cache) == 3 and cache.stats.evictions == 1
    assert cache.lookup(seqs[1])[0] is None and cache.lookup(seqs[0])[0] is not None
    for s in seqs:
        cache.insert(s, kv_for(s))
    assert cache.bytes <= cache.max_bytes and len(cache) == 3
    assert all(cache.lookup(s)[1] == 48 for s in seqs[-3:])


def test_disabled_cache_stores_nothing():
    cache = PrefixCache(0)
    a = list(range(40))
    cache.insert(a, kv_for(a))
    assert len(cache) == 0 and cache.lookup(a) == (None, 0)


def test_a_limited_lookup_counts_only_the_tokens_it_reuses():
    cache = PrefixCache(10**6)
    a = list(range(100, 140))
    cache.insert(a, kv_for(a))
    entry, n = cache.lookup(a, limit=len(a) - 1)  # a prompt identical to an entry still runs its last token
    assert entry is not None and n == len(a) - 1 and cache.stats.hit_tokens == len(a) - 1
