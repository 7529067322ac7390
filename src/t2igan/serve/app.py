"""The Gradio page of ``t2igan serve``: generate, interpolate, caption an image (STREAM), and the
model's own figures and card.

:class:`DemoFunctions` holds the functions behind the page (and behind its API for ``gradio_client``:
``/generate``, ``/interpolate`` and, for models with a STREAM captioner, ``/caption``): they check
their input (bad input raises :class:`t2igan.errors.T2IError`, shown by Gradio as an error message)
and generate only through :class:`t2igan.pipeline.Text2ImagePipeline`. :func:`build_blocks` lays them
out; the per-word attention (AttnGAN, MirrorGAN, DR-GAN), mask (SSA-GAN, DR-GAN) and STREAM panels
appear only for models that produce them.

Truncation means what it means on the command line: a number in (0, 4], 0 for none, and an empty
field for the model's own default (the value the field starts with).
"""

from __future__ import annotations

import html
import math
import os
import shutil
import tempfile
import uuid
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home, before gradio is imported

from PIL import Image  # noqa: E402

from ..errors import T2IError, one_line  # noqa: E402
from ..visualize import captioned_grid, stack_rows  # noqa: E402

MAX_SEED = 2**31 - 1
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")  # what the STREAM tab decodes; nothing else is opened


@dataclass
class Limits:
    max_images: int = 16  # images per request
    max_chars: int = 500  # characters per caption
    max_steps: int = 16  # images in an interpolation
    max_waiting: int = 8  # requests that may wait in the queue; more are told to retry
    max_beam: int = 8  # beam width of a STREAM caption
    max_upload_bytes: int = 8 * 2**20  # an uploaded image file
    max_upload_pixels: int = 25_000_000  # an uploaded image, decoded (a 5000 x 5000 photo)
    upload_side: int = 1024  # an upload larger than this on a side is scaled down when it is stored


def shown(value) -> str:
    """``value`` for a message: a number too long to read is named by its length."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**24:
        return digits(value)
    return one_line(repr(value), 60)


def digits(value: int) -> str:
    try:
        return f"a {len(str(abs(value)))}-digit number"
    except ValueError:  # past Python's limit on converting ints to text
        return "a number of thousands of digits"


def whole_number(value, lo: int, hi: int, label: str) -> int:
    """``value`` (a number, or text of one) as an int in ``[lo, hi]``; anything else is a T2IError
    that says the range (a huge number too: ``10**400`` is refused, not overflowed)."""
    got = "no number" if value is None or value == "" else shown(value)  # the page sends null for 10**400
    problem = T2IError(f"{label} must be a whole number between {lo} and {hi}, got {got}")
    if isinstance(value, bool):
        raise problem
    if isinstance(value, int):
        number = value
    else:
        try:
            as_float = float(value)
        except (TypeError, ValueError, OverflowError):
            raise problem from None
        if not math.isfinite(as_float) or as_float != int(as_float):
            raise problem
        number = int(as_float)
    if not lo <= number <= hi:
        raise problem
    return number


def truncation_value(value) -> float | None:
    """The CLI's meaning: None or empty (an emptied field) is the model's own default (None), 0 is
    no truncation, else a number in (0, 4]."""
    if value is None or value == "":
        return None
    problem = T2IError(f"truncation must be a number from 0 (none) to 4, got {shown(value)}")
    if isinstance(value, bool):
        raise problem
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        raise problem from None
    if not (math.isfinite(value) and 0 <= value <= 4):
        raise problem
    return value


def decode_image(source, max_pixels: int, label: str = "the image") -> Image.Image:
    """An image a client sent (a path or bytes), decoded to RGB by Pillow, only as one of
    :data:`UPLOAD_FORMATS` and only up to ``max_pixels`` (checked from the header, before the pixels
    are decoded); anything else is a T2IError. An animated image gives its first frame."""
    import io

    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream, formats=UPLOAD_FORMATS) as image:
                if image.width * image.height > max_pixels:
                    raise T2IError(f"{label} is {image.width} x {image.height} pixels; the limit is "
                                   f"{max_pixels:,} pixels")
                image.load()
                return image.convert("RGB")
    except T2IError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise T2IError(f"{label} is too large to decode safely") from None
    except (OSError, ValueError, SyntaxError, EOFError):  # Image.UnidentifiedImageError is an OSError
        raise T2IError(f"{label} is not a readable image ({', '.join(UPLOAD_FORMATS)})") from None


class ImageFiles:
    """The PNG files of the latest request's images, for Gradio to copy into its cache (atomically,
    reusing identical files). Handing Gradio PIL images instead makes it rewrite a file named by the
    image's hash in place, which races with a download of the same image by another client."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="t2igan-serve-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)
        self.latest: list[Path] = []

    def new_request(self) -> None:
        """The previous request's files go (one request runs at a time, and Gradio has copied them
        when its function returned)."""
        for path in self.latest:
            path.unlink(missing_ok=True)
            if path.parent != self.folder:
                shutil.rmtree(path.parent, ignore_errors=True)
        self.latest = []

    def save(self, image: Image.Image, name: str | None = None) -> str:
        """Write ``image`` as a PNG (``name``: the file name a download gets) and return its path."""
        if name is None:
            path = self.folder / f"{uuid.uuid4().hex}.png"
        else:
            path = self.folder / uuid.uuid4().hex / name
            path.parent.mkdir()
        image.save(path)
        self.latest.append(path)
        return str(path)


class DemoFunctions:
    """The page's functions over one pipeline. ``features`` names the model's extra outputs."""

    def __init__(self, pipe, limits: Limits | None = None):
        self.pipe = pipe
        self.limits = limits or Limits()
        self.files = ImageFiles()
        self.examples = pipe.example_captions(6)
        probe = pipe([self.examples[0] if self.examples else self._known_word()], n=1, return_output=True)
        self.features = {name for name, present in (
            ("attention", bool(probe.extras.get("attention"))), ("masks", bool(probe.extras.get("masks"))),
            ("stream", getattr(pipe.model, "stream", None) is not None)) if present}

    @property
    def default_truncation(self) -> float:
        """The model's own truncation (0: none), the number the page's fields start with."""
        return float(getattr(self.pipe.model.config, "truncation", 0.0) or 0.0)

    def _known_word(self) -> str:
        specials = {self.pipe.vocab.unk_token, "<pad>", "<end>", "<start>", "<eos>", "<bos>"}
        return next(w for w in self.pipe.vocab.words if w not in specials)

    def caption(self, value, label: str) -> str:
        if not isinstance(value, str):
            raise T2IError(f"{label} must be text")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise T2IError(f"{label} holds characters that are not valid text (a lone surrogate)") from None
        value = value.strip()
        if not value:
            raise T2IError(f"{label} is empty: type a description of the image")
        if len(value) > self.limits.max_chars:
            raise T2IError(f"{label} is {len(value)} characters long; the limit is {self.limits.max_chars}")
        self.pipe.check_captions([value])  # no words / only unknown words: named in the message
        return value

    def notices(self, caption: str, label: str) -> str:
        return "\n".join(f"* {label}: {n}" for n in self.pipe.caption_notices(caption))

    def generate(self, caption, n=4, seed=0, truncation=None):
        """-> (gallery of (image, label), the captioned grid as one PNG (what ``t2igan sample`` writes),
        notices (Markdown), attention figure, masks figure (PNG paths, a row per image), STREAM
        captions (text)); None / empty for models without them."""
        caption = self.caption(caption, "the caption")
        n = whole_number(n, 1, self.limits.max_images, "number of images")
        seed = whole_number(seed, 0, MAX_SEED, "seed")
        out = self.pipe([caption], n=n, seed=seed, truncation=truncation_value(truncation), return_output=True)
        figures = [stack_rows(rows) if rows else None for rows in
                   (self.pipe.attention_figures(out), self.pipe.mask_figures(out))]  # one row per image
        stream = self.pipe.redescribe(out.images) if "stream" in self.features else None
        stream_text = "\n".join(f"image #{i + 1}: {c}" for i, c in enumerate(stream or []))
        self.files.new_request()
        gallery = [(self.files.save(image), f"seed {seed} #{i + 1}") for i, image in enumerate(out.images)]
        grid = self.files.save(captioned_grid(out.images, out.captions, ncol=min(8, n)), f"t2igan-seed{seed}.png")
        attention, masks = (self.files.save(f) if f is not None else None for f in figures)
        return gallery, grid, self.notices(caption, "the caption"), attention, masks, stream_text

    def interpolate(self, caption_a, caption_b, steps=8, seed=0, truncation=None):
        """-> (gallery of the steps from caption A to caption B, the row as one PNG, notices (Markdown))."""
        caption_a = self.caption(caption_a, "caption A")
        caption_b = self.caption(caption_b, "caption B")
        steps = whole_number(steps, 2, self.limits.max_steps, "steps")
        seed = whole_number(seed, 0, MAX_SEED, "seed")
        images = self.pipe.interpolate(caption_a, caption_b, steps, seed, truncation=truncation_value(truncation))
        labels = [f"t={i / (steps - 1):.2f}" for i in range(steps)]
        self.files.new_request()
        gallery = [(self.files.save(image), label) for image, label in zip(images, labels)]
        row = self.files.save(captioned_grid(images, labels, ncol=steps, caption_lines=1),
                              f"t2igan-interpolation-seed{seed}.png")
        notices = "\n".join(filter(None, [self.notices(caption_a, "caption A"), self.notices(caption_b, "caption B")]))
        return gallery, row, notices

    def caption_image(self, image, beam=1) -> str:
        """The STREAM caption of an uploaded image (``image``: the path of the server's copy of the
        upload), read as ``t2igan caption RUN image.png --beam K`` reads a file."""
        if "stream" not in self.features:
            raise T2IError(f"the {self.pipe.model_name} model has no STREAM captioner (MirrorGAN has)")
        if image is None or image == "":
            raise T2IError("no image: upload one first (" + ", ".join(UPLOAD_FORMATS) + ")")
        if not isinstance(image, str):
            raise T2IError("the image must be an uploaded file")
        beam = whole_number(beam, 1, self.limits.max_beam, "beam width")
        decode_image(image, self.limits.max_upload_pixels)  # readable and bounded before it is read again
        import torch

        from ..commands.caption import image_tensor
        from ..models.stream import caption_images

        stream = self.pipe.model.stream
        tensor = image_tensor(image, stream.encoder.input_size)
        with torch.no_grad():
            return caption_images(stream, self.pipe.vocab, tensor[None], beam=beam)[0]


def as_gradio_errors(fn):
    """``fn`` with :class:`T2IError` turned into ``gr.Error`` (a message on the page, no traceback)."""
    import functools

    import gradio as gr

    @functools.wraps(fn)
    def wrapped(*args):
        try:
            return fn(*args)
        except T2IError as e:
            raise gr.Error(str(e), print_exception=False) from None

    return wrapped


def theme():
    """Gradio's default look with system fonts: the page loads nothing from the internet."""
    import gradio as gr

    return gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def tile_size(image_size: int) -> int:
    """The side a gallery shows an image at: a whole multiple of its pixels, about 128 px."""
    return image_size * max(1, round(128 / image_size)) if image_size < 128 else min(image_size, 256)


def page_css(image_size: int) -> str:
    """Small images magnified with sharp pixels (nearest neighbour), galleries as compact wrapping
    tiles of :func:`tile_size` that grow with their content (no fixed-height box)."""
    tile = tile_size(image_size)
    galleries = ", ".join(f"#{i}" for i in ("images", "interp-images"))
    return f"""
.t2igan-pixels img, #attention img, #masks img, #stream-image img {{ image-rendering: pixelated; }}
{', '.join(f'#{i} .grid-wrap' for i in ('images', 'interp-images'))} {{
  height: auto !important; max-height: none !important; min-height: 0 !important; overflow: visible !important; }}
{', '.join(f'#{i} .grid-container' for i in ('images', 'interp-images'))} {{
  grid-template-columns: repeat(auto-fill, {tile}px) !important; grid-auto-rows: auto !important; gap: 6px !important; }}
{', '.join(f'#{i} .thumbnail-item' for i in ('images', 'interp-images'))} {{ width: {tile}px; height: {tile}px; }}
{', '.join(f'#{i} .caption-label' for i in ('images', 'interp-images'))} {{ font-size: 11px; padding: 1px 4px; }}
{galleries} {{ min-height: 0 !important; }}
#seed-row {{ align-items: end; }}
#model-card table {{ border-collapse: collapse; font-size: 14px; }}
#model-card th, #model-card td {{ border: 1px solid var(--border-color-primary); padding: 2px 8px; text-align: left;
  vertical-align: top; }}
"""


def card_facts(pipe, run_dir: Path | None) -> list[tuple[str, str]]:
    """The model card as (fact, text) rows: what the model is (from its config), then how it was
    trained and how it scores: a bundled model's ``card.json``, or a run folder's log (steps and
    training time, summed over resumes) and its latest ``metrics.jsonl`` rows."""
    from .. import report

    config = pipe.model.config
    exp = pipe.config.get("experiment") if isinstance(pipe.config.get("experiment"), dict) else {}
    data = exp.get("data") if isinstance(exp.get("data"), dict) else {}
    facts = [("model", pipe.model_name), ("image size", f"{getattr(config, 'image_size', '?')} px"),
             ("reads", f"the first {pipe.max_words} words of a caption; a vocabulary of {len(pipe.vocab):,} words"),
             ("truncation", f"{getattr(config, 'truncation', 0) or 0:g} by default (0: none)")]
    if data.get("dataset"):
        facts.append(("data set", str(data["dataset"])))
    if run_dir is None:
        return facts
    try:
        run = report.read_run(run_dir)
    except T2IError as e:
        return facts + [("run folder", f"could not be read: {e}")]
    if run.card:
        facts += [(key, report.plain_value(value)) for key, value in report.flat_items(run.card)
                  if key and key not in ("name", "model", "image_size")]
    if run.log:
        facts.append(("steps", f"{run.log[-1]['step']:,} (log.jsonl)"))
        seconds, sessions = report.training_time(run.log)
        if seconds:
            facts.append(("training time", report.duration_text(seconds, sessions)))
    facts += [(f"score: {m['metric']}", report.metric_text(m)) for m in run.metrics]
    return facts


def card_html(facts: list[tuple[str, str]]) -> str:
    """The card as an HTML table; every fact is escaped text (a run folder's files are data)."""
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    return f"<table>{rows}</table>"


def build_blocks(functions: DemoFunctions, title: str, run_dir: Path | None = None):
    """The Gradio Blocks of the page, queued: one generation at a time (the tabs share the model), at
    most ``max_waiting`` waiting, the direct (unqueued) API closed. ``run_dir``: the run folder (or
    bundled model) whose card the page shows. Returns ``(blocks, css)``: the page's style goes to the
    server that mounts it."""
    import gradio as gr

    pipe, limits, features = functions.pipe, functions.limits, functions.features
    default = functions.default_truncation
    image_size = getattr(pipe.model.config, "image_size", 64)
    shared = {"concurrency_limit": 1, "concurrency_id": "model"}
    clear = {"fn": None, "inputs": None, "js": "() => ''", "queue": False}  # the page's own step, no call
    dice = "() => Math.floor(Math.random() * 2147483648)"  # a seed in [0, 2^31), drawn by the page

    def seed_field(elem_id: str):
        with gr.Row(elem_id=f"{elem_id}-row", equal_height=False):
            # no maximum here: the app's own message says the whole range in one line
            seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id=elem_id, scale=3)
            random_seed = gr.Button("Random seed", elem_id=f"{elem_id}-random", scale=1, size="md")
        random_seed.click(None, None, [seed], js=dice, queue=False)
        return seed

    def truncation_field(elem_id: str):
        return gr.Number(default, label="Truncation", minimum=0, maximum=4, step=0.01, elem_id=elem_id,
                         info=f"0: none; this model's default: {default:g} (also an empty field)")

    # delete_cache: Gradio's copies of served images older than an hour go, checked hourly
    with gr.Blocks(title=f"t2igan: {title}", analytics_enabled=False, delete_cache=(3600, 3600)) as blocks:
        gr.Markdown(f"# t2igan: {title}\n{pipe.model_name} model, {image_size} px; it reads the first "
                    f"{pipe.max_words} words of a caption. Up to {limits.max_images} images per request, "
                    "one request at a time.")
        with gr.Accordion("Model card", open=False, elem_id="model-card-box"):
            gr.HTML(card_html(card_facts(pipe, run_dir)), elem_id="model-card")
        with gr.Tab("Generate", elem_id="tab-generate"):
            with gr.Row():
                caption = gr.Textbox(label="Caption", placeholder=(functions.examples or ["a red circle"])[0],
                                     max_length=limits.max_chars, elem_id="caption", scale=4)
                generate = gr.Button("Generate", variant="primary", elem_id="generate", scale=1)
            with gr.Row():
                n = gr.Slider(1, limits.max_images, value=4, step=1, precision=0, label="Images", elem_id="n")
                seed = seed_field("seed")
                truncation = truncation_field("truncation")
            if functions.examples:
                gr.Examples([[c] for c in functions.examples], inputs=[caption], label="Captions the model knows")
            notices = gr.Markdown(label="Notices", elem_id="notices")
            images = gr.Gallery(label="Images", format="png", elem_id="images", elem_classes="t2igan-pixels",
                                columns=8, height="auto", object_fit="contain")
            grid = gr.DownloadButton("Download grid", elem_id="download", size="sm")
            attention = gr.Image(label="Word attention", type="filepath", interactive=False,
                                 visible="attention" in features, elem_id="attention", format="png")
            masks = gr.Image(label="Masks", type="filepath", interactive=False, visible="masks" in features,
                             elem_id="masks", format="png")
            stream = gr.Textbox(label="STREAM captions", lines=4, interactive=False, visible="stream" in features,
                                elem_id="stream")
            if features & {"attention", "masks"}:
                gr.Markdown("A row per image: the image, then " + " / ".join(filter(None, (
                    "each word's attention over it (the last stage)" if "attention" in features else "",
                    "each generator block's mask" if "masks" in features else ""))) + ".")
        with gr.Tab("Interpolate", elem_id="tab-interpolate"):
            with gr.Row():
                caption_a = gr.Textbox(label="Caption A", elem_id="caption-a", max_length=limits.max_chars)
                caption_b = gr.Textbox(label="Caption B", elem_id="caption-b", max_length=limits.max_chars)
            with gr.Row():
                steps = gr.Slider(2, limits.max_steps, value=8, step=1, precision=0, label="Steps", elem_id="steps")
                interp_seed = seed_field("interp-seed")
                interp_truncation = truncation_field("interp-truncation")
            interpolate = gr.Button("Interpolate", variant="primary", elem_id="interpolate")
            interp_notices = gr.Markdown(label="Notices", elem_id="interp-notices")
            interp_images = gr.Gallery(label="From caption A to caption B", format="png", elem_id="interp-images",
                                       elem_classes="t2igan-pixels", columns=8, height="auto", object_fit="contain")
            interp_grid = gr.DownloadButton("Download row", elem_id="interp-download", size="sm")
        gr.on([generate.click, caption.submit], outputs=[notices], **clear).then(
            as_gradio_errors(functions.generate), [caption, n, seed, truncation],
            [images, grid, notices, attention, masks, stream], api_name="generate", **shared)
        interpolate.click(outputs=[interp_notices], **clear).then(
            as_gradio_errors(functions.interpolate), [caption_a, caption_b, steps, interp_seed, interp_truncation],
            [interp_images, interp_grid, interp_notices], api_name="interpolate", **shared)
        if "stream" in features:
            with gr.Tab("Caption an image (STREAM)", elem_id="tab-caption"):
                gr.Markdown(f"The model's STREAM captioner reads an image you upload (PNG, JPEG, WebP, GIF or BMP, "
                            f"at most {limits.max_upload_bytes // 2**20} MiB and {limits.max_upload_pixels:,} pixels; "
                            f"its centre square, resized to {pipe.model.stream.encoder.input_size} px).")
                with gr.Row():
                    upload = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard"],
                                      elem_id="stream-image", height=256, format="png")
                    with gr.Column():
                        beam = gr.Slider(1, limits.max_beam, value=1, step=1, precision=0, label="Beam width",
                                         elem_id="beam", info="1: greedy decoding")
                        describe = gr.Button("Caption", variant="primary", elem_id="caption-image")
                        stream_caption = gr.Textbox(label="STREAM caption", interactive=False, elem_id="stream-caption")
            describe.click(outputs=[stream_caption], **clear).then(
                as_gradio_errors(functions.caption_image), [upload, beam], [stream_caption], api_name="caption",
                **shared)
    blocks = blocks.queue(max_size=limits.max_waiting, default_concurrency_limit=1, api_open=False)
    return blocks, page_css(image_size)
