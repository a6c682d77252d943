"""``python -m webhook_server`` (``tv2dydx web``)."""

from __future__ import annotations

from aiohttp import web

from core.runtime import preflight_or_exit, start_process
from webhook_server.access_log import RedactingAccessLogger
from webhook_server.app import create_app


def main() -> None:
    """Serve until SIGTERM/SIGINT."""
    settings = start_process("web")
    preflight_or_exit(settings)
    web.run_app(
        create_app(settings),
        host=settings.web_host,
        port=settings.web_port,
        access_log_class=RedactingAccessLogger,
        print=None,
        shutdown_timeout=10,
    )


if __name__ == "__main__":
    main()
