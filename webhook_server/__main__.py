"""``python -m webhook_server`` (``tv2dydx web``)."""

from __future__ import annotations

import sys

from core.runtime.startup import preflight_or_exit, start_process
from webhook_server.processes import refuse_busy_port, serve, supervise


def main() -> None:
    """Serve until SIGTERM/SIGINT: in this process, or in ``WEB_PROCESSES`` processes."""
    settings = start_process("web")
    preflight_or_exit(settings)
    if settings.web_processes == 1:
        serve(settings)
        return
    refuse_busy_port(settings)
    sys.exit(supervise(settings.web_processes))


if __name__ == "__main__":
    main()
