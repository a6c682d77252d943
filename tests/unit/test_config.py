"""Configuration: contract names, plain-words errors, network presets."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.runtime.config import REQUIRED, ConfigError, Settings, load_settings


def test_missing_required_settings_are_each_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in REQUIRED:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    problems = info.value.problems
    assert [p.split()[0] for p in problems] == list(REQUIRED)
    assert all("is not set: expected" in p for p in problems)


def test_invalid_values_are_named_without_echoing_them(
    make_settings: Callable[..., Settings],
) -> None:
    secretish = "mysql://root:hunter2@db/x"
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None, database_url=secretish, bot_token="nope", web_port=0)
    text = " ".join(info.value.problems)
    assert "DATABASE_URL is invalid" in text
    assert "BOT_TOKEN is invalid" in text
    assert "WEB_PORT is invalid" in text
    assert "hunter2" not in text


def test_database_url_is_normalised_to_asyncpg(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(database_url="postgres://u:p@db:5432/tv2dydx")
    assert settings.database_url.get_secret_value() == "postgresql+asyncpg://u:p@db:5432/tv2dydx"


def test_presets_fill_dydx_endpoints(make_settings: Callable[..., Settings]) -> None:
    mainnet = make_settings().dydx
    assert mainnet.chain_id == "dydx-mainnet-1"
    assert mainnet.node_tls
    testnet = make_settings(dydx_network="testnet").dydx
    assert testnet.chain_id == "dydx-testnet-4"
    assert testnet.indexer_ws_url.endswith("/v4/ws")


def test_custom_network_requires_every_endpoint(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(Exception, match="DYDX_INDEXER_URL"):
        make_settings(dydx_network="custom")
    custom = make_settings(
        dydx_network="custom",
        dydx_indexer_url="http://127.0.0.1:1/",
        dydx_indexer_ws_url="ws://127.0.0.1:1/v4/ws",
        dydx_node_url="127.0.0.1:2",
        dydx_node_tls="false",
        dydx_chain_id="localdydxprotocol",
    ).dydx
    assert custom.indexer_url == "http://127.0.0.1:1"
    assert custom.node_tls is False


def test_custom_network_errors_name_the_variables(
    monkeypatch: pytest.MonkeyPatch, base_env: dict[str, str]
) -> None:
    for key, value in base_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DYDX_NETWORK", "custom")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    assert info.value.problems == [
        "DYDX_INDEXER_URL, DYDX_INDEXER_WS_URL, DYDX_NODE_URL, DYDX_CHAIN_ID: "
        "required when DYDX_NETWORK=custom"
    ]


def test_ip_allowlist_defaults_to_tradingview_and_star_disables(
    make_settings: Callable[..., Settings],
) -> None:
    default = make_settings().webhook_allowlist
    assert default is not None
    assert {str(n.network_address) for n in default} == {
        "52.89.214.238",
        "34.212.75.30",
        "54.218.53.128",
        "52.32.178.7",
    }
    assert make_settings(webhook_ip_allowlist="*").webhook_allowlist is None
    custom = make_settings(webhook_ip_allowlist="10.0.0.0/8, 192.0.2.1")
    assert [str(n) for n in custom.webhook_allowlist or []] == ["10.0.0.0/8", "192.0.2.1/32"]
    with pytest.raises(Exception, match="webhook_ip_allowlist"):
        make_settings(webhook_ip_allowlist="not-an-ip")


def test_webhook_mode_needs_a_secret(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(Exception, match="TELEGRAM_WEBHOOK_SECRET"):
        make_settings(telegram_mode="webhook")
    assert (
        make_settings(telegram_mode="webhook", telegram_webhook_secret="s" * 32).telegram_mode
        == "webhook"
    )


def test_public_url_must_be_https_except_localhost(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(Exception, match="PUBLIC_BASE_URL"):
        make_settings(public_base_url="http://tv2dydx.example.com")
    assert make_settings(public_base_url="https://x.example.com/").public_base_url == (
        "https://x.example.com"
    )


def test_secrets_do_not_appear_in_repr(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    shown = repr(settings) + str(settings)
    assert settings.bot_token.get_secret_value() not in shown
    assert settings.encryption_keys.get_secret_value() not in shown


def test_env_example_documents_every_variable_and_loads(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    from core.runtime.config import EXPECTED

    example = Path(__file__).resolve().parents[2] / ".env.example"
    names = {
        line.split("=", 1)[0]
        for line in example.read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    }
    assert set(EXPECTED) <= names
    for name in names:
        monkeypatch.delenv(name, raising=False)
    # As shipped, only the required blanks are reported; empty optional values mean "unset".
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=str(example))
    # ENCRYPTION_KEYS is the worker's alone: not required to load (see problems_for).
    assert [p.split()[0] for p in info.value.problems] == ["BOT_TOKEN"]


def test_protection_legs_live_28_days_and_are_renewed_at_most_half_way(
    make_settings: Callable[..., Settings], base_env: dict[str, str]
) -> None:
    settings = make_settings()
    assert settings.protection_leg_lifetime_seconds == 28 * 86400
    assert settings.protection_renew_before_seconds == 3 * 86400
    short = make_settings(
        protection_leg_lifetime_seconds="30", protection_renew_before_seconds="15"
    )
    assert (short.protection_leg_lifetime_seconds, short.protection_renew_before_seconds) == (
        30,
        15,
    )
    env = {key.lower(): value for key, value in base_env.items()}
    # Renewing more than half way would place a leg again soon after its renewal.
    with pytest.raises(ConfigError) as info:
        load_settings(
            env_file=None,
            **env,
            protection_leg_lifetime_seconds="30",
            protection_renew_before_seconds="16",
        )
    assert info.value.problems[0].startswith("PROTECTION_RENEW_BEFORE_SECONDS: must be at most")
    # The chain takes a good_til_block_time at most 95 days ahead.
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None, **env, protection_leg_lifetime_seconds=str(96 * 86400))
    assert info.value.problems == [
        "PROTECTION_LEG_LIFETIME_SECONDS is invalid: expected seconds from 10 to 8208000 "
        "(95 days, the chain's limit; default 2419200, 28 days)"
    ]


def test_worker_processes_follow_the_cores_this_process_may_use(
    base_env: dict[str, str],
) -> None:
    from core.runtime.processes import available_cores

    values = {k.lower(): v for k, v in base_env.items() if k != "WORKER_PROCESSES"}
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    assert settings.worker_processes == max(1, min(available_cores() // 2, 8))
    assert Settings(_env_file=None, **values, worker_processes="3").worker_processes == 3  # type: ignore[call-arg]


def test_an_invalid_bot_token_is_told_what_a_valid_one_looks_like() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None, bot_token="123456:ABC-fake")
    line = next(p for p in info.value.problems if p.startswith("BOT_TOKEN"))
    assert "@BotFather" in line
    assert "numeric id, a colon, then 30-64 letters, digits, _ or -" in line
    assert "ABC-fake" not in line


@pytest.mark.parametrize(
    "url",
    ["https://tv2dydx.example.com", "https://tv2dydx.example.com/", "https://TV2DYDX.example.com/"],
)
def test_the_example_public_base_url_is_refused(
    url: str, make_settings: Callable[..., Settings], base_env: dict[str, str]
) -> None:
    overrides = {key.lower(): value for key, value in base_env.items()}
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None, **{**overrides, "public_base_url": url})
    assert info.value.problems == [
        "PUBLIC_BASE_URL is still the example's placeholder (https://tv2dydx.example.com): "
        "set it to the public https address TradingView and wallets reach this server at"
    ]
