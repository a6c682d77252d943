"""The settings as documented (README, ``.env.example``, docs/configuration.md) agree with the
code, so the three cannot drift apart again (#14: they once said 3, 4 and 5 were required)."""

from __future__ import annotations

import re
from pathlib import Path

from core.runtime.config import PROCESS_SECRETS, REQUIRED, Settings
from core.services.webhooks import alert_template

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
#: Read by docker-compose.yml, not by tv2dydx.
COMPOSE_ONLY = {"COMPOSE_PROFILES", "DOMAIN", "POSTGRES_PASSWORD"}
EVERY_PROCESS = "every process"


def section(text: str, heading: str) -> str:
    """The body of the markdown section ``heading`` (up to the next heading of any level)."""
    match = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^#)", text, re.MULTILINE | re.DOTALL)
    assert match, f"no section {heading!r}"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    """The cells of each body row of the markdown tables in ``text``."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    return [row for row in cells if not set(row[0]) <= {"-"} and row[0] != "variable"]


def names(cell: str) -> list[str]:
    return re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)


def code_required() -> dict[str, set[str]]:
    """What the code requires: ``every process`` for the fields without a default, and each
    process's secret."""
    fields = {name.upper() for name, field in Settings.model_fields.items() if field.is_required()}
    assert fields == set(REQUIRED)  # the one-line messages name exactly these
    needed = {EVERY_PROCESS: fields}
    for process, secrets in PROCESS_SECRETS.items():
        if secrets:
            needed[process] = set(secrets)
    return needed


def test_the_readme_lists_exactly_the_required_settings() -> None:
    documented: dict[str, set[str]] = {}
    for row in table_rows(section(README, "### Required settings")):
        (name,) = names(row[0])
        for process in row[1].split(", "):
            documented.setdefault(process, set()).add(name)
    assert documented == code_required()


def test_env_example_marks_exactly_the_required_settings() -> None:
    # A "# REQUIRED by ..." comment marks the assignments right after its comment block.
    marked: dict[str, set[str]] = {}
    who: list[str | None] | None = None
    seen_assignment = False
    for line in ENV_EXAMPLE.splitlines():
        marker = re.match(r"# REQUIRED by (every process|the (\w+)(?: and the (\w+))?)", line)
        assignment = re.match(r"([A-Z][A-Z0-9_]*)=", line)
        if marker:
            who = [marker.group(2), marker.group(3)] if marker.group(2) else [marker.group(1)]
            seen_assignment = False
        elif who and assignment:
            for process in filter(None, who):
                marked.setdefault(process, set()).add(assignment.group(1))
            seen_assignment = True
        elif not line.startswith("#") or seen_assignment:
            who = None  # a blank line, or the next comment, ends the marked block
    assert marked == code_required()


def test_env_example_carries_every_setting_and_nothing_else() -> None:
    variables = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE, re.MULTILINE))
    fields = {name.upper() for name in Settings.model_fields}
    assert variables - COMPOSE_ONLY == fields


def test_docs_configuration_lists_every_optional_setting_once() -> None:
    listed = [name for row in table_rows(CONFIGURATION) for name in names(row[0])]
    per_process = {secret for secrets in PROCESS_SECRETS.values() for secret in secrets}
    optional = {
        name.upper() for name, field in Settings.model_fields.items() if not field.is_required()
    } - per_process  # those two are in the README's required table
    assert len(listed) == len(set(listed))
    assert set(listed) - COMPOSE_ONLY - {"SSL_CERT_FILE", "SSL_CERT_DIR"} == optional
    assert set(listed) >= COMPOSE_ONLY


def test_the_readme_creates_env_before_asking_to_fill_it_in() -> None:
    run_for_real = README[README.index("## Run it for real") :]
    created = run_for_real.index("cp .env.example .env")
    assert created < run_for_real.index("in `.env`")
    assert created < run_for_real.index("docker compose up -d")


def test_the_readme_keeps_its_two_commands_and_the_demo_section() -> None:
    start = section(README, "### 5. Start it (two commands)")
    assert "docker compose up -d     # runs the service" in start
    assert "bash .ci/run             # runs the tests" in start
    assert "tv2dydx demo" in section(README, "## Try the demo")


def test_the_readme_alert_message_is_the_one_webhook_gives() -> None:
    message = f"```json\n{alert_template('<your passphrase>')}\n```"
    assert message in section(README, "## TradingView alerts")
    assert message.replace("\n", "\n   ") in section(README, "### 6. Your first paper trade")
