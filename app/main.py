"""The application: create_app(), its lifespan, its routers and the embedded dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.delivery.transport import Mailer, build_transports
from app.middleware import BodyLimitMiddleware, MetricsMiddleware
from app.migrate import head_revision

log = logging.getLogger("tidings")

# Routers of each domain; a domain that is not built yet is simply absent.
ROUTERS = (
    "app.web.ops",
    "app.subscribers.router",
    "app.subscribers.pages",
    "app.issues.router",
    "app.issues.pages",
    "app.bounces.router",
    "app.bounces.webhooks_router",
    "app.subscribers.unsubscribe",
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app around one Settings; tests build several with different ones."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.transports = build_transports(settings.smtp_url, settings.var_dir)
        app.state.mailer = Mailer(app.state.transports)
        app.state.head_revision = head_revision()
        dispatcher_task: asyncio.Task[Any] | None = None
        if settings.embedded_worker:
            dispatcher_task = _start_embedded_dispatcher(app)
        try:
            yield
        finally:
            if dispatcher_task is not None:
                app.state.dispatcher.stop()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(dispatcher_task, timeout=30)
            await app.state.mailer.close()
            await engine.dispose()

    app = FastAPI(
        title="Tidings",
        version="0.1.0",
        description="Newsletter dispatcher: subscribers, issues, SMTP delivery, bounces.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.rate_limiters = {}
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_body_bytes,
        overrides={"/api/v1/subscribers/import": settings.max_import_bytes},
    )
    for name in ROUTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise
            continue
        app.include_router(module.router)
    return app


def _start_embedded_dispatcher(app: FastAPI) -> asyncio.Task[Any]:
    from app.delivery.dispatcher import Dispatcher

    dispatcher = Dispatcher(
        settings=app.state.settings,
        sessionmaker=app.state.sessionmaker,
        transports=app.state.transports,
    )
    app.state.dispatcher = dispatcher
    return asyncio.create_task(dispatcher.run(), name="tidings-dispatcher")
