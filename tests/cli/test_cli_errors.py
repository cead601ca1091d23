"""Every failure is one line on stderr, ``mountfs: error: ...``, and the error's exit code; never a traceback.

The other cases moved to the test file of the module they exercise (test_main.py, test_common.py,
test_draft.py, test_browse.py, test_datasets.py); this one is cli/mounts.py's (cache commands).
"""

from __future__ import annotations


def test_cache_commands_need_no_store(env, mountfs, monkeypatch):
    # the cache is local: a store that cannot be reached must not stop info, evict or clear
    import xxhash

    from mountfs.cache import ChunkCache

    with ChunkCache(str(env.cache), 1 << 30) as cache:
        cache.put(xxhash.xxh3_128_digest(b"chunk"), b"chunk")
    monkeypatch.setenv("MOUNTFS_STORE", "s3://127.0.0.1:9/nowhere")
    assert mountfs.json("cache", "info")["count"] > 0
    mountfs("cache", "evict", "--to", "0")
    mountfs("cache", "clear")
    assert mountfs.json("cache", "info")["count"] == 0
