"""The HTTP side of ``t2igan serve``: a uvicorn server for the Gradio app with a request guard.

Gradio and uvicorn answer the protocol; :class:`RequestGuard` (an ASGI middleware) and
:class:`DeadlineH11Protocol` add what a local demo on a developer's machine needs:

* **Host check** (DNS rebinding): the ``Host`` header must name this server (``127.0.0.1``,
  ``localhost``, ``[::1]``, the bound address, or an ``allowed_hosts`` entry), else 403.
* **Origin check** (cross-site requests): a request that carries an ``Origin`` must come from the
  page's own origin, else 403; a ``POST`` must be ``application/json`` (415), so no other web page
  can drive the app with a "simple" cross-origin form or ``text/plain`` request.
* **Bounded bodies**: a body over ``max_body_bytes`` is refused with 413 while it is read (whatever
  its ``Content-Length`` says); a body that is not JSON (or nests deeper than Python can parse) is a
  400; malformed ``Content-Length`` values are 400s from the HTTP parser.
* **Slow sockets**: a connection must deliver a whole request (headers and body) within
  ``request_timeout_s`` of opening or of its previous response, else it is closed.
* A listen backlog of 2048, so a burst of connections waits in the kernel instead of being reset.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")
WILDCARDS = ("0.0.0.0", "::", "")


def host_name(value: str) -> str:
    """``Host``/``Origin`` authority -> the lower-case host without the port (``[::1]`` kept)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


async def _send_json(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """ASGI middleware in front of the Gradio app: Host, Origin, content type and body checks."""

    def __init__(self, app, allowed_hosts: set[str], max_body_bytes: int = 64 * 1024):
        self.app = app
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if host_name(host) not in self.allowed_hosts:
            await _send_json(send, 403, f"unknown Host {host!r}: this server answers only requests to itself")
            return
        origin = headers.get("origin")
        if origin is not None and origin.split("://", 1)[-1].lower() != host.lower():
            await _send_json(send, 403, f"cross-origin request from {origin!r} refused")
            return
        if scope["type"] == "websocket" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            await _send_json(send, 415, "POST bodies must be application/json")
            return
        body = await self._read_body(receive, headers.get("content-length"))
        if isinstance(body, tuple):
            await _send_json(send, *body)
            return
        problem = json_problem(body)
        if problem:
            await _send_json(send, 400, problem)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive, content_length: str | None):
        """The whole body, or ``(status, message)`` when it is too large."""
        limit = self.max_body_bytes
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


def json_problem(body: bytes) -> str | None:
    """Why ``body`` is not acceptable JSON text, or None. Strict UTF-8 (no encoded surrogates), no
    nesting deeper than Python parses, and no lone surrogate escaped in a string (``"\\ud800"``):
    such a string cannot be written back as UTF-8, and the app's error responses echo their input."""
    try:
        value = json.loads(body.decode("utf-8") if body else "{}")
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return "the request body is not valid JSON"
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "the request body holds a lone surrogate (\\ud800-\\udfff): not valid text"
    return None


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
    """A server started by :func:`start_server`: its ``url``; ``close()`` stops it."""

    url: str
    server: object
    thread: threading.Thread | None

    def close(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)


def allowed_host_names(host: str, extra: list[str] | None = None) -> set[str]:
    names = set(LOCAL_NAMES) | {host_name(h) for h in extra or []}
    if host not in WILDCARDS:
        names.add(host_name(host) if not (":" in host and not host.startswith("[")) else f"[{host}]")
    else:  # every address of this machine: its name is what a LAN user types
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return names


def start_server(blocks, host: str = "127.0.0.1", port: int = 7860, allowed_hosts: list[str] | None = None,
                 max_body_bytes: int = 64 * 1024, request_timeout_s: float = 10.0,
                 background: bool = True, theme=None) -> RunningServer:
    """Serve a (queued) Gradio ``blocks`` with the guard. ``port=0`` picks a free port. With
    ``background`` the server runs in a thread and this returns once it answers; otherwise it runs
    here until Ctrl+C."""
    import gradio as gr
    import uvicorn
    from fastapi import FastAPI

    app = gr.mount_gradio_app(FastAPI(openapi_url=None, docs_url=None, redoc_url=None), blocks, path="",
                              server_name=host, server_port=port, ssr_mode=False, show_error=True,
                              footer_links=["api"], theme=theme)
    guarded = RequestGuard(app, allowed_host_names(host, allowed_hosts), max_body_bytes)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # connections wait in the kernel from now on, even before uvicorn's loop runs
    bound = sock.getsockname()[1]
    protocol = type("BoundDeadlineH11Protocol", (DeadlineH11Protocol,), {"request_timeout_s": request_timeout_s})
    config = uvicorn.Config(guarded, http=protocol, ws="none", lifespan="on", backlog=2048,
                            timeout_keep_alive=5, log_level="warning", h11_max_incomplete_event_size=16 * 1024)
    server = uvicorn.Server(config)
    display = "127.0.0.1" if host in WILDCARDS else host
    url = f"http://{display if ':' not in display else f'[{display}]'}:{bound}/"
    if not background:
        print(f"* running on {url}  (Ctrl+C to stop)", flush=True)
        server.run(sockets=[sock])
        return RunningServer(url, server, None)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server stopped while starting")
        thread.join(timeout=0.05)
    return RunningServer(url, server, thread)

