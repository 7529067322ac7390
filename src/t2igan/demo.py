"""A small local web demo over :class:`t2igan.pipeline.Text2ImagePipeline` (``t2igan serve RUN``).

Built on the standard library only: a :class:`http.server.ThreadingHTTPServer` serving one HTML page
(:data:`INDEX_HTML`) and a JSON API:

* ``GET /api/info`` -> the model name and the request limits;
* ``POST /api/generate`` ``{"caption", "n", "seed", "truncation"}`` -> ``{"images": [PNG data URLs],
  "notices": [...], "extras": [sections]}`` where the sections show whatever model-specific outputs
  the pipeline returned (per-word attention, masks, a regenerated caption);
* ``POST /api/interpolate`` ``{"caption_a", "caption_b", "steps", "seed", "truncation"}`` -> ``{"images"}``.

Bad input answers HTTP 400 with ``{"error": message}``. Generation runs one request at a time (a
lock around the pipeline); when more than ``max_waiting`` requests already wait, the server answers
503 "busy, try again" at once, so a burst of requests cannot exhaust memory.
"""

from __future__ import annotations

import base64
import io
import json
import math
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
from PIL import Image

from .errors import T2IError
from .visualize import attention_figure, to_pil

MAX_BODY_BYTES = 64 * 1024


class BusyError(Exception):
    """Too many requests already wait for the model."""


def png_data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def grey_map_images(maps: torch.Tensor, size: int) -> list[Image.Image]:
    """``(B, C, h, w)`` maps -> B grey-scale images (channel mean, values clamped to [0, 1]), enlarged
    to ``size x size`` with nearest neighbour so each map's true resolution stays visible."""
    grey = maps.detach().float().cpu().mean(dim=1).clamp(0, 1)  # (B, h, w)
    grey = (grey * 255).round().to(torch.uint8).numpy()
    return [Image.fromarray(m, "L").resize((size, size), Image.NEAREST).convert("RGB") for m in grey]


def tensor_images(tensor: torch.Tensor, size: int) -> list[Image.Image]:
    """``(B, 3, h, w)`` images in [-1, 1] (e.g. AttnGAN's per-stage images) or ``(B, C, h, w)`` maps
    in [0, 1] (masks) -> B RGB images of ``size x size``."""
    if tensor.shape[1] == 3:
        return [im.resize((size, size), Image.NEAREST) for im in to_pil(tensor.detach().float().cpu())]
    return grey_map_images(tensor, size)


class DemoApp:
    """Validates requests, runs the pipeline one request at a time, turns outputs into JSON.

    ``max_waiting`` requests may wait while one generates; more answer :class:`BusyError`.
    ``generation_lock`` is the lock held while the pipeline runs.
    """

    def __init__(self, pipe, max_images: int = 16, max_chars: int = 500, max_steps: int = 16,
                 max_waiting: int = 4):
        self.pipe = pipe
        self.max_images = max_images
        self.max_chars = max_chars
        self.max_steps = max_steps
        self.max_waiting = max_waiting
        self.generation_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_waiting + 1)  # one generating + the waiting ones

    # ---- input checks -------------------------------------------------------------------------
    def _caption(self, payload: dict, key: str, label: str) -> str:
        caption = payload.get(key, "")
        if not isinstance(caption, str):
            raise T2IError(f"{label} must be text")
        caption = caption.strip()
        if not caption:
            raise T2IError(f"{label} is empty: type a description of the image")
        if len(caption) > self.max_chars:
            raise T2IError(f"{label} is {len(caption)} characters long; the limit is {self.max_chars}")
        self.pipe.check_captions([caption])  # T2IError for no words / only unknown words (named)
        return caption

    @staticmethod
    def _int(payload: dict, key: str, default: int, lo: int, hi: int, label: str) -> int:
        value = payload.get(key, default)
        if value is None or value == "":
            return default
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise T2IError(f"{label} must be a whole number, got {value!r}") from None
        if not math.isfinite(as_float) or as_float != int(as_float):
            raise T2IError(f"{label} must be a whole number, got {value!r}")
        value = int(as_float)
        if not lo <= value <= hi:
            raise T2IError(f"{label} must be between {lo} and {hi}, got {value}")
        return value

    @staticmethod
    def _truncation(payload: dict) -> float | None:
        value = payload.get("truncation")
        if value is None or value == "":
            return None  # the model's own default
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise T2IError(f"truncation must be a number, got {value!r}") from None
        if not (math.isfinite(value) and 0 < value <= 4):
            raise T2IError(f"truncation must be in (0, 4], got {value}")
        return value

    def _notices(self, caption: str, label: str) -> list[str]:
        notices = []
        unknown = self.pipe.vocab.unknown_words(caption)
        if unknown:
            notices.append(f"{label}: unknown words ignored: {', '.join(unknown)}")
        n_words = len(self.pipe.vocab.encode(caption))
        if n_words > self.pipe.max_words:
            notices.append(f"{label} was shortened: {n_words} words, the model reads the first "
                           f"{self.pipe.max_words}")
        return notices

    # ---- the queue ---------------------------------------------------------------------------
    def _run_exclusive(self, fn):
        if not self._slots.acquire(blocking=False):
            raise BusyError(f"busy: {self.max_waiting} requests already waiting, try again in a moment")
        try:
            with self.generation_lock:
                return fn()
        finally:
            self._slots.release()

    # ---- endpoints ---------------------------------------------------------------------------
    def info(self) -> dict:
        return {"model": self.pipe.model_name, "max_words": self.pipe.max_words,
                "max_images": self.max_images, "max_chars": self.max_chars, "max_steps": self.max_steps}

    def generate(self, payload: dict) -> dict:
        caption = self._caption(payload, "caption", "the caption")
        n = self._int(payload, "n", 4, 1, self.max_images, "number of images")
        seed = self._int(payload, "seed", 0, 0, 2**31 - 1, "seed")
        truncation = self._truncation(payload)
        out = self._run_exclusive(lambda: self.pipe([caption], n=n, seed=seed, truncation=truncation,
                                                    return_output=True))
        return {"images": [png_data_url(im) for im in out.images], "captions": out.captions,
                "notices": self._notices(caption, "the caption"), "extras": self.extras_sections(out)}

    def interpolate(self, payload: dict) -> dict:
        caption_a = self._caption(payload, "caption_a", "caption A")
        caption_b = self._caption(payload, "caption_b", "caption B")
        steps = self._int(payload, "steps", 8, 2, self.max_steps, "steps")
        seed = self._int(payload, "seed", 0, 0, 2**31 - 1, "seed")
        truncation = self._truncation(payload)
        images = self._run_exclusive(lambda: self.pipe.interpolate(caption_a, caption_b, steps, seed,
                                                                   truncation=truncation))
        notices = self._notices(caption_a, "caption A") + self._notices(caption_b, "caption B")
        return {"images": [png_data_url(im) for im in images], "notices": notices}

    def extras_sections(self, out) -> list[dict]:
        """The model-specific outputs present in ``out.extras`` as display sections: ``{"title",
        "rows": [{"images": [data URLs], "labels": [str], "text": str}]}``, one row per image."""
        sections = []
        size = out.images[0].width
        for key, value in out.extras.items():
            if key == "caption":
                rows = [{"images": [], "labels": [], "text": str(c)} for c in value]
                sections.append({"title": "Regenerated caption", "rows": rows})
            elif key == "attention" and value:
                maps = value[-1]  # the last (finest) attention stage, (N, T, h, w)
                tokens, lengths = self.pipe.encode(out.captions)
                rows = []
                for i, image in enumerate(out.images):
                    words = [self.pipe.vocab.words[t] for t in tokens[i, : int(lengths[i])].tolist()]
                    figure = attention_figure(image, words, maps[i, : len(words)])
                    rows.append({"images": [png_data_url(figure)], "labels": [], "text": ""})
                sections.append({"title": "Per-word attention (last stage)", "rows": rows})
            elif isinstance(value, (list, tuple)) and value and all(
                    torch.is_tensor(v) and v.dim() == 4 for v in value):
                # masks, AttnGAN's stage images, any other per-block (N, C, h, w) tensors
                per_block = [tensor_images(v, size) for v in value]
                labels = [f"{v.shape[2]}x{v.shape[3]}" for v in value]
                rows = [{"images": [png_data_url(out.images[i])] + [png_data_url(b[i]) for b in per_block],
                         "labels": ["image", *labels], "text": ""} for i in range(len(out.images))]
                sections.append({"title": key.replace("_", " ").capitalize(), "rows": rows})
        return sections


class DemoHandler(BaseHTTPRequestHandler):
    server_version = "t2igan-demo"
    app: DemoApp  # set on the subclass made by make_server
    quiet = True

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        if not self.quiet:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: dict) -> None:
        self._send(status, json.dumps(obj).encode("utf-8"), "application/json; charset=utf-8")

    def do_GET(self):  # noqa: N802
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(200, INDEX_HTML.encode("utf-8"), "text/html; charset=utf-8")
        elif path == "/api/info":
            self._json(200, self.app.info())
        else:
            self._json(404, {"error": f"no page {path}"})

    def do_POST(self):  # noqa: N802
        routes = {"/api/generate": self.app.generate, "/api/interpolate": self.app.interpolate}
        path = self.path.split("?", 1)[0]
        if path not in routes:
            self._json(404, {"error": f"no endpoint {path}"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._json(413, {"error": f"request too large ({length} bytes)"})
                return
            try:
                payload = json.loads(self.rfile.read(length) or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise T2IError("the request body is not valid JSON") from None
            if not isinstance(payload, dict):
                raise T2IError("the request body must be a JSON object")
            self._json(200, routes[path](payload))
        except T2IError as e:
            self._json(400, {"error": str(e)})
        except BusyError as e:
            self._json(503, {"error": str(e)})
        except Exception as e:  # a bug, not bad input: keep the server up and say so
            traceback.print_exc()
            self._json(500, {"error": f"internal error: {type(e).__name__}: {e}"})


def make_server(pipe, host: str = "127.0.0.1", port: int = 7860, quiet: bool = True,
                **limits) -> ThreadingHTTPServer:
    """A ready-to-run server (call ``serve_forever()``); ``port=0`` picks a free port
    (``server.server_address[1]``). ``limits`` go to :class:`DemoApp`."""
    handler = type("BoundDemoHandler", (DemoHandler,), {"app": DemoApp(pipe, **limits), "quiet": quiet})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


INDEX_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>t2igan demo</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 980px; color: #222; padding: 0 1rem; }
  h1 { font-size: 1.4rem; margin-bottom: 0.2rem; }
  .sub { color: #666; margin-top: 0; }
  fieldset { border: 1px solid #ccc; border-radius: 6px; margin: 1rem 0; padding: 0.8rem 1rem; }
  label { display: inline-block; margin: 0.3rem 1rem 0.3rem 0; }
  textarea, input[type=text] { width: 100%; box-sizing: border-box; font: inherit; padding: 0.3rem; }
  input[type=number] { width: 6rem; }
  button { font: inherit; padding: 0.35rem 1.2rem; cursor: pointer; }
  .error { background: #fde8e8; border: 1px solid #e0a0a0; color: #900; padding: 0.5rem 0.8rem; border-radius: 4px; }
  .notice { background: #fff7dd; border: 1px solid #e8d38a; padding: 0.4rem 0.8rem; border-radius: 4px; margin: 0.3rem 0; }
  .grid { display: flex; flex-wrap: wrap; gap: 8px; margin: 0.6rem 0; }
  .grid img { width: 128px; height: 128px; image-rendering: pixelated; border: 1px solid #ddd; }
  .row { display: flex; flex-wrap: wrap; gap: 6px; align-items: flex-end; margin: 0.4rem 0; }
  .row figure { margin: 0; text-align: center; font-size: 0.8rem; color: #555; }
  .row img { height: 96px; image-rendering: pixelated; border: 1px solid #ddd; }
  .row img.wide { height: auto; max-width: 100%; image-rendering: auto; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<h1>t2igan demo</h1>
<p class="sub" id="model-info">loading model info...</p>

<fieldset>
  <legend>Generate</legend>
  <label for="caption">Caption</label>
  <textarea id="caption" rows="2" placeholder="a red circle on the left"></textarea>
  <label>Images <input type="number" id="n" value="4" min="1"></label>
  <label>Seed <input type="number" id="seed" value="0" min="0"></label>
  <label>Truncation <input type="number" id="truncation" step="0.05" min="0" placeholder="default"></label>
  <button id="generate">Generate</button>
  <span id="gen-status"></span>
</fieldset>
<div id="error" class="error" role="alert" hidden></div>
<div id="notices"></div>
<div id="results"></div>

<fieldset>
  <legend>Interpolate between two captions</legend>
  <label for="caption-a">Caption A</label>
  <input type="text" id="caption-a" placeholder="a red circle">
  <label for="caption-b">Caption B</label>
  <input type="text" id="caption-b" placeholder="a blue square">
  <label>Steps <input type="number" id="steps" value="8" min="2"></label>
  <label>Seed <input type="number" id="interp-seed" value="0" min="0"></label>
  <button id="interpolate">Interpolate</button>
  <span id="interp-status"></span>
</fieldset>
<div id="interp-error" class="error" role="alert" hidden></div>
<div id="interp-notices"></div>
<div id="interp-results"></div>

<script>
"use strict";
const $ = (id) => document.getElementById(id);

function el(tag, attrs, children) {
  const e = document.createElement(tag);
  Object.entries(attrs || {}).forEach(([k, v]) => { e[k] = v; });
  (children || []).forEach((c) => e.append(c));
  return e;
}

async function postJSON(url, body) {
  let resp;
  try {
    resp = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                             body: JSON.stringify(body)});
  } catch (err) {
    throw new Error("cannot reach the server: " + err.message);
  }
  let data = {};
  try { data = await resp.json(); } catch (err) { data = {}; }
  if (!resp.ok) throw new Error(data.error || ("HTTP " + resp.status));
  return data;
}

function showNotices(box, notices) {
  box.replaceChildren(...(notices || []).map((t) => el("div", {className: "notice", textContent: t})));
}

function showError(box, message) {
  box.textContent = message || "";
  box.hidden = !message;
}

function renderSections(sections) {
  return sections.map((s) => {
    const rows = s.rows.map((r) => {
      const figs = r.images.map((src, i) => el("figure", {}, [
        el("img", {src: src, className: r.labels.length ? "" : "wide", alt: s.title}),
        ...(r.labels[i] ? [el("figcaption", {textContent: r.labels[i]})] : [])]));
      if (r.text) figs.push(el("div", {textContent: r.text}));
      return el("div", {className: "row"}, figs);
    });
    return el("section", {}, [el("h3", {textContent: s.title}), ...rows]);
  });
}

async function run(button, status, errorBox, noticeBox, resultBox, url, body, render) {
  button.disabled = true;
  status.textContent = "working...";
  showError(errorBox, "");
  try {
    const data = await postJSON(url, body);
    showNotices(noticeBox, data.notices);
    resultBox.replaceChildren(...render(data));
  } catch (err) {
    showNotices(noticeBox, []);
    resultBox.replaceChildren();
    showError(errorBox, err.message);
  } finally {
    button.disabled = false;
    status.textContent = "";
  }
}

$("generate").addEventListener("click", () => run(
  $("generate"), $("gen-status"), $("error"), $("notices"), $("results"), "/api/generate",
  {caption: $("caption").value, n: $("n").value, seed: $("seed").value, truncation: $("truncation").value},
  (data) => [el("div", {className: "grid"},
                data.images.map((src, i) => el("img", {src: src, alt: data.captions[i], title: data.captions[i]}))),
             ...renderSections(data.extras || [])]));

$("interpolate").addEventListener("click", () => run(
  $("interpolate"), $("interp-status"), $("interp-error"), $("interp-notices"), $("interp-results"),
  "/api/interpolate",
  {caption_a: $("caption-a").value, caption_b: $("caption-b").value, steps: $("steps").value,
   seed: $("interp-seed").value, truncation: $("truncation").value},
  (data) => [el("div", {className: "grid"}, data.images.map((src) => el("img", {src: src, alt: "step"})))]));

fetch("/api/info").then((r) => r.json()).then((info) => {
  $("model-info").textContent = "model: " + info.model + " | up to " + info.max_images +
    " images, " + info.max_chars + " characters, the model reads " + info.max_words + " words";
  $("n").max = info.max_images;
  $("steps").max = info.max_steps;
}).catch(() => { $("model-info").textContent = "model info unavailable"; });
</script>
</body>
</html>
"""
