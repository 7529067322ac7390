"""``t2igan serve``: the Gradio app's functions, its API through ``gradio_client``, and the HTTP guard
(burst, oversized / malformed bodies, cross-origin requests, foreign Host, slow sockets) against a
real server on a free port, over the shared tiny DF-GAN run (conftest)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest
from conftest import TINY_SIZE, tiny_model_overrides
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

from t2igan import Text2ImagePipeline
from t2igan.config import resolve_config
from t2igan.errors import T2IError
from t2igan.serve import serve
from t2igan.serve.app import DemoFunctions, Limits
from t2igan.training import Trainer
from t2igan.visualize import captioned_grid

LIMITS = Limits(max_images=16, max_waiting=2)


@pytest.fixture(scope="module")
def pipe(tiny_trained_run):
    return Text2ImagePipeline.from_pretrained(tiny_trained_run, device="cpu")


@pytest.fixture(scope="module")
def server(pipe):
    running = serve("tiny-dfgan", port=0, pipe=pipe, limits=LIMITS, request_timeout_s=1.0)
    yield running
    running.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False)


def port_of(server) -> int:
    return int(server.url.rstrip("/").rsplit(":", 1)[1])


def raw_request(server, head: str, body: bytes = b"", timeout: float = 10.0) -> tuple[int, bytes]:
    """Send ``head`` (request line + headers, no blank line) and ``body`` on a fresh socket; return
    (status, response body). Headers the caller does not give are not added."""
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode("latin-1") + b"\r\n\r\n" + body)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                header, _, rest = data.partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in header.split(b"\r\n") if line.lower().startswith(b"content-length:")]
                if length and len(rest) >= length[0]:
                    break
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def post_json(server, path: str, payload, extra_headers: str = "", content_type="application/json"):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    head = (f"POST {path} HTTP/1.1\nHost: 127.0.0.1:{port_of(server)}\nContent-Type: {content_type}\n"
            f"Content-Length: {len(body)}\nConnection: close{extra_headers}")
    return raw_request(server, head, body)


def generate_fn_index(server, api_name: str = "generate") -> int:
    status, body = raw_request(server, f"GET /config HTTP/1.1\nHost: 127.0.0.1:{port_of(server)}\nConnection: close")
    assert status == 200
    return next(d["id"] for d in json.loads(body)["dependencies"] if d.get("api_name") == api_name)


def join_payload(server, caption="a red circle", n=16):
    return {"data": [caption, n, 0, None], "fn_index": generate_fn_index(server), "event_data": None,
            "session_hash": uuid.uuid4().hex[:11], "trigger_id": None}


def gallery_images(gallery) -> list[Image.Image]:
    return [Image.open(item["image"]).convert("RGB") for item in gallery]


# -- the functions behind the page ------------------------------------------------------------------


def test_generate_is_the_pipeline_output_with_notices(pipe):
    fns = DemoFunctions(pipe, LIMITS)
    gallery, grid, notices, attention, masks, stream = fns.generate("a red circle", 3, 5, None)
    expected = pipe(["a red circle"], n=3, seed=5)
    assert [Image.open(path).tobytes() for path, _ in gallery] == [im.tobytes() for im in expected]
    assert (notices, attention, masks, stream) == ("", None, None, "")
    # the download: the captioned grid `t2igan sample` writes, under a name that says the seed
    assert grid.endswith("t2igan-seed5.png")
    assert Image.open(grid).size == captioned_grid(expected, ["a red circle"] * 3, ncol=3).size
    assert fns.features == set()  # DF-GAN: no attention, masks or STREAM
    long_caption = " ".join(["red"] * (pipe.max_words + 5)) + " zorblax"
    _, _, notices, *_ = fns.generate(long_caption, "1", "0", "")
    assert "zorblax" in notices and "shortened" in notices and str(pipe.max_words) in notices


def test_examples_are_captions_the_vocabulary_knows(pipe):
    fns = DemoFunctions(pipe, LIMITS)
    assert fns.examples and "a red circle" in fns.examples
    assert all(not pipe.vocab.unknown_words(c) for c in fns.examples)
    assert not any("bird" in c for c in fns.examples)  # Shapes does not know birds


@pytest.mark.parametrize("args, expected", [
    (("", 1), "empty"), (("   ", 1), "empty"), (("zorblax quuxish", 1), "zorblax, quuxish"),
    (("a red circle", 17), "between 1 and 16"), (("a red circle", 0), "between 1 and 16"),
    (("a red circle", "four"), "whole number"), (("a red circle", 2.5), "whole number"),
    (("a red circle " * 50, 1), "limit is 500"), (("a red circle", 1, -3), "seed"),
    (("a red circle", 1, 0, -1), "truncation"), (("a red circle", 1, 0, float("nan")), "truncation"),
    ((7, 1), "text"), (("a red \ud800 circle", 1), "lone surrogate"),
])
def test_bad_input_raises_a_message(pipe, args, expected):
    with pytest.raises(T2IError, match=expected):
        DemoFunctions(pipe, LIMITS).generate(*args)


def test_attention_masks_and_stream_panels_for_models_that_have_them(tmp_path, pipe):
    from t2igan.models.stream import StreamCaptioner, StreamConfig

    cfg = resolve_config("drgan-shapes", [
        f"data.image_size={TINY_SIZE}", "data.train_args={num_images: 8}", "data.test_args={num_images: 4}",
        "train.batch_size=4", "train.max_steps=1", "train.sample_every=0", *tiny_model_overrides("drgan")])
    drgan = Text2ImagePipeline.from_pretrained(Trainer(cfg, tmp_path / "run", progress=False).fit(), device="cpu")
    fns = DemoFunctions(drgan, LIMITS)
    assert fns.features == {"attention", "masks"}
    gallery, _, _, attention, masks, stream = fns.generate("a red circle", 2, 0, None)
    n_words = len(drgan.words(["a red circle"])[0])
    assert stream == ""
    attention, masks = Image.open(attention), Image.open(masks)  # a row per image, stacked
    assert attention.width >= 32 * (1 + n_words) and attention.height >= 2 * 32  # the image, then a map per word
    assert masks.width >= 32 * 3 and masks.height >= 2 * 32  # the image, then a mask per SDM stage (2)
    # a model with a STREAM captioner gets the regenerated captions
    pipe.model.stream = StreamCaptioner(StreamConfig(vocab_size=len(pipe.vocab), backbone="small_cnn", image_size=32,
                                                     cnn_channels=4, embed_dim=8, hidden_dim=8, max_len=4))
    try:
        fns = DemoFunctions(pipe, LIMITS)
        assert fns.features == {"stream"}
        *_, stream = fns.generate("a red circle", 2, 0, None)
        expected = pipe.redescribe(pipe(["a red circle"], n=2, seed=0))
        assert stream.splitlines() == [f"image #{i + 1}: {c}" for i, c in enumerate(expected)]
    finally:
        del pipe.model.stream


# -- the app's API, from gradio_client ------------------------------------------------------------------


def test_client_generate_and_interpolate_match_the_pipeline(client, pipe):
    gallery, grid, notices, attention, masks, stream = client.predict("a red circle", 3, 5, None, api_name="/generate")
    expected = pipe(["a red circle"], n=3, seed=5)
    assert [im.tobytes() for im in gallery_images(gallery)] == [im.tobytes() for im in expected]
    assert (notices, attention, masks, stream) == ("", None, None, "")
    assert Path(grid).name == "t2igan-seed5.png" and Image.open(grid).width > 3 * TINY_SIZE
    gallery, row, notices = client.predict("a red circle", "a blue square", 5, 1, None, api_name="/interpolate")
    expected = pipe.interpolate("a red circle", "a blue square", 5, seed=1)
    assert [im.tobytes() for im in gallery_images(gallery)] == [im.tobytes() for im in expected]
    assert [item["caption"] for item in gallery][::4] == ["t=0.00", "t=1.00"]
    assert Path(row).name == "t2igan-interpolation-seed1.png"


def test_api_outputs_are_named_and_counts_are_whole_numbers(client):
    """What ``gradio_client``'s view_api shows: outputs named by their label (not ``value_13``), and
    the number of images, steps and the seed typed as integers."""
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    outputs = [p["label"] for p in api["/generate"]["returns"]]
    assert outputs[:3] == ["Images", "Download grid", "Notices"] and not any(o.startswith("value_") for o in outputs)
    types = {p["label"]: p["type"].get("type") for p in api["/generate"]["parameters"]}
    assert types["Images"] == "integer" and types["Seed"] == "integer"
    assert {p["label"]: p["type"].get("type") for p in api["/interpolate"]["parameters"]}["Steps"] == "integer"


def test_truncation_means_what_it_means_on_the_command_line(pipe):
    """0 is no truncation, an empty field the model's own default, as ``t2igan sample --truncation``."""
    fns = DemoFunctions(pipe, LIMITS)
    pixels = [[Image.open(p).tobytes() for p, _ in fns.generate("a red circle", 2, 3, t)[0]] for t in (0, None, 0.5)]
    assert pixels[0] == [im.tobytes() for im in pipe(["a red circle"], n=2, seed=3, truncation=0)]
    assert pixels[1] == [im.tobytes() for im in pipe(["a red circle"], n=2, seed=3)]
    assert pixels[2] == [im.tobytes() for im in pipe(["a red circle"], n=2, seed=3, truncation=0.5)]
    assert pixels[0] != pixels[2]
    assert fns.default_truncation == (pipe.model.config.truncation or 0)


@pytest.mark.parametrize("args, api, expected", [
    (("", 4, 0, None), "/generate", "empty"),
    (("zorblax", 4, 0, None), "/generate", "zorblax"),
    (("a red circle", "", 4, 0, None), "/interpolate", "caption B"),
])
def test_client_bad_input_is_an_app_error_with_the_message(client, args, api, expected):
    with pytest.raises(AppError, match=expected):
        client.predict(*args, api_name=api)


# -- HTTP: the guard and the queue ---------------------------------------------------------------------


def test_page_is_served_and_the_direct_api_is_closed(server):
    status, body = raw_request(server, f"GET / HTTP/1.1\nHost: 127.0.0.1:{port_of(server)}\nConnection: close")
    assert status == 200 and b"t2igan: tiny-dfgan" in body
    # the unqueued endpoint would bypass the one-at-a-time limit
    status, _ = post_json(server, "/gradio_api/run/generate", {"data": ["a red circle", 1, 0, None]})
    assert status >= 400


def test_burst_of_200_every_request_answered_or_told_to_retry(server, client):
    """200 clients at once join the queue (max 2 waiting): each gets its event id (200) or 503 "queue
    is full"; no 500, no reset connection; the server serves afterwards."""
    barrier = threading.Barrier(200)
    results = [None] * 200

    def one(i):
        barrier.wait()
        try:
            results[i] = post_json(server, "/gradio_api/queue/join", join_payload(server))
        except OSError as e:  # a reset or refused connection is a failure of the server
            results[i] = (type(e).__name__, b"")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = [r[0] for r in results]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= 1 and statuses.count(503) >= 1
    assert all(b"Queue is full" in body for status, body in results if status == 503)
    time.sleep(1.0)  # the accepted jobs finish
    assert client.predict("a red circle", 1, 0, None, api_name="/generate")[0]


def test_lone_surrogate_over_http_is_a_400_not_a_500(server):
    """JSON may escape a lone surrogate (``"\\ud800"``); Gradio's own error pages echo their input
    and fail on it (500), so the guard refuses it first."""
    status, out = post_json(server, "/gradio_api/queue/join", join_payload(server, "a red \ud800 circle", 1))
    assert status == 400 and b"lone surrogate" in out
    status, out = post_json(server, "/gradio_api/queue/join", {"data": "\udc80"})  # a 422 echoing it, before
    assert status == 400 and b"lone surrogate" in out


@pytest.mark.parametrize("content_length, expected", [("-1", 400), ("abc", 400), ("104857600", 413)])
def test_bad_content_length_is_refused_without_reading(server, content_length, expected):
    head = (f"POST /gradio_api/queue/join HTTP/1.1\nHost: 127.0.0.1:{port_of(server)}\n"
            f"Content-Type: application/json\nContent-Length: {content_length}")
    status, _ = raw_request(server, head, b"{}")
    assert status == expected


def test_oversized_chunked_body_is_cut_off(server):
    head = (f"POST /gradio_api/queue/join HTTP/1.1\nHost: 127.0.0.1:{port_of(server)}\n"
            "Content-Type: application/json\nTransfer-Encoding: chunked")
    chunk = b"[" * 32768
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"
    status, out = raw_request(server, head, body)
    assert status == 413 and b"limit" in out


@pytest.mark.parametrize("body", [b"[" * 60000, b"{not json", "\"\udc80\"".encode("utf-8", "surrogatepass"), b"\xff\xfe"])
def test_malformed_bodies_are_400_not_500(server, body):
    status, out = post_json(server, "/gradio_api/queue/join", body)
    assert status == 400 and b"not valid JSON" in out


def test_cross_origin_and_foreign_host_requests_are_refused(server):
    port = port_of(server)
    payload = join_payload(server)
    # a web page elsewhere posting a "simple" request (no preflight)
    status, _ = post_json(server, "/gradio_api/queue/join", payload, "\nOrigin: http://evil.example",
                          content_type="text/plain")
    assert status == 403
    status, _ = post_json(server, "/gradio_api/queue/join", payload, "\nOrigin: http://evil.example")
    assert status == 403
    status, _ = post_json(server, "/gradio_api/queue/join", payload, "\nOrigin: null")
    assert status == 403
    status, _ = post_json(server, "/gradio_api/queue/join", payload, content_type="text/plain")
    assert status == 415
    # DNS rebinding: a foreign name resolving to 127.0.0.1
    status, _ = raw_request(server, f"GET /gradio_api/info HTTP/1.1\nHost: evil.example:{port}\nConnection: close")
    assert status == 403
    # the page's own origin is fine
    status, out = post_json(server, "/gradio_api/queue/join", payload, f"\nOrigin: http://127.0.0.1:{port}")
    assert status == 200 and b"event_id" in out
    status, _ = raw_request(server, f"GET /gradio_api/info HTTP/1.1\nHost: localhost:{port}\nConnection: close")
    assert status == 200


@pytest.mark.parametrize("sent", [b"", b"POST /gradio_api/queue/join HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                                  b"POST /gradio_api/queue/join HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"da"])
def test_slow_sockets_are_closed_after_the_request_timeout(server, sent):
    """Silent, half-sent headers, half-sent body: closed after request_timeout_s (1 s here)."""
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as sock:
        sock.sendall(sent)
        start = time.monotonic()
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        assert time.monotonic() - start < 5
        assert data == b""  # closed, nothing answered


def test_one_generation_at_a_time(server, pipe, monkeypatch):
    """Generate and interpolate share one concurrency slot: the model never runs two calls at once."""
    active, most = [0], [0]
    lock = threading.Lock()

    def counted(method):
        def run(*args, **kwargs):
            with lock:
                active[0] += 1
                most[0] = max(most[0], active[0])
            try:
                time.sleep(0.2)
                return method(*args, **kwargs)
            finally:
                with lock:
                    active[0] -= 1
        return run

    for name in ("generate", "interpolate"):  # the pipeline's two ways into the model
        monkeypatch.setattr(pipe, name, counted(getattr(pipe, name)))
    clients = [Client(server.url, verbose=False) for _ in range(2)]
    jobs = [clients[0].submit("a red circle", 2, 0, None, api_name="/generate"),
            clients[1].submit("a red circle", "a blue square", 3, 0, None, api_name="/interpolate")]
    assert [len(job.result(timeout=60)[0]) for job in jobs] == [2, 3]
    assert most[0] == 1


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_serve_command_binds_localhost_and_stops_on_ctrl_c(tiny_trained_run, tmp_path, stop):
    run_dir = tiny_trained_run
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "GRADIO_ANALYTICS_ENABLED": "False",
           "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "t2igan", "serve", str(run_dir), "--port", "0", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = proc.stdout.readline()
        while line and "running on" not in line:
            line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        with urllib.request.urlopen(url + "gradio_api/info", timeout=30) as resp:
            assert "/generate" in json.loads(resp.read())["named_endpoints"]
        assert list(tmp_path.glob("t2igan-serve-outputs-*"))  # the folder of served images
        proc.send_signal(stop)
        assert proc.wait(timeout=30) in (0, 130)
    finally:
        proc.kill()
    assert not list(tmp_path.glob("t2igan-serve-*"))  # deleted on the way out
    if stop == signal.SIGTERM:
        return
    out = subprocess.run([sys.executable, "-m", "t2igan", "serve", str(run_dir / "nothing")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and out.stderr.count("\n") == 1


# -- the STREAM tab (MirrorGAN, or any model with a STREAM captioner) ------------------------------------


def tiny_stream(pipe):
    from t2igan.models.stream import StreamCaptioner, StreamConfig

    return StreamCaptioner(StreamConfig(vocab_size=len(pipe.vocab), backbone="small_cnn", image_size=32,
                                        cnn_channels=4, embed_dim=8, hidden_dim=8, max_len=4))


def test_caption_an_uploaded_image_as_the_caption_command_does(pipe, tmp_path):
    from t2igan.commands.caption import image_tensor
    from t2igan.models.stream import caption_images

    with pytest.raises(T2IError, match="no STREAM captioner"):
        DemoFunctions(pipe, LIMITS).caption_image(str(tmp_path / "x.png"))
    pipe.model.stream = tiny_stream(pipe)
    try:
        fns = DemoFunctions(pipe, LIMITS)
        photo = tmp_path / "photo.png"
        Image.new("RGB", (48, 40), (30, 120, 200)).save(photo)
        expected = caption_images(pipe.model.stream, pipe.vocab, image_tensor(photo, 32)[None], beam=2)[0]
        assert fns.caption_image(str(photo), 2) == expected
        (tmp_path / "text.png").write_text("not an image")
        for args, message in (((None,), "no image"), ((str(photo), 0), "beam width"), ((str(photo), 9), "beam width"),
                              ((str(tmp_path / "text.png"),), "not a readable image")):
            with pytest.raises(T2IError, match=message):
                fns.caption_image(*args)
    finally:
        del pipe.model.stream
