"""Client address resolution behind reverse proxies, and the webhook allowlist."""

from __future__ import annotations

import ipaddress

import pytest

from core.security.client_ip import MAX_HOPS, SenderPolicy, client_ip, ip_allowed, parse_ip

TV = "52.89.214.238"
PROXY = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]
TRADINGVIEW = [ipaddress.ip_network(f"{ip}/32") for ip in (TV, "34.212.75.30")]


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        (" 1.2.3.4 ", "1.2.3.4"),
        ("1.2.3.4:5678", "1.2.3.4"),
        ("::1", "::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("::ffff:52.89.214.238", TV),
        ("2001:db8::1", "2001:db8::1"),
    ],
)
def test_parse_ip_reads_what_peers_and_proxies_write(text: str, expected: str) -> None:
    assert parse_ip(text) == ip(expected)


@pytest.mark.parametrize("text", [None, "", "unknown", "1.2.3", "1.2.3.4.5", "300.1.1.1", "_x"])
def test_parse_ip_refuses_what_is_not_an_address(text: str | None) -> None:
    assert parse_ip(text) is None


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() -> None:
    assert client_ip("203.0.113.5", [TV], []) == ip("203.0.113.5")


def test_an_untrusted_peer_is_the_client_even_with_proxies_configured() -> None:
    assert client_ip("203.0.113.5", [TV], PROXY) == ip("203.0.113.5")


def test_behind_one_trusted_proxy_the_last_hop_is_the_client() -> None:
    assert client_ip("10.0.0.2", [TV], PROXY) == ip(TV)


def test_the_right_most_untrusted_hop_wins_over_a_spoofed_left_most() -> None:
    # The client wrote "52.89.214.238" itself; our proxy appended its real address.
    assert client_ip("10.0.0.2", [f"{TV}, 203.0.113.9"], PROXY) == ip("203.0.113.9")


def test_chains_of_trusted_proxies_are_walked_from_the_right() -> None:
    forwarded = [f"198.51.100.1, {TV}, 10.1.1.1", "10.2.2.2"]  # two headers, in order
    assert client_ip("10.0.0.2", forwarded, PROXY) == ip(TV)


def test_all_hops_trusted_gives_the_left_most() -> None:
    assert client_ip("10.0.0.2", ["10.9.9.9, 10.1.1.1"], PROXY) == ip("10.9.9.9")


def test_a_trusted_proxy_without_the_header_is_itself_the_client() -> None:
    assert client_ip("10.0.0.2", [], PROXY) == ip("10.0.0.2")


def test_garbage_in_the_chain_gives_no_address() -> None:
    assert client_ip("10.0.0.2", [f"{TV}, not-an-ip"], PROXY) is None
    assert client_ip("10.0.0.2", [", "], PROXY) is None


def test_garbage_left_of_the_client_is_never_read() -> None:
    assert client_ip("10.0.0.2", [f"garbage, {TV}"], PROXY) == ip(TV)


def test_an_absurdly_long_chain_gives_no_address() -> None:
    chain = ", ".join(["10.0.0.1"] * (MAX_HOPS + 1))
    assert client_ip("10.0.0.2", [chain], PROXY) is None


def test_ipv6_proxies_and_ipv4_mapped_peers() -> None:
    assert client_ip("fd00::5", ["[2001:db8::7]:1234"], PROXY) == ip("2001:db8::7")
    assert client_ip("::ffff:10.0.0.2", [TV], PROXY) == ip(TV)


def test_no_peer_gives_no_address() -> None:
    assert client_ip(None, [TV], PROXY) is None


def test_the_allowlist() -> None:
    assert ip_allowed(ip(TV), TRADINGVIEW)
    assert not ip_allowed(ip("203.0.113.9"), TRADINGVIEW)
    assert not ip_allowed(None, TRADINGVIEW)
    assert ip_allowed(None, None)  # "*": anyone
    assert ip_allowed(ip("203.0.113.9"), None)


def test_sender_policy_combines_both() -> None:
    policy = SenderPolicy(TRADINGVIEW, PROXY)
    assert policy.allows(policy.resolve("10.0.0.2", [TV]))
    assert not policy.allows(policy.resolve("10.0.0.2", [f"{TV}, 203.0.113.9"]))
    assert not policy.allows(policy.resolve(TV, []) and policy.resolve("203.0.113.9", [TV]))
    assert policy.allows(policy.resolve(TV, []))
