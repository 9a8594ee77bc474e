"""``python -m sandbox`` (and ``jobops sandbox``): serve the emulator until interrupted."""

from __future__ import annotations

import contextlib
import errno

import click

from sandbox.server import SandboxServer
from sandbox.state import SandboxConfig, SandboxState


@click.command("sandbox", help="Serve the LinkedIn-compatible emulator (no LinkedIn account "
               "needed).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8099, show_default=True)
@click.option("--client-id", default="sandbox-client", show_default=True)
@click.option("--client-secret", default="sandbox-secret", show_default=True)
@click.option("--in-progress-seconds", type=float, default=60.0, show_default=True,
              help="how long a task stays IN_PROGRESS")
@click.option("--in-progress-jitter-seconds", type=float, default=0.0, show_default=True)
@click.option("--token-lifetime-seconds", type=float, default=1800.0, show_default=True)
@click.option("--migrating", multiple=True, metavar="ORG_URN",
              help="integrationContext of a partner whose jobs end PROCESSED")
def sandbox_command(host: str, port: int, client_id: str, client_secret: str,
                    in_progress_seconds: float, in_progress_jitter_seconds: float,
                    token_lifetime_seconds: float, migrating: tuple[str, ...]) -> None:
    config = SandboxConfig(
        client_id=client_id,
        client_secret=client_secret,
        in_progress_seconds=in_progress_seconds,
        in_progress_jitter_seconds=in_progress_jitter_seconds,
        token_lifetime_seconds=token_lifetime_seconds,
        migrating_organizations=frozenset(migrating),
    )
    try:
        server = SandboxServer(SandboxState(config), host=host, port=port)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise click.UsageError(f"port {port} on {host} is in use: stop what listens "
                                   "there or pick another with --port") from None
        raise click.UsageError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    click.echo(f"sandbox listening on {server.url} (client id {config.client_id!r})")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
