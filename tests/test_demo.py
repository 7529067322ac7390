"""The web demo over HTTP: a real server on a free port, a tiny DF-GAN trained for 2 steps."""

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed

import pytest
from PIL import Image

from t2igan import Text2ImagePipeline
from t2igan.demo import make_server

@pytest.fixture(scope="module")
def pipe(tiny_trained_run):
    return Text2ImagePipeline.from_pretrained(tiny_trained_run, device="cpu")


@pytest.fixture(scope="module")
def server(pipe):
    srv = make_server(pipe, "127.0.0.1", 0, max_images=16, max_waiting=2)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def url(server, path):
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def post(server, path, payload):
    """(status, decoded JSON) of a POST; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url(server, path), data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def decode_png(data_url):
    import base64
    import io

    assert data_url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


def test_page_and_info(server):
    with urllib.request.urlopen(url(server, "/"), timeout=30) as resp:
        html = resp.read().decode()
    assert resp.headers["Content-Type"].startswith("text/html")
    assert 'id="caption"' in html and 'id="generate"' in html and "/api/generate" in html
    with urllib.request.urlopen(url(server, "/api/info"), timeout=30) as resp:
        info = json.loads(resp.read())
    assert info["model"] == "dfgan" and info["max_images"] == 16


def test_generate_returns_seeded_images(server):
    status, out = post(server, "/api/generate", {"caption": "a red circle", "n": 3, "seed": 5})
    assert status == 200, out
    images = [decode_png(u) for u in out["images"]]
    assert len(images) == 3 and images[0].size == (32, 32)
    assert out["captions"] == ["a red circle"] * 3 and out["notices"] == []
    assert out["extras"] == []  # DF-GAN has no attention/masks
    # same seed -> same images; a string seed from the form is accepted
    status, again = post(server, "/api/generate", {"caption": "a red circle", "n": "3", "seed": "5"})
    assert status == 200 and again["images"] == out["images"]
    status, other = post(server, "/api/generate", {"caption": "a red circle", "n": 3, "seed": 6})
    assert other["images"] != out["images"]


def test_notices_for_unknown_and_shortened_words(server, pipe):
    long_caption = " ".join(["red"] * (pipe.max_words + 5))
    status, out = post(server, "/api/generate", {"caption": long_caption + " zorblax", "n": 1})
    assert status == 200, out
    text = " ".join(out["notices"])
    assert "zorblax" in text and "shortened" in text and str(pipe.max_words) in text


@pytest.mark.parametrize("payload, expected", [
    ({"caption": "", "n": 1}, "empty"),
    ({"caption": "   ", "n": 1}, "empty"),
    ({"caption": "zorblax quuxish", "n": 1}, "zorblax, quuxish"),
    ({"caption": "a red circle", "n": 17}, "between 1 and 16"),
    ({"caption": "a red circle", "n": 0}, "between 1 and 16"),
    ({"caption": "a red circle", "n": "four"}, "whole number"),
    ({"caption": "a red circle " * 50, "n": 1}, "limit is 500"),
    ({"caption": "a red circle", "truncation": "-1"}, "truncation"),
    ({"caption": 7}, "text"),
])
def test_bad_input_is_a_400_with_a_message(server, payload, expected):
    status, out = post(server, "/api/generate", payload)
    assert status == 400
    assert expected in out["error"]


def test_malformed_body_and_unknown_path(server):
    req = urllib.request.Request(url(server, "/api/generate"), data=b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 400 and "JSON" in json.loads(err.value.read())["error"]
    status, out = post(server, "/api/nothing", {})
    assert status == 404


def test_interpolate(server, pipe):
    status, out = post(server, "/api/interpolate",
                       {"caption_a": "a red circle", "caption_b": "a blue square", "steps": 5, "seed": 1})
    assert status == 200, out
    images = [decode_png(u) for u in out["images"]]
    expected = pipe.interpolate("a red circle", "a blue square", 5, seed=1)
    assert len(images) == 5
    assert all(a.tobytes() == b.tobytes() for a, b in zip(images, expected))
    status, out = post(server, "/api/interpolate", {"caption_a": "a red circle", "caption_b": "", "steps": 5})
    assert status == 400 and "caption B" in out["error"]
    status, out = post(server, "/api/interpolate",
                       {"caption_a": "a red circle", "caption_b": "a blue square", "steps": 1})
    assert status == 400 and "steps" in out["error"]


def test_burst_over_the_queue_bound_gets_503_never_500(server):
    """With the model busy, 1 + max_waiting (2) requests get a place, the rest 503 at once; the
    queued ones then succeed."""
    app = server.RequestHandlerClass.app
    payload = {"caption": "a green triangle", "n": 2, "seed": 0}
    app.generation_lock.acquire()  # the model is "busy" until released
    try:
        with ThreadPoolExecutor(max_workers=7) as pool:
            futures = [pool.submit(post, server, "/api/generate", payload) for _ in range(7)]
            busy = []
            for fut in as_completed(futures, timeout=30):  # only 503s can finish while the lock is held
                busy.append(fut.result())
                if len(busy) == 4:
                    break
            app.generation_lock.release()
            results = [f.result(timeout=30) for f in futures]
    finally:
        if app.generation_lock.locked():
            app.generation_lock.release()
    assert all(status == 503 and "busy" in out["error"] for status, out in busy)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 3 + [503] * 4
    # and the server still serves afterwards
    assert post(server, "/api/generate", payload)[0] == 200


def test_extras_sections_render_what_is_present(server, pipe):
    """Attention, masks and a regenerated caption become display sections; absent keys add nothing."""
    import torch

    from t2igan.pipeline import PipelineOutput

    app = server.RequestHandlerClass.app
    out = pipe(["a red circle", "a blue square"], n=1, seed=0, return_output=True)
    n_words = [len(pipe.vocab.encode(c)) for c in out.captions]
    out.extras = {
        "attention": [torch.rand(2, pipe.max_words, 8, 8)],
        "masks": [torch.rand(2, 1, 4, 4), torch.rand(2, 1, 8, 8)],
        "caption": ["a red circle", "a blue square"],
        "stage_images": [torch.full((2, 3, 16, 16), 1.0)],  # white, in [-1, 1]
    }
    sections = {s["title"]: s["rows"] for s in app.extras_sections(out)}
    assert set(sections) == {"Per-word attention (last stage)", "Masks", "Regenerated caption", "Stage images"}
    attention_row = decode_png(sections["Per-word attention (last stage)"][0]["images"][0])
    assert attention_row.width >= 32 * (1 + n_words[0])  # the image plus one map per word
    assert sections["Masks"][1]["labels"] == ["image", "4x4", "8x8"]
    assert decode_png(sections["Masks"][1]["images"][2]).size == (32, 32)
    stage = decode_png(sections["Stage images"][0]["images"][1])
    assert stage.size == (32, 32) and stage.getpixel((5, 5)) == (255, 255, 255)
    assert [r["text"] for r in sections["Regenerated caption"]] == ["a red circle", "a blue square"]
    assert app.extras_sections(PipelineOutput(out.images, out.captions, {})) == []
