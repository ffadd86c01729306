"""The FastAPI application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import __version__
from app.api import (
    agents,
    catalog,
    contacts,
    conversations,
    inboxes,
    messages,
    ops,
    profile,
    public,
    push,
    reports,
    sla,
    surveys,
    teams,
    web,
    webhooks,
    widget,
)
from app.api.errors import install_error_handlers
from app.config import Settings, get_settings
from app.events.log import OUTBOX, WEBHOOKS_CHANGED
from app.logs import RequestLogMiddleware
from app.realtime import stream
from app.realtime.broker import broker_for
from app.realtime.hub import Hub
from app.reports.alerts import VolumeWatcher
from app.runner import ConnectorRunner
from app.runtime import Runtime
from app.sla.scheduler import SlaScheduler
from app.tickets.continuity import CONTINUITY
from app.tickets.continuity_mailer import ContinuityMailer
from app.webhooks.worker import WebhookWorker
from connectors.email import parser_pool

DESCRIPTION = """
Postroom's REST API. Paths, parameters and JSON shapes follow Chatwoot's Application
API, so Chatwoot SDKs, bots and integrations work by changing the base URL.

Authenticate with the `api_access_token` header (or `Authorization: Bearer …`).
Conversation ids in paths are the per-account display ids, as in Chatwoot.
Errors are JSON: `{"message": …, "errors": [{"field": …, "message": …}]}`.
"""

def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the application; ``runtime`` lets tests and the CLI share one."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = app.state.runtime is None
        if own:
            app.state.runtime = Runtime.from_settings(settings)
        runtime: Runtime = app.state.runtime
        app.state.hub = Hub(runtime.db, broker_for(settings.broker_url), retention_days=settings.event_retention_days,
                            catch_up_seconds=settings.stream_catch_up_seconds)
        await app.state.hub.start()
        worker = WebhookWorker(runtime.db, runtime.box, settings)
        app.state.hub.wake_listeners.append(worker.wake)
        app.state.hub.listen(WEBHOOKS_CHANGED, worker.webhooks_changed)
        await worker.start()
        scheduler = SlaScheduler(runtime.db, leads=settings.sla_warning_leads_seconds) if settings.sla_scheduler else None
        if scheduler is not None:
            await scheduler.start()
        volume_watcher = VolumeWatcher(runtime.db)  # volume.spike alerts (docs/reports.md)
        await volume_watcher.start()
        # E-mail copies of live-chat replies to visitors who left (docs/inbox.md).
        mailer = ContinuityMailer(runtime.db, runtime.store, runtime.box)
        app.state.hub.listen(CONTINUITY, mailer.wake)
        await mailer.start()
        runner = ConnectorRunner(runtime.db, runtime.store, runtime.box, settings,
                                 only=settings.connector_inbox_ids) if settings.connector_runner else None
        if runner is not None:  # pull loops and reply dispatch (docs/connectors.md)
            app.state.hub.listen(OUTBOX, runner.wake)
            await runner.start()
        receiver = None
        if settings.smtp_listen:  # mail forwarded to e-mail inboxes (docs/channels/email.md)
            from app.smtp_in import SmtpReceiver

            receiver = SmtpReceiver(runtime.db, runtime.store, settings.smtp_listen,
                                    reopen_window_days=settings.reopen_window_days)
            await receiver.start()
        if own:
            # Start-up objects (modules, routes, pools) live as long as the process: keep
            # the collector from re-scanning them, which made full collections 0.3-0.8 s
            # pauses under websocket load (docs/performance.md, "Realtime fan-out").
            gc.freeze()
        try:
            yield
        finally:
            if receiver is not None:
                await receiver.stop()
            if runner is not None:
                await runner.stop()
            parser_pool.POOL.close()  # e-mail parsing workers, if mail was parsed
            await volume_watcher.stop()
            await mailer.stop()
            if scheduler is not None:
                await scheduler.stop()
            await worker.stop()
            await app.state.hub.stop()
            if own:
                await runtime.db.dispose()

    app = FastAPI(title="Postroom", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.runtime = runtime
    app.state.hub = None
    install_error_handlers(app)
    # Channels' webhooks first: a request is matched against the routers in this order, and
    # they are the busiest path (8 % of a server's time went to matching them last).
    for module in (push, ops, profile, agents, inboxes, contacts, conversations, messages, teams, catalog,
                   webhooks, public, sla, reports, surveys, stream, web, widget):
        app.include_router(module.router)
    # The agents' inbox page (served at / by ops.home) and the widget's assets.
    app.mount("/web", web.WebFiles(directory=widget.WEB_DIR), name="web")

    app.add_middleware(RequestLogMiddleware)
    return app
