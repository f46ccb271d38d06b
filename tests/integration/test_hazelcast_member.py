"""Real Hazelcast members on loopback, started and stopped by the tests themselves."""

from __future__ import annotations

import subprocess

import pytest

from cache.member import HazelcastMember, MemberOptions, ephemeral_ports, free_port

hazelcast = pytest.importorskip("hazelcast")


def _client(members: list[HazelcastMember]) -> hazelcast.HazelcastClient:
    return hazelcast.HazelcastClient(
        cluster_name=members[0].options.cluster_name,
        cluster_members=[m.address for m in members],
        cluster_connect_timeout=30,
        statistics_enabled=False,
    )


def test_two_members_form_one_cluster_on_loopback(cluster: list[HazelcastMember]) -> None:
    client = _client(cluster)
    try:
        assert len(client.cluster_service.get_members()) == 2
        m = client.get_map("features").blocking()
        payload = bytearray(range(256)) * 4  # bytearray: the client serializes it as byte[] (bytes is not)
        m.put("user:42", payload)
        assert m.get("user:42") == payload
        seen = sorted(f"{x.address.host}:{x.address.port}" for x in client.cluster_service.get_members())
        assert seen == sorted(m.address for m in cluster)
    finally:
        client.shutdown()


def test_members_listen_on_loopback_only(cluster: list[HazelcastMember]) -> None:
    out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=False).stdout
    for member in cluster:
        port = f":{member.options.port}"
        listeners = [line.split()[3] for line in out.splitlines() if line.split()[3].endswith(port)]
        assert listeners and all(addr.startswith("127.0.0.1:") for addr in listeners), listeners


def test_member_ports_are_outside_the_ephemeral_range() -> None:
    # a port the kernel may give an outgoing connection can be taken by a TCP self-connection of a
    # member dialling its not-yet-started (or killed) peer
    ports = {free_port() for _ in range(50)}
    assert not ports & set(ephemeral_ports())
    assert len(ports) > 40, "random, so that parallel starters do not collide"


def test_config_has_multicast_and_phone_home_off() -> None:
    yaml = MemberOptions("c", free_port(), (5701,)).yaml()
    assert "multicast:\n        enabled: false" in yaml
    assert 'hazelcast.phone.home.enabled: "false"' in yaml
    assert "interfaces: [127.0.0.1]" in yaml and "auto-detection:\n        enabled: false" in yaml


def test_a_member_that_cannot_start_reports_its_log() -> None:
    port = free_port()
    first = HazelcastMember(MemberOptions("dup", port)).start()
    second = HazelcastMember(MemberOptions("dup", port))
    try:
        with pytest.raises(RuntimeError, match="exited"):
            second.start(timeout_s=30)  # its port is taken and auto-increment is off: the JVM exits
    finally:
        second.stop()
        first.stop()
