"""The Gradio page of ``t2igan serve``: generate, interpolate, and the model's own figures.

:class:`DemoFunctions` holds the functions behind the page (and behind its API, ``/generate`` and
``/interpolate`` for ``gradio_client``): they check their input (bad input raises
:class:`t2igan.errors.T2IError`, shown by Gradio as an error message) and generate only through
:class:`t2igan.pipeline.Text2ImagePipeline`. :func:`build_blocks` lays them out; the per-word
attention (AttnGAN, MirrorGAN, DR-GAN), mask (SSA-GAN, DR-GAN) and STREAM caption (MirrorGAN)
panels appear only for models that produce them.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home, before gradio is imported

from ..errors import T2IError, one_line  # noqa: E402
from ..visualize import stack_rows  # noqa: E402

@dataclass
class Limits:
    max_images: int = 16  # images per request
    max_chars: int = 500  # characters per caption
    max_steps: int = 16  # images in an interpolation
    max_waiting: int = 8  # requests that may wait in the queue; more are told to retry


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
    """None, empty or 0 (what the page's empty number field sends): the model's own default; else a
    number in (0, 4]."""
    if value is None or value == "" or value == 0:
        return None
    problem = T2IError(f"truncation must be a number in (0, 4], got {shown(value)}")
    if isinstance(value, bool):
        raise problem
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        raise problem from None
    if not (math.isfinite(value) and 0 < value <= 4):
        raise problem
    return value


class ImageFiles:
    """The PNG files of the latest request's images, for Gradio to copy into its cache (atomically,
    reusing identical files). Handing Gradio PIL images instead makes it rewrite a file named by the
    image's hash in place, which races with a download of the same image by another client."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="t2igan-serve-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)
        self.latest: list[Path] = []

    def write(self, *galleries: list) -> list[list[tuple[str, str]]]:
        """Galleries ``[(PIL image, label)]`` -> ``[(PNG path, label)]``; the previous request's files
        go (one request runs at a time, and Gradio has copied them when its function returned)."""
        for path in self.latest:
            path.unlink(missing_ok=True)
        self.latest = []
        out = []
        for items in galleries:
            out.append([])
            for image, label in items:
                self.latest.append(self.folder / f"{uuid.uuid4().hex}.png")
                image.save(self.latest[-1])
                out[-1].append((str(self.latest[-1]), label))
        return out


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
        """-> (gallery of (image, label), notices (Markdown), attention figure, masks figure (PNG
        paths, a row per image), STREAM captions (text)); None / empty for models without them."""
        caption = self.caption(caption, "the caption")
        n = whole_number(n, 1, self.limits.max_images, "number of images")
        seed = whole_number(seed, 0, 2**31 - 1, "seed")
        out = self.pipe([caption], n=n, seed=seed, truncation=truncation_value(truncation), return_output=True)
        gallery = [(image, f"seed {seed} #{i + 1}") for i, image in enumerate(out.images)]
        figures = [[(stack_rows(rows), "")] if rows else [] for rows in
                   (self.pipe.attention_figures(out), self.pipe.mask_figures(out))]  # one row per image
        stream = self.pipe.redescribe(out.images) if "stream" in self.features else None
        stream_text = "\n".join(f"image #{i + 1}: {c}" for i, c in enumerate(stream or []))
        gallery, attention, masks = self.files.write(gallery, *figures)
        attention, masks = (files[0][0] if files else None for files in (attention, masks))
        return gallery, self.notices(caption, "the caption"), attention, masks, stream_text

    def interpolate(self, caption_a, caption_b, steps=8, seed=0, truncation=None):
        """-> (gallery of the steps from caption A to caption B, notices (Markdown))."""
        caption_a = self.caption(caption_a, "caption A")
        caption_b = self.caption(caption_b, "caption B")
        steps = whole_number(steps, 2, self.limits.max_steps, "steps")
        seed = whole_number(seed, 0, 2**31 - 1, "seed")
        images = self.pipe.interpolate(caption_a, caption_b, steps, seed, truncation=truncation_value(truncation))
        gallery, = self.files.write([(image, f"t={i / (steps - 1):.2f}") for i, image in enumerate(images)])
        notices = "\n".join(filter(None, [self.notices(caption_a, "caption A"), self.notices(caption_b, "caption B")]))
        return gallery, notices


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


def build_blocks(functions: DemoFunctions, title: str):
    """The Gradio Blocks of the page, queued: one generation at a time (generate and interpolate
    share the model), at most ``max_waiting`` waiting, the direct (unqueued) API closed."""
    import gradio as gr

    pipe, limits, features = functions.pipe, functions.limits, functions.features
    default_truncation = getattr(pipe.model.config, "truncation", None)
    # delete_cache: Gradio's copies of served images older than an hour go, checked hourly
    with gr.Blocks(title=f"t2igan: {title}", analytics_enabled=False, delete_cache=(3600, 3600)) as blocks:
        gr.Markdown(f"# t2igan: {title}\n{pipe.model_name} model; it reads the first {pipe.max_words} words "
                    f"of a caption. Up to {limits.max_images} images per request, one request at a time.")
        with gr.Tab("Generate"):
            with gr.Row():
                caption = gr.Textbox(label="Caption", placeholder=(functions.examples or ["a red circle"])[0],
                                     max_length=limits.max_chars, elem_id="caption", scale=4)
                generate = gr.Button("Generate", variant="primary", elem_id="generate", scale=1)
            with gr.Row():
                n = gr.Slider(1, limits.max_images, value=4, step=1, label="Images", elem_id="n")
                seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="seed")
                truncation = gr.Number(0, label=f"Truncation (0: the model's default, {default_truncation})",
                                       minimum=0, maximum=4, elem_id="truncation")
            if functions.examples:
                gr.Examples([[c] for c in functions.examples], inputs=[caption], label="Captions the model knows")
            notices = gr.Markdown(elem_id="notices")
            images = gr.Gallery(label="Images", columns=8, format="png", elem_id="images", height="auto")
            attention = gr.Image(label="Per-word attention (last stage), a row per image", type="filepath",
                                 interactive=False, visible="attention" in features, elem_id="attention")
            masks = gr.Image(label="Masks of each generator block, a row per image", type="filepath",
                             interactive=False, visible="masks" in features, elem_id="masks")
            stream = gr.Textbox(label="STREAM caption of each image", lines=4, interactive=False,
                                visible="stream" in features, elem_id="stream")
        with gr.Tab("Interpolate"):
            with gr.Row():
                caption_a = gr.Textbox(label="Caption A", elem_id="caption-a", max_length=limits.max_chars)
                caption_b = gr.Textbox(label="Caption B", elem_id="caption-b", max_length=limits.max_chars)
            with gr.Row():
                steps = gr.Slider(2, limits.max_steps, value=8, step=1, label="Steps", elem_id="steps")
                interp_seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="interp-seed")
                interpolate = gr.Button("Interpolate", variant="primary", elem_id="interpolate")
            interp_notices = gr.Markdown(elem_id="interp-notices")
            interp_images = gr.Gallery(label="From caption A to caption B", columns=8, format="png",
                                       elem_id="interp-images", height="auto")
        shared = {"concurrency_limit": 1, "concurrency_id": "model"}
        gr.on([generate.click, caption.submit], as_gradio_errors(functions.generate),
              [caption, n, seed, truncation], [images, notices, attention, masks, stream],
              api_name="generate", **shared)
        interpolate.click(as_gradio_errors(functions.interpolate), [caption_a, caption_b, steps, interp_seed, truncation],
                          [interp_images, interp_notices], api_name="interpolate", **shared)
    return blocks.queue(max_size=limits.max_waiting, default_concurrency_limit=1, api_open=False)
