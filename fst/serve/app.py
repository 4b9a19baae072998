"""The FastAPI app: the state, the error handlers, the middleware and the routes, put together."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from fst import __version__
from fst.serve.admission import BodyMemory, Gate
from fst.serve.config import ServerConfig
from fst.serve.errors import ApiError, ClientGone, error_response
from fst.serve.metrics import CLIENT_CLOSED, AccessMiddleware, Metrics
from fst.serve.models import Model, default_choice, load_models
from fst.serve.routes import STATIC_DIR, ServerState, router

log = logging.getLogger("fst.server")


def create_app(config: ServerConfig, models: dict[str, Model] | None = None) -> FastAPI:
    """The app; loads the models unless given. Its state is app.state.fst (a ServerState)."""
    if models is None:
        models = load_models(config.models_dir, config.intra_op_threads())
    gate = Gate(config.workers, config.queue)
    gate.grace_s = config.grace
    executor = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="fst-infer")
    memory = BodyMemory(config.body_memory)
    server = ServerState(config, models, *default_choice(models), gate, memory, Metrics(gate, memory, models), executor)

    @asynccontextmanager
    async def lifespan(app):
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="fst: fast neural style transfer", version=__version__, lifespan=lifespan,
                  description='Stylize photos with fast style-transfer networks (ONNX Runtime). Errors are JSON: `{"error": "..."}`.')
    app.state.fst = server
    _add_error_handlers(app)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AccessMiddleware, metrics=server.metrics)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(ClientGone)
    async def _client_gone(request, exc):
        return Response(status_code=CLIENT_CLOSED)  # recorded by AccessMiddleware, never sent

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', 'invalid')}"
                 for e in exc.errors()]
        return error_response(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        message = "not found" if exc.status_code == 404 else str(exc.detail)
        return error_response(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path[:200].encode("unicode_escape").decode())
        return error_response(500, f"internal error ({type(exc).__name__})")


class SecurityHeaders:
    """Pure ASGI: `X-Content-Type-Options: nosniff` on every answer (a browser must not run an
    answer as anything but its declared type)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]
            await send(message)

        await self.app(scope, receive, send_with_headers)
