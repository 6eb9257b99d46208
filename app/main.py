"""The application: create_app(), its lifespan, its routers and the embedded dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from sqlalchemy.orm import configure_mappers
from starlette.routing import BaseRoute

from app import branding, branding_router, console, var_dir
from app.accounts import router as accounts_api
from app.bounces import router as bounces_api
from app.bounces import webhooks_router as webhooks
from app.config import Settings
from app.console.web import install as install_console
from app.console.web import install_routes as install_console_routes
from app.db import make_engine, make_sessionmaker
from app.delivery.transport import Mailer, build_transports
from app.engagement import endpoints as engagement_links
from app.engagement import router as engagement_api
from app.issues import pages as archive
from app.issues import router as issues_api
from app.media import router as media_api
from app.messages import router as messages_api
from app.middleware import (
    BodyLimitMiddleware,
    BodyTimeoutMiddleware,
    MetricsMiddleware,
    RelativeSlashRedirect,
)
from app.migrate import head_revision
from app.segments import router as segments_api
from app.subscribers import audience_router, signup_batch, signup_fast, unsubscribe
from app.subscribers import pages as subscribers_pages
from app.subscribers import router as subscribers_api
from app.web import docs, error_handlers, ops
from app.web.server import install_access_log_redaction
from app.webhooks import router as webhooks_api

log = logging.getLogger("tidings")

ROUTERS = (
    ops.router,
    accounts_api.router,
    subscribers_api.router,
    audience_router.router,
    subscribers_pages.router,
    unsubscribe.router,
    issues_api.router,
    archive.router,
    bounces_api.router,
    webhooks.router,
    media_api.router,
    media_api.files,
    segments_api.router,
    branding_router.router,
    webhooks_api.router,
    engagement_links.router,
    engagement_api.router,
    messages_api.router,
)


_settled = False


def _settle_once() -> None:
    """Once per process, after its first start-up: the models' mappers set up now, not by
    the first request (~100 ms of a blocked loop at a cold server's first sign-ups), and its
    ~200k objects (modules, routes, models) kept out of every later full collection (one
    was ~130 ms of CPU: /r/'s p99 tail). A flag, not gc.get_freeze_count(): that counts
    the frozen objects one by one, ~30 ms at each later start-up (the tests make hundreds)."""
    global _settled
    if _settled:
        return
    configure_mappers()
    gc.collect()
    gc.freeze()
    _settled = True


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app around one Settings; tests build several with different ones."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        var_dir.secure(settings)
        install_access_log_redaction()
        engine = make_engine(settings.database_url)
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.transports = build_transports(settings.smtp_url, settings.var_dir)
        app.state.mailer = Mailer(app.state.transports)
        app.state.head_revision = head_revision()
        dispatcher_task: asyncio.Task[Any] | None = None
        if settings.embedded_worker:
            dispatcher_task = _start_embedded_dispatcher(app)
        _settle_once()
        try:
            yield
        finally:
            if dispatcher_task is not None:
                app.state.dispatcher.stop()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(dispatcher_task, timeout=30)
            await app.state.mailer.close()
            await engagement_links.close(app)  # the hits still in the buffer
            await signup_batch.close(app.state)  # its writers' held connections
            await engine.dispose()

    app = FastAPI(
        title="Tidings",
        version="0.1.0",
        description="Newsletter dispatcher: subscribers, issues, SMTP delivery, bounces.",
        lifespan=lifespan,
        docs_url=None,  # app/web/docs.py: the viewers' files served from here, not a CDN
        redoc_url=None,
        redirect_slashes=False,  # RelativeSlashRedirect: never a Location built from Host
    )
    app.state.settings = settings
    app.state.rate_limiters = {}
    error_handlers.install(app)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(branding.BrandingRefresh)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_body_bytes,
        overrides={
            "/api/v1/subscribers/import": settings.max_import_bytes,
            "/admin/imports": settings.max_import_bytes,
            # An upload's multipart framing on top of the file's own limit.
            "/api/v1/media": settings.max_media_bytes + 65_536,
            "/admin/media": settings.max_media_bytes + 65_536,
        },
    )
    app.add_middleware(
        BodyTimeoutMiddleware,
        seconds=settings.body_timeout,
        overrides={p: settings.import_body_timeout
                   for p in ("/api/v1/subscribers/import", "/admin/imports")},
    )  # fmt: skip
    app.add_middleware(RelativeSlashRedirect, router=app.router)
    # Outermost, so the last ones added: /o/ and /r/, and the JSON sign-up, are answered
    # ahead of every middleware.
    engagement_links.install(app)
    signup_fast.install(app)
    app.router.routes.extend(_routes())
    install_console(app)
    return app


@functools.cache
def _routes() -> tuple[BaseRoute, ...]:
    """Every route of the app, included once per process and shared by each app built.

    FastAPI (0.165) builds an included router's route state (dependants, parameter
    models, validators) lazily, per app, on the first request that walks past it: at
    about 1.7 ms a route that was 29% of the CPU of a test file that builds an app
    per test (tests build hundreds). Routes hold no app state (the app reaches them as
    request.app), so one template app includes them all and every app takes its list.
    No dependency_overrides are used; the template app would be their provider.
    """
    template = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False)
    own = len(template.router.routes)
    for router in ROUTERS:
        template.include_router(router)
    template.include_router(docs.router)
    template.mount(docs.ASSETS_URL, docs.assets, name="docs-assets")
    install_console_routes(template, console.ROUTERS)
    return tuple(template.router.routes[own:])


def _start_embedded_dispatcher(app: FastAPI) -> asyncio.Task[Any]:
    from app.delivery.dispatcher import Dispatcher

    dispatcher = Dispatcher(
        settings=app.state.settings,
        sessionmaker=app.state.sessionmaker,
        transports=app.state.transports,
    )
    app.state.dispatcher = dispatcher
    return asyncio.create_task(dispatcher.run(), name="tidings-dispatcher")
