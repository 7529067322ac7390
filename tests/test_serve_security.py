"""What a client of ``t2igan serve`` can reach: the page, the app's two functions (text and numbers
in) and the images they made; never a file of the server. Every attack runs against a real server,
through ``gradio_client`` and through raw HTTP, and asserts that the bytes of ``/etc/passwd`` and of
the served model's weights never come back (and that no copy of them lands in the served folder)."""

import http.server
import json
import os
import socket
import threading
import uuid
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError, ValidationError
from test_serve import LIMITS, generate_fn_index, port_of, post_json, raw_request

from t2igan import Text2ImagePipeline
from t2igan.errors import T2IError
from t2igan.serve import serve
from t2igan.serve.app import DemoFunctions, Limits
from t2igan.serve.server import OutputCache, RequestGuard, same_address

OUTPUT_BOUND = 30_000  # bytes of served images kept; a 32 px PNG of the tiny model is ~0.8 KB, a grid of 8 ~10 KB


@pytest.fixture(scope="module")
def pipe(tiny_trained_run):
    return Text2ImagePipeline.from_pretrained(tiny_trained_run, device="cpu")


@pytest.fixture(scope="module")
def server(pipe):
    running = serve("tiny-dfgan", port=0, pipe=pipe, limits=LIMITS, request_timeout_s=2.0,
                    max_output_bytes=OUTPUT_BOUND)
    yield running
    running.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def secrets(tiny_trained_run):
    """Distinctive pieces of the two files an attacker wants: the passwd file, and the model's
    safetensors header and a slice of its weights."""
    passwd = Path("/etc/passwd").read_bytes()
    model = (tiny_trained_run / "model.safetensors").read_bytes()
    return {"passwd": [passwd[:64], b"root:x:0:0"], "model": [model[8:72], model[len(model) // 2:][:64]]}


def leaked(secrets, *blobs) -> list[str]:
    text = b"".join(b if isinstance(b, bytes) else str(b).encode("utf-8", "replace") for b in blobs)
    return [name for name, pieces in secrets.items() if any(piece in text for piece in pieces)]


def served_files_hold_no_secret(server, secrets):
    for path in server.outputs.folder.rglob("*"):
        if path.is_file():
            assert not leaked(secrets, path.read_bytes()), f"{path} is a copy of a secret file"


def join(server, data, fn_index=..., **extra):
    payload = {"data": data, "fn_index": generate_fn_index(server) if fn_index is ... else fn_index,
               "session_hash": uuid.uuid4().hex[:11], **extra}
    return post_json(server, "/gradio_api/queue/join", payload)


def queue_result(server, session_hash: str) -> list[dict]:
    status, body = raw_request(server, f"GET /gradio_api/queue/data?session_hash={session_hash} HTTP/1.1\n"
                                       f"Host: 127.0.0.1:{port_of(server)}\nConnection: close", timeout=60)
    assert status == 200
    return [json.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: ")]


def get(server, path: str, host: str | None = None):
    return raw_request(server, f"GET {path} HTTP/1.1\nHost: {host or f'127.0.0.1:{port_of(server)}'}\nConnection: close")


class Recorder(http.server.ThreadingHTTPServer):
    """A local web server holding a secret: any request to it means the app fetched a URL a client named."""

    def __init__(self, body: bytes):
        self.hits, self.body = [], body

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(handler):  # noqa: N805
                self.hits.append(handler.path)
                handler.send_response(200)
                handler.send_header("Content-Type", "image/png")
                handler.end_headers()
                handler.wfile.write(self.body)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/secret.png"


@pytest.fixture(scope="module")
def recorder():
    r = Recorder(Path("/etc/passwd").read_bytes())
    yield r
    r.shutdown()


def file_data(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


# -- a file where text or a number belongs -------------------------------------------------------------


@pytest.mark.parametrize("position", [0, 1, 2, 3], ids=["caption", "n", "seed", "truncation"])
@pytest.mark.parametrize("target", ["passwd", "model", "url"])
def test_raw_http_file_data_in_any_input_is_refused(server, secrets, recorder, tiny_trained_run, position, target):
    path = {"passwd": "/etc/passwd", "model": str(tiny_trained_run / "model.safetensors"), "url": recorder.url}[target]
    data = ["a red circle", 1, 0, None]
    data[position] = file_data(path)
    status, body = join(server, data)
    assert status == 422 and b"(a file)" in body
    assert not leaked(secrets, body)
    # an old-style file object (no "meta") and one hidden in another field of the body
    data[position] = {"path": path}
    status, body = join(server, data)
    assert status == 422 and not leaked(secrets, body)
    status, body = join(server, ["a red circle", 1, 0, None], event_data=file_data(path))
    assert status == 400 and not leaked(secrets, body)
    assert recorder.hits == []
    served_files_hold_no_secret(server, secrets)


def test_gradio_client_file_data_is_refused(client, server, secrets, recorder, tiny_trained_run):
    model = str(tiny_trained_run / "model.safetensors")
    # a server path the client does not upload (gradio_client uploads only local files with "meta")
    for value in ({"path": "/etc/passwd"}, {"path": model}):
        with pytest.raises(ValidationError, match="Caption: must be text, got an object") as e:
            client.predict(value, 1, 0, None, api_name="/generate")
        assert not leaked(secrets, str(e.value))
    # a URL the server would have downloaded into its cache
    with pytest.raises(ValidationError, match="must be text") as e:
        client.predict(file_data(recorder.url), 1, 0, None, api_name="/generate")
    assert recorder.hits == [] and not leaked(secrets, str(e.value))
    # a local file gradio_client uploads first: there is no upload route
    for path in ("/etc/passwd", model):
        with pytest.raises(httpx.HTTPStatusError) as e:
            client.predict(handle_file(path), 1, 0, None, api_name="/generate")
        assert e.value.response.status_code == 404 and not leaked(secrets, e.value.response.content)
    with pytest.raises(ValidationError, match="Caption B: must be text"):
        client.predict("a red circle", file_data(recorder.url), 3, 0, None, api_name="/interpolate")
    served_files_hold_no_secret(server, secrets)


def test_numbers_are_numbers(client, server):
    with pytest.raises(ValidationError, match="Images: must be a finite number, got \"3\""):
        client.predict("a red circle", "3", 0, None, api_name="/generate")
    with pytest.raises(ValidationError, match="Seed: must be a finite number, got true"):
        client.predict("a red circle", 1, True, None, api_name="/generate")
    with pytest.raises(ValidationError, match="Images: must be between 1 and 16, got a 401-digit number"):
        client.predict("a red circle", 10**400, 0, None, api_name="/generate")
    with pytest.raises(ValidationError, match="Caption: must be text, got 7"):
        client.predict(7, 1, 0, None, api_name="/generate")
    # the seed field has no upper bound of its own: the app's message says the range, in one line
    with pytest.raises(AppError, match=r"^seed must be a whole number between 0 and 2147483647, got a 401-digit number$"):
        client.predict("a red circle", 1, 10**400, None, api_name="/generate")
    # JSON without a number's worth: 1e400 (infinite), NaN (not JSON at all)
    status, body = post_json(server, "/gradio_api/queue/join", b'{"data": ["a red circle", 1, 1e400, null], '
                             b'"fn_index": %d, "session_hash": "abc"}' % generate_fn_index(server))
    assert status == 422 and b"Seed must be a finite number" in body
    status, body = post_json(server, "/gradio_api/queue/join", b'{"data": ["a red circle", 1, NaN, null], '
                             b'"fn_index": %d, "session_hash": "abc"}' % generate_fn_index(server))
    assert status == 400 and b"not valid JSON" in body


def test_only_the_apps_functions_are_callable(server):
    fn = generate_fn_index(server)
    for index in (99, -1, "1", None):
        status, _ = join(server, ["a red circle", 1, 0, None], fn_index=index)
        assert status == 404
    # a queued function is not callable directly (it would skip the one-at-a-time queue)
    status, _ = post_json(server, "/gradio_api/run/predict", {"data": ["a red circle", 1, 0, None], "fn_index": fn,
                                                              "session_hash": "abc"})
    assert status == 404
    status, body = join(server, ["a red circle", 1, 0], fn_index=fn)  # too few inputs
    assert status == 422 and b"list of 4 inputs" in body
    status, _ = join(server, [["a red circle", 1, 0, None]], fn_index=fn, batched=True)
    assert status in (400, 422)
    # the example loader is the page's one direct call: an index into its examples
    load = next(i for i, f in server.guard.surface.functions.items() if f.route == "direct")
    status, body = post_json(server, "/gradio_api/run/predict", {"data": [0], "fn_index": load, "session_hash": "abc"})
    assert status == 200 and b"a red circle" in body
    status, body = post_json(server, "/gradio_api/run/predict", {"data": [99], "fn_index": load, "session_hash": "abc"})
    assert status == 422 and b"example index" in body


# -- file routes -------------------------------------------------------------------------------------


def test_no_route_serves_a_file_of_the_server(server, secrets, tiny_trained_run):
    model = str(tiny_trained_run / "model.safetensors")
    import gradio.utils

    # a file in Gradio's shared upload folder (another app's, or left by an earlier attack)
    planted = Path(gradio.utils.get_upload_folder()) / f"t2igan-test-{uuid.uuid4().hex}" / "passwd"
    planted.parent.mkdir(parents=True)
    planted.write_bytes(Path("/etc/passwd").read_bytes())
    # a link in the served folder itself
    link = server.outputs.folder / "link.png"
    link.symlink_to("/etc/passwd")
    try:
        paths = []
        for target in ("/etc/passwd", model, str(planted), str(server.outputs.folder / ".." / "..") + "/etc/passwd",
                       str(link), "%2Fetc%2Fpasswd", f"http://127.0.0.1:{port_of(server)}/", "/"):
            paths += [f"/gradio_api/file={target}", f"/gradio_api/file/{target}", f"/file={target}",
                      f"/gradio_api/proxy={target}", f"/gradio_api/stream/{target}"]
        paths += ["/static/../../../../../etc/passwd", "/assets/../../../../../etc/passwd", "/gradio_api/openapi.json",
                  "/gradio_api/custom_component/x/client/../../../etc/passwd", "/monitoring", "/gradio_api/upload_progress",
                  "/gradio_api/startup-events", "/gradio_api/runs", "/gradio_api/run-history/buckets",
                  "/gradio_api/vibe-code/", "/gradio_api/dev/reload", "/svelte/../../etc/passwd", "/login", "/logout",
                  "/gradio_api/deep_link", "/gradio_api/user"]
        for path in paths:
            status, body = get(server, path)
            assert status in (403, 404), (path, status)
            assert not leaked(secrets, body), path
        status, body = raw_request(server, f"DELETE / HTTP/1.1\nHost: 127.0.0.1:{port_of(server)}\nConnection: close")
        assert status == 405
        for route in ("/gradio_api/upload", "/gradio_api/process_recording", "/gradio_api/component_server",
                      "/gradio_api/vibe-edit", "/gradio_api/stream/abc", "/login"):
            status, body = post_json(server, route, {"path": "/etc/passwd"})
            assert status == 404, route
    finally:
        link.unlink()
        planted.unlink()
        planted.parent.rmdir()


def test_the_apps_own_outputs_are_served(client, server):
    gallery, *_ = client.predict("a red circle", 2, 3, None, api_name="/generate")
    assert len(gallery) == 2
    (png,) = [p for p in server.outputs.folder.rglob("*.png") if p.name == Path(gallery[0]["image"]).name]
    status, body = get(server, f"/gradio_api/file={png}")
    assert status == 200 and body == png.read_bytes() and body.startswith(b"\x89PNG")


def test_gradios_own_file_check_is_on(server):
    """The second wall: Gradio itself, as under launch(), refuses to copy a file a client names."""
    from gradio import processing_utils
    from gradio.context import LocalContext
    from gradio.exceptions import InvalidPathError

    blocks = server.guard.surface.blocks
    assert blocks.has_launched and blocks.allowed_paths == []
    caption = server.guard.surface.functions[generate_fn_index(server)].inputs[0]
    token = LocalContext.blocks.set(blocks)
    try:
        with pytest.raises(InvalidPathError):
            processing_utils.move_files_to_cache(file_data("/etc/passwd"), caption, check_in_upload_folder=True)
    finally:
        LocalContext.blocks.reset(token)


def test_served_images_are_bounded(client, server):
    """Before each call the oldest served images go until OUTPUT_BOUND bytes remain: the folder
    never holds more than that plus the images of the calls in the queue (here one at a time)."""
    def files():
        return {p: p.stat().st_size for p in server.outputs.folder.rglob("*") if p.is_file()}

    written = 0
    for seed in range(12):
        before = files()
        gallery, *_ = client.predict("a red circle", 8, seed, None, api_name="/generate")
        after = files()
        added = sum(size for p, size in after.items() if p not in before)
        written += added
        assert 0 < added < OUTPUT_BOUND and sum(after.values()) <= OUTPUT_BOUND + added
    assert written > 2 * OUTPUT_BOUND  # the bound, not a short run, kept the folder small
    newest = [p for p in server.outputs.folder.rglob("*.png") if p.name in {Path(g["image"]).name for g in gallery}]
    assert len(newest) == 8  # the latest call's images are all still served
    # Gradio's own list of files to clean up names no deleted file (it would grow without end)
    listed = {f for files in server.guard.surface.blocks.temp_file_sets for f in files
              if Path(f).is_relative_to(server.outputs.folder)}
    assert all(Path(f).exists() for f in listed)


# -- hosts: --host 0.0.0.0 and --share ------------------------------------------------------------------


def test_same_address():
    assert same_address("192.168.1.5", "192.168.1.5") and same_address("[::1]", "::1")
    assert same_address("192.168.1.5", "::ffff:192.168.1.5")  # a dual-stack socket's view of IPv4
    assert not same_address("192.168.1.6", "192.168.1.5") and not same_address("evil.example", "192.168.1.5")


def test_all_addresses_accept_the_address_a_request_came_to(pipe):
    """Bound to 0.0.0.0, a request to one of the machine's addresses (127.0.0.2 stands for a LAN
    address: local, not a name in the fixed list) may name that address as its Host."""
    running = serve("tiny-dfgan", host="0.0.0.0", port=0, pipe=pipe, limits=LIMITS)
    try:
        port = port_of(running)
        guard = running.guard
        assert "127.0.0.2" not in guard.allowed_hosts

        def status_for(address: str, host: str) -> int:
            with socket.create_connection((address, port), timeout=10) as sock:
                sock.sendall(f"GET /config HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                return int(sock.recv(64).split(b" ", 2)[1])

        assert status_for("127.0.0.2", f"127.0.0.2:{port}") == 200
        assert status_for("127.0.0.2", "127.0.0.3") == 403  # another address than the one connected to
        assert status_for("127.0.0.2", "evil.example") == 403  # DNS rebinding
        assert status_for("127.0.0.1", f"{socket.gethostname()}:{port}") == 200
    finally:
        running.close()


def test_share_goes_through_the_same_guard(pipe, monkeypatch, secrets):
    """``share=True`` points Gradio's tunnel at the guarded server and lets its public name through;
    the tunnel itself (a download and a remote server) is replaced by a stand-in."""
    from gradio import networking

    opened = []

    def fake_tunnel(local_host, local_port, share_token, address, certificate):
        opened.append((local_host, local_port))
        return "http://t2igan-test.gradio.live"

    monkeypatch.setattr(networking, "setup_tunnel", fake_tunnel)
    running = serve("tiny-dfgan", port=0, pipe=pipe, limits=LIMITS, share=True)
    try:
        public = "t2igan-test.gradio.live"
        assert running.share_url == f"https://{public}" and opened == [("127.0.0.1", port_of(running))]
        assert get(running, "/config", host=public)[0] == 200
        assert get(running, "/config", host="evil.example")[0] == 403
        payload = {"data": [file_data("/etc/passwd"), 1, 0, None], "fn_index": generate_fn_index(running),
                   "session_hash": "abc"}
        head = (f"POST /gradio_api/queue/join HTTP/1.1\nHost: {public}\nContent-Type: application/json\n"
                f"Connection: close")
        status, body = raw_request(running, f"{head}\nContent-Length: {len(json.dumps(payload))}",
                                   json.dumps(payload).encode())
        assert status == 422 and not leaked(secrets, body)
        # a 20 MB upload from a foreign page: refused before it is read
        big = 20 * 2**20
        status, _ = raw_request(running, f"{head}\nOrigin: https://evil.example\nContent-Length: {big}", b"{")
        assert status == 403
        status, _ = raw_request(running, f"{head}\nOrigin: https://{public}\nContent-Length: {big}", b"{")
        assert status == 413
        # the public page's origin is its own, also when the tunnel hands the local Host on
        local = f"POST /gradio_api/queue/join HTTP/1.1\nHost: 127.0.0.1:{port_of(running)}\nContent-Type: application/json"
        status, _ = raw_request(running, f"{local}\nOrigin: https://{public}\nContent-Length: {big}", b"{")
        assert status == 413
        status, _ = raw_request(running, f"{local}\nOrigin: https://evil.example\nContent-Length: {big}", b"{")
        assert status == 403
    finally:
        running.close()


def test_share_that_cannot_open_is_one_line_and_frees_the_port(pipe, monkeypatch):
    from gradio import networking

    def offline(*args):
        raise RuntimeError("Could not get share link from Gradio API Server.")

    monkeypatch.setattr(networking, "setup_tunnel", offline)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(T2IError, match=r"^--share could not open a public link: Could not get share link"):
        serve("tiny-dfgan", port=port, pipe=pipe, limits=LIMITS, share=True)
    with socket.socket() as again:  # the local server was stopped
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


def test_bad_port_and_address_are_one_line(pipe):
    for port in (99999, -1):
        with pytest.raises(T2IError, match=r"port must be a whole number from 0 to 65535"):
            serve("tiny-dfgan", port=port, pipe=pipe)
    with pytest.raises(T2IError, match=r"cannot listen on 192\.0\.2\.1:0"):
        serve("tiny-dfgan", host="192.0.2.1", port=0, pipe=pipe)


def test_guard_without_a_surface_still_checks_hosts():
    guard = RequestGuard(None, {"127.0.0.1"})
    assert guard.host_allowed("127.0.0.1:80", {"server": ("127.0.0.1", 80)})
    assert not guard.host_allowed("evil.example", {"server": ("127.0.0.1", 80)})


def test_output_cache_keeps_the_newest_files_within_its_bounds():
    cache = OutputCache(max_bytes=1000, max_files=3)
    paths = []
    for i in range(5):  # 5 files of 100 bytes, oldest first: the count bound holds
        paths.append(cache.folder / f"h{i}" / "a.png")
        paths[-1].parent.mkdir()
        paths[-1].write_bytes(b"x" * 100)
        os.utime(paths[-1], (1000 + i, 1000 + i))
    assert cache.prune() == paths[:2] and not paths[0].parent.exists()  # empty folders go too
    big = cache.folder / "big.png"
    big.write_bytes(b"y" * 900)  # now the byte bound holds: 1200 > 1000
    assert cache.prune() == paths[2:4] and cache.size() == 1000
    assert cache.holds(str(big)) and not cache.holds(str(paths[0])) and not cache.holds(str(cache.folder))
    assert not cache.holds(str(cache.folder / ".." / cache.folder.name / "big.png/../../etc/passwd"))


# -- uploads: only for a page with an image input (the STREAM tab) ----------------------------------------


@pytest.fixture(scope="module")
def stream_server(tiny_trained_run):
    from test_serve import tiny_stream

    pipe = Text2ImagePipeline.from_pretrained(tiny_trained_run, device="cpu")
    pipe.model.stream = tiny_stream(pipe)
    running = serve("tiny-stream", port=0, pipe=pipe, request_timeout_s=5.0,
                    limits=Limits(max_upload_bytes=100_000, max_upload_pixels=1_000_000, upload_side=64))
    yield running, pipe
    running.close()


def upload(server, files: list[tuple[str, bytes]], content_type: str | None = None) -> tuple[int, bytes]:
    boundary = uuid.uuid4().hex
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
                    f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n" for name, data in files)
    body += f"--{boundary}--\r\n".encode()
    return post_json(server, "/gradio_api/upload", body, content_type=content_type or
                     f"multipart/form-data; boundary={boundary}")


def png_bytes(size=(40, 30), colour=(200, 40, 40), fmt="PNG") -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, fmt)
    return buf.getvalue()


def test_an_upload_is_an_image_decoded_and_stored_again_as_a_png(stream_server, secrets, tiny_trained_run):
    from PIL import Image

    running, _ = stream_server
    status, body = upload(running, [("../../x.png", png_bytes(fmt="JPEG"))])
    assert status == 200
    (stored,) = json.loads(body)
    stored = Path(stored)
    assert stored.parent == running.uploads.folder and stored.suffix == ".png" and "x" not in stored.stem
    assert Image.open(stored).format == "PNG" and Image.open(stored).size == (40, 30)
    # the page previews the stored copy; nothing else under the uploads' folder or beside it is served
    status, body = get(running, f"/gradio_api/file={stored}")
    assert status == 200 and body == stored.read_bytes()
    for path in (f"{running.uploads.folder}/../../../etc/passwd", f"{running.uploads.folder}/", "/etc/passwd",
                 f"{running.uploads.folder}/{stored.stem}"):
        status, body = get(running, f"/gradio_api/file={path}")
        assert status in (403, 404) and not leaked(secrets, body), path
    status, _ = upload(running, [("big.png", png_bytes((200, 100)))])  # scaled to upload_side (64) on its long side
    assert status == 200
    for name, data, expected in (("passwd.png", Path("/etc/passwd").read_bytes(), 422),
                                 ("model.png", (tiny_trained_run / "model.safetensors").read_bytes()[:90_000], 422),
                                 ("svg.png", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', 422),
                                 ("huge.png", png_bytes((1200, 1000)), 422),  # 1.2 M pixels; a small file
                                 ("large.png", os.urandom(150_000), 413)):
        status, out = upload(running, [(name, data)])
        assert status == expected, (name, status, out)
        assert not leaked(secrets, out)
    status, _ = upload(running, [("a.png", png_bytes()), ("b.png", png_bytes())])
    assert status == 400
    status, _ = upload(running, [], content_type="application/json")
    assert status == 415
    for path in running.uploads.folder.rglob("*"):
        assert Image.open(path).format == "PNG" and not leaked(secrets, path.read_bytes())


def test_the_caption_tab_takes_only_the_servers_own_uploads(stream_server, secrets, tiny_trained_run, tmp_path):
    running, pipe = stream_server
    client = Client(running.url, verbose=False)
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes((48, 48), (30, 160, 60)))
    expected = DemoFunctions(pipe, Limits()).caption_image(str(photo), 2)
    assert client.predict(handle_file(str(photo)), 2, api_name="/caption") == expected
    # a file of the server, named rather than uploaded (raw HTTP: gradio_client would upload a local
    # file first): refused before Gradio sees it
    model = str(tiny_trained_run / "model.safetensors")
    gallery, *_ = client.predict("a red circle", 1, 0, None, api_name="/generate")
    caption_fn = generate_fn_index(running, "caption")
    for value in (file_data("/etc/passwd"), file_data(model), file_data(gallery[0]["image"]),
                  file_data(str(running.uploads.folder)), {"url": "file:///etc/passwd"}, "/etc/passwd"):
        status, body = post_json(running, "/gradio_api/queue/join", {
            "data": [value, 1], "fn_index": caption_fn, "session_hash": uuid.uuid4().hex[:11]})
        assert status == 422 and b"must be an image uploaded to this server" in body, (value, status, body)
        assert not leaked(secrets, body)
    for path in ("/etc/passwd", model):  # uploaded by gradio_client: not an image, refused by the upload
        with pytest.raises(httpx.HTTPStatusError) as e:
            client.predict(handle_file(path), 1, api_name="/caption")
        assert e.value.response.status_code in (413, 422) and not leaked(secrets, e.value.response.content)
    with pytest.raises(ValidationError, match="Beam width: must be between 1 and 8"):
        client.predict(handle_file(str(photo)), 0, api_name="/caption")
