"""The HTTP side of ``t2igan serve``: a uvicorn server for the Gradio app with a request guard.

Gradio and uvicorn answer the protocol; :class:`RequestGuard` (an ASGI middleware) and
:class:`DeadlineH11Protocol` decide what reaches Gradio at all. The server exposes the page, the
app's functions and the images they produced, nothing else:

* **Routes**: only those the page and ``gradio_client`` use (the page, its config and static files,
  the queue, the direct call of the example loader, the app's output images, and uploads when the
  page has an image input); any other Gradio route (proxies, monitoring, custom components, ...) is a
  404 here.
* **Inputs are text and numbers**: a call's ``data`` must match its function's inputs (text for a
  textbox, a finite number for a number field or slider, a whole number where the field has no
  decimals, an example index), and nothing in a request body may be an object (such as a Gradio
  ``FileData`` naming a file on the server), so Gradio never opens a file a client names. A wrong
  input is a 422 in Gradio's validation format, which ``gradio_client`` raises as a
  ``ValidationError`` with the message.
* **Uploads** (only for a page with an image input: the STREAM tab): Gradio's upload route stays
  closed; the guard answers ``POST /gradio_api/upload`` itself (:class:`UploadStore`): one
  ``multipart/form-data`` file of at most ``Limits.max_upload_bytes``, decoded by Pillow as PNG,
  JPEG, WebP, GIF or BMP under a pixel limit and stored *re-encoded as a PNG* under a random name in a
  private, bounded folder. An image input accepts only a file of that folder, and the guard rewrites
  the call's value to that path alone (no URL, no data URL, no name from the client reaches Gradio).
* **Files**: ``/gradio_api/file=`` serves only files in this server's private output folder
  (:class:`OutputCache`, bounded) and the re-encoded uploads. Gradio's own checks apply too: the
  Blocks are marked launched, so Gradio accepts input files only from its upload folder and serves no
  ``allowed_paths`` (none).
* **Host check** (DNS rebinding): the ``Host`` header must name this server (``127.0.0.1``,
  ``localhost``, ``[::1]``, the bound address, the machine's name when bound to all addresses, the
  address the request arrived on, or an ``allowed_hosts`` entry), else 403.
* **Origin check** (cross-site requests): a request that carries an ``Origin`` must come from the
  page's own origin (or the share link's), else 403; a ``POST`` must be ``application/json`` (415), so no other web page
  can drive the app with a "simple" cross-origin form or ``text/plain`` request.
* **Bounded bodies**: a body over ``max_body_bytes`` is refused with 413 while it is read (whatever
  its ``Content-Length`` says); a body that is not strict JSON (``NaN``, nesting deeper than Python
  parses, a lone surrogate) is a 400; malformed ``Content-Length`` values are 400s from the parser.
* **Slow sockets**: a connection must deliver a whole request (headers and body) within
  ``request_timeout_s`` of opening or of its previous response, else it is closed.
* A listen backlog of 2048, so a burst of connections waits in the kernel instead of being reset.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import shutil
import socket
import tempfile
import threading
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import T2IError, one_line

LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
API = "/gradio_api"
# GET / HEAD routes of the page and of gradio_client (exact paths, then prefixes)
PAGE_ROUTES = {"/", "/config", "/config/", "/theme.css", "/favicon.ico", "/manifest.json", "/robots.txt",
               f"{API}/info", f"{API}/info/", f"{API}/queue/data", f"{API}/app_id"}
PAGE_PREFIXES = ("/assets/", "/static/", f"{API}/heartbeat/")
FILE_ROUTE = f"{API}/file="
# POST routes -> how they call a function: queued, direct (a function with queue=False), or none
POST_ROUTES = {f"{API}/queue/join": "queued", f"{API}/run/predict": "direct", f"{API}/cancel": None,
               f"{API}/reset": None}
UPLOAD_ROUTE = f"{API}/upload"  # answered by the guard itself, for a page with an image input


def host_name(value: str) -> str:
    """``Host``/``Origin`` authority -> the lower-case host without the port (``[::1]`` kept)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def same_address(name: str, address: str | None) -> bool:
    """Whether the host ``name`` (``1.2.3.4``, ``[fe80::1]``) is the IP ``address`` (IPv4-mapped
    IPv6 addresses of a dual-stack socket count as their IPv4 address)."""
    if not address:
        return False
    try:
        a, b = ipaddress.ip_address(name.strip("[]")), ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    a, b = (getattr(x, "ipv4_mapped", None) or x for x in (a, b))
    return a == b


async def _send_json(send, status: int, message: str | dict | list, close: bool = True) -> None:
    body = json.dumps(message if isinstance(message, (dict, list)) else {"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                + ([(b"connection", b"close")] if close else [])})
    await send({"type": "http.response.body", "body": body})


async def _send_png(send, path: Path, head_only: bool = False) -> None:
    """One of the server's own re-encoded uploads (Gradio's file route serves only the output folder):
    the page's preview of the image it uploaded."""
    try:
        body = path.read_bytes()
    except OSError:
        await _send_json(send, 404, "not found")
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"image/png"), (b"content-length", str(len(body)).encode()),
                            (b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": b"" if head_only else body})


class OutputCache:
    """The private folder Gradio copies the app's output images into, and the only folder whose
    files the server serves. When a call joins the queue, the oldest files go until at most
    ``max_bytes`` in at most ``max_files`` files are left: the folder never holds more than that plus
    the images of the calls in the queue (one running, at most ``Limits.max_waiting`` waiting). It is
    deleted when the server is garbage-collected or the process exits."""

    def __init__(self, max_bytes: int = 64 * 2**20, max_files: int = 2000, prefix: str = "t2igan-serve-outputs-",
                 parent: str | Path | None = None):
        self.max_bytes = max_bytes
        self.max_files = max_files
        if parent is not None:
            Path(parent).mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent)).resolve()
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)

    def adopt(self, blocks) -> None:
        """Point every component of ``blocks`` (and the Blocks) at this folder for its copies."""
        for block in [blocks, *blocks.blocks.values()]:
            block.GRADIO_CACHE = str(self.folder)

    def holds(self, path: str) -> bool:
        """Whether ``path`` (as a client names it) is a file in this folder, links resolved."""
        try:
            real = Path(os.path.realpath(path))
        except (OSError, ValueError):
            return False
        return real.is_relative_to(self.folder) and real != self.folder and real.is_file()

    def files(self) -> list[tuple[float, int, Path]]:
        out = []
        for root, _, names in os.walk(self.folder):
            for name in names:
                path = Path(root) / name
                try:
                    stat = path.stat()
                except OSError:
                    continue
                out.append((stat.st_mtime, stat.st_size, path))
        return sorted(out)

    def prune(self, blocks=None) -> list[Path]:
        """Delete the oldest files until at most ``max_bytes`` in ``max_files`` remain (and empty
        folders); forget them in ``blocks``' sets of files to clean up. Returns the deleted files."""
        files = self.files()
        total = sum(size for _, size, _ in files)
        removed = []
        for i, (_, size, path) in enumerate(files):
            if total <= self.max_bytes and len(files) - i <= self.max_files:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed.append(path)
            if path.parent != self.folder and not any(path.parent.iterdir()):
                path.parent.rmdir()
        if removed and blocks is not None:
            gone = {str(p) for p in removed}
            for temp_files in getattr(blocks, "temp_file_sets", []):
                temp_files.difference_update(gone)
        return removed

    def size(self) -> int:
        return sum(size for _, size, _ in self.files())


class UploadStore(OutputCache):
    """The folder of uploaded images (the STREAM tab's): each upload is decoded (:func:`.app.decode_image`:
    an allowed format, at most ``limits.max_upload_pixels``), scaled down to ``limits.upload_side`` on
    its longer side if larger, and written again as a PNG under a random name. The folder lies inside
    Gradio's upload folder (Gradio's own check accepts input files only from there); it keeps at most
    ``max_bytes`` in ``max_files`` files (oldest deleted first, before each upload) and is deleted with
    the server."""

    def __init__(self, limits, max_bytes: int = 64 * 2**20, max_files: int = 64):
        from gradio.utils import get_upload_folder

        super().__init__(max_bytes, max_files, prefix="t2igan-serve-uploads-", parent=get_upload_folder())
        self.limits = limits

    def store(self, data: bytes) -> Path:
        """Decode ``data`` (a T2IError when it is not an acceptable image) and write it as a PNG."""
        from PIL import Image

        from .app import decode_image

        image = decode_image(data, self.limits.max_upload_pixels, "the uploaded file")
        side = self.limits.upload_side
        if max(image.size) > side:
            image.thumbnail((side, side), Image.Resampling.LANCZOS)
        self.prune()
        path = self.folder / f"{uuid.uuid4().hex}.png"
        image.save(path)
        return path


def component_kind(component) -> str:
    """How a request gives ``component``'s value: ``text``, ``number`` (or null), ``slider`` (a
    number), ``index`` (an example's index), ``image`` (an upload of this server, or null); ``none``
    for an input this server does not take."""
    import gradio as gr

    for cls, kind in ((gr.Textbox, "text"), (gr.Slider, "slider"), (gr.Number, "number"), (gr.Dataset, "index"),
                      (gr.Image, "image")):
        if isinstance(component, cls):
            return kind
    return "none"


def describe(value) -> str:
    """A request value for a message: its kind for objects and lists, a long number by its length."""
    if isinstance(value, dict):
        return "an object" + (" (a file)" if "path" in value else "")
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**24:
        from .app import digits

        return digits(value)
    return one_line(json.dumps(value), 40)


def finite_number(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def input_problem(component, value, uploads: UploadStore | None = None) -> str | None:
    """Why ``value`` cannot be ``component``'s input, or None."""
    kind = component_kind(component)
    if kind == "text":
        return None if isinstance(value, str) else f"must be text, got {describe(value)}"
    if kind in ("number", "slider"):
        if kind == "number" and value is None:
            return None
        if not finite_number(value):
            return f"must be a finite number, got {describe(value)}"
        if getattr(component, "precision", None) == 0 and value != int(value):
            return f"must be a whole number, got {describe(value)}"
        lo, hi = getattr(component, "minimum", None), getattr(component, "maximum", None)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"between {lo:g} and {hi:g}" if lo is not None and hi is not None else (
                f"at least {lo:g}" if lo is not None else f"at most {hi:g}")
            return f"must be {bounds}, got {describe(value)}"
        return None
    if kind == "index":
        count = len(component.samples)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < count:
            return None
        return f"must be an example index from 0 to {count - 1}, got {describe(value)}"
    if kind == "image":
        if value is None:
            return None
        path = value.get("path") if isinstance(value, dict) else None
        if isinstance(path, str) and uploads is not None and uploads.holds(path):
            return None
        return f"must be an image uploaded to this server (POST {UPLOAD_ROUTE}), got {describe(value)}"
    return "is not an input this server takes"


def uploaded_file(value):
    """The value an image input passes on to Gradio: only the path of the server's own upload."""
    if value is None:
        return None
    return {"path": str(Path(os.path.realpath(value["path"]))), "orig_name": "upload.png",
            "mime_type": "image/png", "meta": {"_type": "gradio.FileData"}}


@dataclass
class Function:
    route: str  # "queued" or "direct"
    inputs: list


@dataclass
class AppSurface:
    """What the server lets through to Gradio: the app's functions (by ``fn_index``; steps the page
    runs itself, with no Python function, are not callable), the folder of its output images, and
    the folder of uploads (None: the page takes no image, and the upload route is closed)."""

    functions: dict[int, Function]
    outputs: OutputCache
    blocks: object = None
    uploads: UploadStore | None = None

    @classmethod
    def of(cls, blocks, outputs: OutputCache, uploads: UploadStore | None = None) -> AppSurface:
        functions = {index: Function("queued" if fn.queue else "direct", list(fn.inputs))
                     for index, fn in blocks.fns.items() if fn.fn is not None}
        return cls(functions, outputs, blocks, uploads)

    def image_inputs(self) -> bool:
        return any(component_kind(c) == "image" for fn in self.functions.values() for c in fn.inputs)

    def passed_on(self, body: dict) -> dict:
        """``body`` (checked by :meth:`call_problem`) as Gradio gets it: image inputs reduced to the
        path of the server's own upload."""
        fn = self.functions.get(body.get("fn_index"))
        if fn is None or not isinstance(body.get("data"), list):
            return body
        data = [uploaded_file(value) if component_kind(c) == "image" else value for c, value in zip(fn.inputs, body["data"])]
        return {**body, "data": data}

    def call_problem(self, route: str | None, body) -> tuple[int, str | dict] | None:
        """Why ``body`` (parsed JSON) cannot go to the POST route whose kind is ``route``, as
        ``(status, message)``, or None."""
        if not isinstance(body, dict):
            return 400, "the request body must be a JSON object"
        for key, value in body.items():
            if key != "data" and not (value is None or isinstance(value, (str, bool)) or finite_number(value)):
                return 400, f"{key!r} must be text or a number, got {describe(value)}"
        if route is None:
            return None
        index = body.get("fn_index")
        fn = self.functions.get(index) if isinstance(index, int) and not isinstance(index, bool) else None
        if fn is None or fn.route != route:
            return 404, f"no function {describe(index)} is called this way here"
        if body.get("batched"):
            return 400, "batched calls are not accepted"
        data = body.get("data")
        if not isinstance(data, list) or len(data) != len(fn.inputs):
            return 422, f"'data' must be a list of {len(fn.inputs)} inputs"
        problems = [(getattr(c, "label", None) or f"input {i + 1}", why) for i, (c, value) in
                    enumerate(zip(fn.inputs, data)) if (why := input_problem(c, value, self.uploads))]
        if not problems:
            return None
        # Gradio's validation format: gradio_client raises it as a ValidationError with the message
        return 422, {"detail": [{"__type__": "validate", "is_valid": False, "parameter_name": name, "message": why}
                                for name, why in problems],
                     "error": "; ".join(f"{name} {why}" for name, why in problems)}


class RequestGuard:
    """ASGI middleware in front of the Gradio app: Host, Origin, route, content type and body checks."""

    def __init__(self, app, allowed_hosts: set[str], max_body_bytes: int = 64 * 1024,
                 surface: AppSurface | None = None):
        self.app = app
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        self.max_body_bytes = max_body_bytes
        self.surface = surface
        self.allowed_origins: set[str] = set()  # further page origins (the share link), exact
        self._upload_lock = None

    @property
    def upload_lock(self):
        import asyncio

        if self._upload_lock is None:  # made on the server's event loop, at the first upload
            self._upload_lock = asyncio.Lock()
        return self._upload_lock

    def host_allowed(self, host: str, scope) -> bool:
        name = host_name(host)
        return name in self.allowed_hosts or same_address(name, (scope.get("server") or (None,))[0])

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if not self.host_allowed(host, scope):
            await _send_json(send, 403, f"unknown Host {host!r}: this server answers only requests to itself")
            return
        origin = headers.get("origin")
        if (origin is not None and origin.split("://", 1)[-1].lower() != host.lower()
                and origin.lower() not in self.allowed_origins):
            await _send_json(send, 403, f"cross-origin request from {origin!r} refused")
            return
        if scope["type"] == "websocket":
            await _send_json(send, 404, "no websocket routes here")
            return
        method, path = scope["method"], scope["path"]
        if method in ("GET", "HEAD"):
            if self.surface is not None and not self.page_route(path):
                await _send_json(send, 404, "not found")
                return
            uploads = self.surface.uploads if self.surface is not None else None
            if uploads is not None and path.startswith(FILE_ROUTE) and uploads.holds(path[len(FILE_ROUTE):]):
                await _send_png(send, Path(os.path.realpath(path[len(FILE_ROUTE):])), method == "HEAD")
                return
            await self.app(scope, receive, send)
            return
        if method == "POST" and path == UPLOAD_ROUTE and self.surface is not None and self.surface.uploads is not None:
            await self.upload(scope, receive, send, headers)
            return
        if method != "POST" or (self.surface is not None and path not in POST_ROUTES):
            await _send_json(send, 404 if method == "POST" else 405, "not found" if method == "POST" else
                             f"method {method} not allowed")
            return
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            await _send_json(send, 415, "POST bodies must be application/json")
            return
        body = await self._read_body(receive, headers.get("content-length"))
        if isinstance(body, tuple):
            await _send_json(send, *body)
            return
        value, problem = parse_json(body)
        if problem:
            await _send_json(send, 400, problem)
            return
        if self.surface is not None:
            problem = self.surface.call_problem(POST_ROUTES[path], value)
            if problem:
                await _send_json(send, *problem)
                return
            if POST_ROUTES[path] is not None:
                self.surface.outputs.prune(self.surface.blocks)
                if self.surface.uploads is not None:
                    body = json.dumps(self.surface.passed_on(value)).encode()
                    scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
                             + [(b"content-length", str(len(body)).encode())]}
        await self.app(scope, _replay(body, receive), send)

    def page_route(self, path: str) -> bool:
        if "\\" in path or any(part in ("..", ".") for part in path.split("/")):
            return False
        if path in PAGE_ROUTES or path.startswith(PAGE_PREFIXES):
            return True
        if not path.startswith(FILE_ROUTE):
            return False
        named = path[len(FILE_ROUTE):]
        uploads = self.surface.uploads
        return self.surface.outputs.holds(named) or (uploads is not None and uploads.holds(named))

    async def upload(self, scope, receive, send, headers: dict) -> None:
        """``POST /gradio_api/upload`` for the page's image input: one file in a
        ``multipart/form-data`` body, stored by :class:`UploadStore`; answers Gradio's upload format
        (a JSON list of the stored file's path), or a one-line error."""
        import anyio
        from starlette.requests import Request

        if headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
            await _send_json(send, 415, "an upload must be multipart/form-data")
            return
        store = self.surface.uploads
        body = await self._read_body(receive, headers.get("content-length"), store.limits.max_upload_bytes + 64 * 1024)
        if isinstance(body, tuple):
            await _send_json(send, *body)
            return
        try:
            async with Request(scope, _replay(body, receive)).form(max_files=1, max_fields=0) as form:
                files = [v for _, v in form.multi_items() if not isinstance(v, str)]
                if len(files) != 1:
                    raise ValueError(f"{len(files)} files")
                data = await files[0].read()
        except Exception as e:  # a malformed body, a second file, a field: all one 400
            await _send_json(send, 400, f"an upload is one image file in a multipart/form-data body ({one_line(e, 80)})")
            return
        if len(data) > store.limits.max_upload_bytes:
            await _send_json(send, 413, f"the uploaded file is {len(data):,} bytes; the limit is "
                                        f"{store.limits.max_upload_bytes:,}")
            return
        try:
            async with self.upload_lock:  # one decode at a time, off the event loop
                path = await anyio.to_thread.run_sync(store.store, data)
        except T2IError as e:
            await _send_json(send, 422, str(e))
            return
        await _send_json(send, 200, [str(path)], close=False)

    async def _read_body(self, receive, content_length: str | None, limit: int | None = None):
        """The whole body, or ``(status, message)`` when it is larger than ``limit`` (default
        ``max_body_bytes``)."""
        limit = limit or self.max_body_bytes
        if content_length is not None and content_length.isdigit() and int(content_length) > limit:
            return 413, f"request body of {content_length} bytes; the limit is {limit}"
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return 400, "the client went away"
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return 413, f"request body over the limit of {limit} bytes"
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes):
    """``(value, None)``, or ``(None, why body is not acceptable JSON text)``. Strict UTF-8 (no
    encoded surrogates), strict JSON (no NaN / Infinity), no nesting deeper than Python parses, and
    no lone surrogate escaped in a string (``"\\ud800"``): such a string cannot be written back as
    UTF-8, and the app's error responses echo their input."""
    try:
        value = json.loads(body.decode("utf-8") if body else "{}", parse_constant=_no_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None, "the request body is not valid JSON"
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return None, "the request body holds a lone surrogate (\\ud800-\\udfff): not valid text"
    except RecursionError:
        return None, "the request body is not valid JSON"
    return value, None


def json_problem(body: bytes) -> str | None:
    """Why ``body`` is not acceptable JSON text (:func:`parse_json`), or None."""
    return parse_json(body)[1]


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # e.g. http.disconnect while the response streams

    return replay


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, plus a deadline: from the moment the connection opens (or its
    last response ends) the client has ``request_timeout_s`` to send a whole request; a slow or
    silent socket is closed. Requests being answered (e.g. Gradio's event streams) are not cut."""

    request_timeout_s: float = 10.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_deadline()

    def connection_lost(self, exc) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _arm_deadline(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.request_timeout_s, self._deadline_passed)

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            self.transport.close()


@dataclass
class RunningServer:
    """A server started by :func:`start_server`: its ``url`` (and ``share_url`` with a public
    link); ``close()`` stops it, ``wait()`` blocks until it stops (Ctrl+C stops it too)."""

    url: str
    server: object
    thread: threading.Thread | None
    guard: RequestGuard | None = None
    outputs: OutputCache | None = None
    uploads: UploadStore | None = None
    share_url: str | None = None
    _tunnel: object = field(default=None, repr=False)

    def allow_host(self, name: str) -> None:
        self.guard.allowed_hosts.add(host_name(name))

    def close(self) -> None:
        if self._tunnel is not None:
            self._tunnel.kill()
            self._tunnel = None
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)

    def wait(self) -> None:
        try:
            while self.thread.is_alive():
                self.thread.join(timeout=0.5)
        except KeyboardInterrupt:
            self.close()
            raise


def allowed_host_names(host: str, extra: list[str] | None = None) -> set[str]:
    names = set(LOCAL_NAMES) | {host_name(h) for h in extra or []}
    if host not in WILDCARDS:
        names.add(host_name(host) if not (":" in host and not host.startswith("[")) else f"[{host}]")
    else:  # every address of this machine: its name is what a LAN user types (its addresses: see RequestGuard)
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return names


def check_port(port) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise T2IError(f"port must be a whole number from 0 to 65535 (0: any free port), got {port!r}")
    return port


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; a bad address or a port in use is a T2IError."""
    port = check_port(port)
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise T2IError(f"cannot listen on {host!r}: {getattr(e, 'strerror', None) or e}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # connections wait in the kernel from now on, even before uvicorn's loop runs
    except OSError as e:
        sock.close()
        raise T2IError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def inner_gradio_app(app):
    """The Gradio ``App`` that :func:`gradio.mount_gradio_app` mounted in ``app``."""
    from starlette.routing import Mount

    return next(route.app for route in app.routes if isinstance(route, Mount))


def start_server(blocks, host: str = "127.0.0.1", port: int = 7860, allowed_hosts: list[str] | None = None,
                 max_body_bytes: int = 64 * 1024, request_timeout_s: float = 10.0, background: bool = True,
                 theme=None, max_output_bytes: int = 64 * 2**20, max_output_files: int = 2000, css: str | None = None,
                 upload_limits=None) -> RunningServer:
    """Serve a (queued) Gradio ``blocks`` with the guard. ``port=0`` picks a free port. The server
    runs in a thread; this returns once it answers (without ``background``, it prints the URL and
    waits here until Ctrl+C). ``max_output_bytes`` and ``max_output_files`` bound the folder of served
    images (:class:`OutputCache`); ``upload_limits`` (:class:`.app.Limits`) bound uploads, for a page
    with an image input (:class:`UploadStore`)."""
    import gradio as gr
    import uvicorn
    from fastapi import FastAPI

    from .app import Limits

    sock = listen(host, port)
    outputs = OutputCache(max_output_bytes, max_output_files)
    outputs.adopt(blocks)
    surface = AppSurface.of(blocks, outputs)
    if surface.image_inputs():
        surface.uploads = UploadStore(upload_limits or Limits())
        for fn in surface.functions.values():  # Gradio's copy of an upload stays with the uploads
            for component in fn.inputs:
                if component_kind(component) == "image":
                    component.GRADIO_CACHE = str(surface.uploads.folder)
    app = gr.mount_gradio_app(FastAPI(openapi_url=None, docs_url=None, redoc_url=None), blocks, path="",
                              server_name=host, server_port=port, ssr_mode=False, show_error=True,
                              footer_links=["api"], theme=theme, css=css, allowed_paths=[], blocked_paths=[])
    inner_gradio_app(app).uploaded_file_dir = str(outputs.folder)  # Gradio's file route: these files only
    # launch() marks the Blocks launched, which turns on Gradio's own file checks (processing_utils:
    # an input file must be in the upload folder, an output in the temp folder); mounting does not
    blocks.has_launched = True
    guard = RequestGuard(app, allowed_host_names(host, allowed_hosts), max_body_bytes, surface)
    bound = sock.getsockname()[1]
    protocol = type("BoundDeadlineH11Protocol", (DeadlineH11Protocol,), {"request_timeout_s": request_timeout_s})
    config = uvicorn.Config(guard, http=protocol, ws="none", lifespan="on", backlog=2048,
                            timeout_keep_alive=5, log_level="warning", h11_max_incomplete_event_size=16 * 1024)
    server = uvicorn.Server(config)
    display = "127.0.0.1" if host in WILDCARDS else host
    url = f"http://{display if ':' not in display else f'[{display}]'}:{bound}/"
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server stopped while starting")
        thread.join(timeout=0.05)
    running = RunningServer(url, server, thread, guard, outputs, surface.uploads)
    if not background:
        print(f"* running on {url}  (Ctrl+C to stop)", flush=True)
        running.wait()
    return running


def open_share_link(running: RunningServer, share_token: str) -> str:
    """Open a Gradio share tunnel (a public ``https://*.gradio.live`` address) to ``running``'s
    guarded port and let its Host through; every other check stays. A failure is a T2IError."""
    from urllib.parse import urlparse

    from gradio import networking

    local = urlparse(running.url)  # the bound address (127.0.0.1 when bound to all)
    port = local.port
    try:
        link = networking.setup_tunnel(local.hostname, port, share_token, None, None)
    except Exception as e:  # offline, no tunnel binary, the share server refusing: all one line
        raise T2IError(f"--share could not open a public link: {one_line(e, 200)}") from None
    parsed = urlparse(link)
    if not parsed.hostname:
        raise T2IError(f"--share got no public address from Gradio's share server (got {link!r})")
    from gradio.tunneling import CURRENT_TUNNELS

    running._tunnel = next((t for t in CURRENT_TUNNELS if t.local_port == port), None)
    running.allow_host(parsed.hostname)
    running.guard.allowed_origins.add(f"https://{parsed.netloc}".lower())  # also if the tunnel rewrites Host
    running.share_url = parsed._replace(scheme="https").geturl()
    return running.share_url
