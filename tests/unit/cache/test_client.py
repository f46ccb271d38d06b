"""The key-type guard: feature maps are keyed by Java Long, whatever client writes them."""

from __future__ import annotations

import pytest

from cache.client import KEY_INT_TYPE, require_long_keys

hazelcast_config = pytest.importorskip("hazelcast.config")


def _client(int_type: object) -> object:
    config = hazelcast_config.Config()
    config.default_int_type = int_type

    class Client:  # the real client keeps its Config in ``_config``
        _config = config

    return Client()


def test_long_keys_pass_and_the_default_integer_keys_are_refused() -> None:
    require_long_keys(_client(KEY_INT_TYPE))
    with pytest.raises(ValueError, match="Long"):
        require_long_keys(_client(hazelcast_config.IntType.INT))
    with pytest.raises(ValueError, match="Long"):
        require_long_keys(_client("VAR"))


def test_the_real_client_keeps_its_config_where_the_guard_looks() -> None:
    from hazelcast.client import HazelcastClient

    assert "_config" in HazelcastClient.__init__.__code__.co_names
