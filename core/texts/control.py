"""/pause and /resume."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.domain.compliance import ComplianceStatus

if TYPE_CHECKING:  # the view types only: texts do not import the services at run time
    from core.services.control.service import Resumed


def paused() -> str:
    """After pausing."""
    return (
        "⏸ <b>Trading paused.</b>\n"
        "Alerts still arrive and are recorded (see /webhook), but no order is placed until "
        "you send /resume.\n"
        "Open positions and orders stay as they are: /positions shows them, /close or /panic "
        "closes them."
    )


def already_paused() -> str:
    """/pause while paused."""
    return "Trading is already paused. Send /resume to execute alerts again."


def resumed(result: Resumed) -> str:
    """After /resume (whether or not it was paused)."""
    if result.changed:
        lines = ["▶️ <b>Trading resumed.</b> New alerts are executed again."]
        lines.append("Alerts that arrived while paused stay recorded; they are not replayed.")
    else:
        lines = ["Trading is not paused: alerts are being executed."]
    if result.paper:
        lines.append("📝 Paper mode is on: orders are simulated, nothing is sent to dYdX.")
    if result.compliance is not None and not result.compliance.may_open:
        lines.append(
            f"⚠️ dYdX reports your account as {result.compliance.value}: only orders that "
            "reduce or close a position can execute; alerts that would open one are refused."
        )
    return "\n".join(lines)


def resume_refused(compliance: ComplianceStatus) -> str:
    """/resume while the account may not trade at all."""
    return (
        f"⛔ I can't resume trading: dYdX's compliance screen reports your account as "
        f"{compliance.value}, so no order can be placed. Trading stays paused.\n"
        "If you think this is wrong, contact dYdX support; I check the status again "
        "regularly and /key shows the latest."
    )
