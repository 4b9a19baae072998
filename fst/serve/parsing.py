"""What a stylize request asks for: its parameters, its content type and its body.

Query parameters and multipart fields go through the same parser (fields win), so `format=PNG`
means the same in both. The parser also resolves the model and, for a collection, the style or
mix (`model=NAME:STYLE`, `style=STYLE` or `mix=A=0.6,B=0.4`) into its style weights. The body is
read here, before admission, within the body timeout and the size and memory limits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

from fst import FstError
from fst.mixing import UnknownStyle, style_weights
from fst.serve.admission import BodyMemory, Draining
from fst.serve.errors import ApiError, ClientGone, shown
from fst.strokes import MAX_SCALE, scale_error
from fst.stylize import MIN_SIDE

# format parameter -> (Pillow format, content type, file extension)
FORMATS = {
    "png": ("PNG", "image/png", "png"),
    "jpeg": ("JPEG", "image/jpeg", "jpg"),
    "jpg": ("JPEG", "image/jpeg", "jpg"),
    "webp": ("WEBP", "image/webp", "webp"),
}
TRUE_WORDS, FALSE_WORDS = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
PARAMETERS = ("model", "style", "mix", "strength", "preserve_color", "max_size", "format", "stroke_scale")
RAW_TYPES = ("image/", "application/octet-stream")  # a raw body must say it is an image
MULTIPART = "multipart/form-data"
CLOSE = {"Connection": "close"}  # stop reading what the client still sends


@dataclass(frozen=True)
class Params:
    model: str
    strength: float = 1.0
    preserve_color: bool = False
    max_size: int | None = None
    format: str = "png"
    stroke_scale: float = 1.0
    weights: np.ndarray | None = field(default=None, compare=False)  # a collection's (S,) style weights
    label: str = ""  # a collection's style or mix, for file names ("" for a single-style model)


def parse_params(values: dict[str, str], default_model: str, catalog: Mapping[str, list[str]],
                 default_style: str | None = None) -> Params:
    """{name: text} (query parameters, then multipart fields over them) -> Params; 422 for a bad
    value, 404 for a model or style the server lacks. catalog: each model's style names ([] for one);
    default_style: the style of default_model a request naming neither model, style nor mix gets."""
    strength = _number(values, "strength", float, 1.0, "a number between 0 and 1")
    if not 0.0 <= strength <= 1.0:  # NaN fails too
        raise ApiError(422, f"strength: must be between 0 and 1, got {shown(values['strength'])}")
    stroke_scale = _number(values, "stroke_scale", float, 1.0, f"a number from 1 to {MAX_SCALE:g}")
    if scale_error(stroke_scale):  # NaN and infinity too
        raise ApiError(422, f"stroke_scale: must be a number from 1 to {MAX_SCALE:g}, got {shown(values['stroke_scale'])}")
    max_size = _number(values, "max_size", int, None)
    if max_size is not None and max_size < MIN_SIDE:
        raise ApiError(422, f"max_size: must be at least {MIN_SIDE}, got {max_size}")
    fmt = values.get("format", "").strip().lower() or "png"
    if fmt not in FORMATS:
        raise ApiError(422, f"format: must be one of png, jpeg, webp, got {shown(values['format'])}")
    word = values.get("preserve_color", "").strip().lower() or "false"
    if word not in TRUE_WORDS | FALSE_WORDS:
        raise ApiError(422, f"preserve_color: expected true or false, got {shown(values['preserve_color'])}")
    model, weights, label = _style_choice(values, default_model, catalog, default_style)
    return Params(model, strength, word in TRUE_WORDS, max_size, fmt, stroke_scale, weights, label)


def _style_choice(values: dict[str, str], default_model: str, catalog: Mapping[str, list[str]],
                  default_style: str | None):
    """model, style and mix -> (model name, its style weights or None, the style's or mix's label)."""
    spec = values.get("model") or default_model
    model, named = spec, ""
    if not values.get("model") and not values.get("style", "").strip() and not values.get("mix", "").strip():
        named = default_style or ""  # the server's default: a style of its default collection
    if spec not in catalog and ":" in spec:  # NAME:STYLE, as `fst stylize -m` takes it
        model, _, named = spec.rpartition(":")
    if model not in catalog:
        raise unknown_model(spec, catalog)
    style, mix = values.get("style", "").strip(), values.get("mix", "").strip()
    if named and (style or mix):
        raise ApiError(422, f"model: {shown(spec)} names a style already: drop style and mix, or name the model alone")
    try:
        weights, label = style_weights(catalog[model], named or style or None, mix or None, f"model {shown(model)}")
    except UnknownStyle as e:
        raise ApiError(404, str(e)) from None
    except FstError as e:  # fst.mixing speaks of the CLI's --style and --mix: here, the parameters
        raise ApiError(422, str(e).replace("--style", "style").replace("--mix", "mix")) from None
    return model, weights, label


def unknown_model(name: str, models) -> ApiError:
    return ApiError(404, f"unknown model {shown(name)} (available: {', '.join(models)})")


def _number(values: dict[str, str], name: str, kind, default, what: str = "a whole number"):
    text = values.get(name, "").strip()
    if not text:
        return default
    try:
        return kind(text)
    except ValueError:
        raise ApiError(422, f"{name}: expected {what}, got {shown(text)}") from None


def check_request(headers, host: str | None) -> bool:
    """415 unless the body is an image or a multipart form; 403 for another site's form post.

    -> True for multipart. A raw body with text/plain (or none) is what any web page can make a
    visitor's browser send without asking; an image/* type cannot be sent cross-site that way.
    """
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    origin = headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != (host or ""):
        raise ApiError(403, "cross-site requests are refused: call the API directly, or use this server's page")
    if ctype == MULTIPART:
        return True
    if not ctype.startswith(RAW_TYPES):
        raise ApiError(415, "send the image as the body with Content-Type image/... (or application/octet-stream), "
                            f"or as the multipart field \"image\"; got Content-Type {shown(ctype or '(none)')}")
    return False


async def read_body(receive, headers, limit: int, timeout: float, memory: BodyMemory,
                    draining: asyncio.Event) -> bytearray:
    """The request body, all of it within `timeout` seconds, at most `limit` bytes.

    408 when it does not arrive in time, 413 over the limit, 503 when the server's body memory is
    full, Draining when the server starts shutting down, ClientGone when the client hangs up. Its bytes stay counted in
    `memory` (the caller gives them back: len(body)); on an error they are given back here.
    """
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, f"bad Content-Length {shown(declared)}")
        if int(declared) > limit:
            raise ApiError(413, f"request body of {int(declared):,} bytes is over the limit of {limit:,} bytes", CLOSE,
                           "too_large")
    body = bytearray()
    deadline = time.monotonic() + timeout
    drain = asyncio.ensure_future(draining.wait())
    memory.uploads += 1
    try:
        while True:
            message = await _next_message(receive, drain, deadline, timeout)
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            if len(body) + len(chunk) > limit:
                raise ApiError(413, f"request body is over the limit of {limit:,} bytes", CLOSE, "too_large")
            if not memory.take(len(chunk)):
                raise ApiError(503, "busy: too many uploads in progress; retry later", {"Retry-After": "2", **CLOSE},
                               "body_memory")
            body += chunk
            if not message.get("more_body", False):
                return body
    except BaseException:
        memory.give(len(body))
        raise
    finally:
        memory.uploads -= 1
        drain.cancel()


REFUSED_BODY_SECONDS = 2.0  # at most this long reading a refused request's body (drain_refused_body)


async def drain_refused_body(receive, limit: int, seconds: float = REFUSED_BODY_SECONDS) -> None:
    """Read and drop what is left of a refused request's body (at most `limit` bytes and `seconds`),
    like a web server's lingering close, so that the close after the answer is clean: closing a
    socket while the client's bytes still arrive makes the kernel reset the connection, and the
    client can lose the answer (seen on loopback under load: ECONNRESET instead of a 404 or 413).
    A body longer than that, or slower, is left: the connection closes anyway."""
    deadline, received = time.monotonic() + seconds, 0
    while received <= limit:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            message = await asyncio.wait_for(receive(), left)
        except asyncio.TimeoutError:
            return
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return
        received += len(message.get("body", b""))


async def _next_message(receive, drain: asyncio.Future, deadline: float, timeout: float) -> dict:
    incoming = asyncio.ensure_future(receive())
    done, _ = await asyncio.wait({incoming, drain}, timeout=max(0.0, deadline - time.monotonic()),
                                 return_when=asyncio.FIRST_COMPLETED)
    if incoming in done:
        return incoming.result()
    incoming.cancel()
    if drain in done:
        raise Draining
    raise ApiError(408, f"the request body did not arrive within {timeout:g} s", CLOSE, "body_timeout")


async def read_multipart(scope, body: bytes, limit: int) -> tuple[bytes, dict[str, str]]:
    """(image bytes, {field: text}) from a multipart body already in memory; 400 when malformed."""
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException
    from starlette.requests import Request

    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": bytes(body), "more_body": False}

    try:
        form = await Request(scope, replay).form(max_files=1, max_fields=16, max_part_size=limit)
    except (MultiPartException, HTTPException) as e:
        detail = getattr(e, "detail", None) or getattr(e, "message", e)
        raise ApiError(400, f"malformed multipart body: {str(detail)[:200]}") from None
    try:
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, 'a multipart request needs the image as a file field named "image"')
        fields = {k: v for k, v in form.items() if k in PARAMETERS and isinstance(v, str)}
        return await upload.read(), fields
    finally:
        await form.close()
