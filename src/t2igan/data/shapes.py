"""Shapes: a built-in, procedural text-to-image data set (no files, no downloads).

Each image shows one or two flat-coloured objects on a plain light-grey background
(:data:`BACKGROUND_RGB`). Every object has four ground-truth attributes:

* ``shape``    one of :data:`SHAPES`    (circle, square, triangle, star, diamond)
* ``colour``   one of :data:`COLOURS`   (8 clearly distinct colours, see :data:`COLOUR_RGB`)
* ``size``     one of :data:`SIZES`     (small: ~22% of the image width, large: ~42%)
* ``position`` one of :data:`POSITIONS` (left, right, top, bottom, centre)

A two-object scene also has a ``relation`` (one of :data:`RELATIONS`), read as
"object 0 is <relation> object 1". The two objects always sit on opposite sides of one axis
(left/right or top/bottom, see :data:`RELATION_POSITIONS`), each inside its own half of the image,
so they never overlap and the relation always agrees with the positions. ``centre`` is used by
one-object scenes only. The attribute dict of an image looks like::

    {"objects": [{"shape": "square", "colour": "blue", "size": "small", "position": "top"},
                 {"shape": "star", "colour": "yellow", "size": "large", "position": "bottom"}],
     "relation": "above"}            # None for one object

:func:`attribute_labels` turns it into fixed-size integer labels (for a probe classifier), each an
index into the class names of :data:`LABEL_CLASSES` (-1 for an absent second object / relation).

Captions. Each image has ``captions_per_image`` (default 5, at most 10) distinct paraphrases, made
from templates with varying word order and synonyms for shapes ("circle", "disc", "round shape"),
sizes ("large", "big"; "small", "little", "tiny"), positions ("on the left side", "in the middle")
and relations ("to the left of", "over", "beneath"); a two-object caption may name either object
first ("a small blue square above a big yellow star" / "a big yellow star below a small blue
square"). Colour names always appear literally. A one-object caption names the colour, shape,
size and position; a two-object caption names both objects and the relation (which fixes both
positions). No caption is longer than 18 words.

Splits and determinism. Image ``i`` of split ``s`` is a pure function of ``(seed, s, i)``: its
attributes, its captions and its layout jitter come from three ``random.Random`` streams seeded by
a BLAKE2 hash of ``(seed, s, i, stream)`` (never Python's salted ``hash()``). Attributes and captions
need no rendering, so :meth:`ShapesDataset.all_captions` is fast. Default sizes: train 10000,
test 1000, test_heldout 1000 images.

Held-out pairs (compositional generalisation). The (colour, shape) pairs of :data:`HELD_OUT` --
red triangle, blue star, green square, yellow circle, purple diamond -- never occur in the
``"train"`` split (an object that draws one is re-drawn). The ``"test"`` split draws all pairs
freely, so held-out pairs appear there at their natural rate; every image of ``"test_heldout"``
contains at least one held-out object (the other object, if any, is drawn freely).

Reading captions. :func:`parse_shapes_caption` reads the scene a caption (a generated one too,
maybe incomplete) describes, with the same word lists that write the captions.

Rendering. :func:`render_scene` draws with PIL (:mod:`.shapes_render`) at 4x the target size and
box-filters down (``Image.reduce``), so edges are antialiased at any size from 32 to 256 px. ``ShapesDataset`` keeps
rendered images (uint8) in memory when ``cache=True`` (64 px: 12 KiB per image).
"""

from __future__ import annotations

import hashlib
import operator
import random
import re

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import T2IError
from .shapes_render import BACKGROUND_RGB, COLOUR_RGB, check_image_size, draw_scene  # noqa: F401

# ----------------------------------------------------------------------------- class names
SHAPES = ("circle", "square", "triangle", "star", "diamond")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "cyan", "pink")
SIZES = ("small", "large")
POSITIONS = ("left", "right", "top", "bottom", "centre")
RELATIONS = ("left of", "right of", "above", "below")
COUNTS = (1, 2)
SPLITS = ("train", "test", "test_heldout")

# (colour, shape) pairs never seen in training; see the module docstring.
HELD_OUT = (
    ("red", "triangle"),
    ("blue", "star"),
    ("green", "square"),
    ("yellow", "circle"),
    ("purple", "diamond"),
)

# Integer labels of attribute_labels(): key -> class names (a label is an index into these).
LABEL_CLASSES = {
    "count": COUNTS,
    "relation": RELATIONS,
    "shape0": SHAPES,
    "colour0": COLOURS,
    "size0": SIZES,
    "position0": POSITIONS,
    "shape1": SHAPES,
    "colour1": COLOURS,
    "size1": SIZES,
    "position1": POSITIONS,
}

DEFAULT_NUM_IMAGES = {"train": 10000, "test": 1000, "test_heldout": 1000}
MAX_CAPTIONS_PER_IMAGE = 10

# Relation of object 0 to object 1 -> (position of object 0, position of object 1).
RELATION_POSITIONS = {
    "left of": ("left", "right"),
    "right of": ("right", "left"),
    "above": ("top", "bottom"),
    "below": ("bottom", "top"),
}
INVERSE_RELATION = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}

# ----------------------------------------------------------------------------- words
SHAPE_WORDS = {
    "circle": ("circle", "disc", "round shape"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle", "triangular shape"),
    "star": ("star", "star shape"),
    "diamond": ("diamond", "rhombus"),
}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
POSITION_WORDS = {
    "left": ("on the left", "on the left side", "at the left", "in the left part"),
    "right": ("on the right", "on the right side", "at the right", "in the right part"),
    "top": ("at the top", "near the top", "in the upper part", "at the top of the image"),
    "bottom": ("at the bottom", "near the bottom", "in the lower part", "at the bottom of the image"),
    "centre": ("in the centre", "in the center", "in the middle", "in the middle of the image"),
}
RELATION_WORDS = {
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}

# {a} is an article ("a"/"an", chosen from the next word).
ONE_OBJECT_TEMPLATES = (
    "{a} {size} {colour} {shape} {pos}",
    "{pos} there is {a} {size} {colour} {shape}",
    "{a} {colour} {shape}, {size}, placed {pos}",
    "there is {a} {size} {colour} {shape} {pos}",
    "{a} {size} {shape} in {colour} {pos}",
    "{pos}, {a} {size} {colour} {shape}",
    "{a} {colour} {shape} {pos}, {size} in size",
    "{a} {size} {shape} coloured {colour} sits {pos}",
    "{size} {colour} {shape} {pos}",
    "{a} {colour} {shape} of {size} size {pos}",
)
NOUN_PHRASES = ("{a} {size} {colour} {shape}", "{a} {size} {shape} in {colour}")
# Captions that leave something out (training only, ShapesDataset(omit_prob > 0)): by what they omit.
ONE_OBJECT_OMITTING = {
    ("size",): ("{a} {colour} {shape} {pos}", "{pos} there is {a} {colour} {shape}", "{a} {shape} in {colour} {pos}"),
    ("position",): ("{a} {size} {colour} {shape}", "there is {a} {size} {colour} {shape}", "{a} {size} {shape} in {colour}"),
    ("size", "position"): ("{a} {colour} {shape}", "there is {a} {colour} {shape}", "{a} {shape} in {colour}"),
}
NOUN_PHRASES_WITHOUT_SIZE = ("{a} {colour} {shape}", "{a} {shape} in {colour}")
# {first} is <rel> {second}.
TWO_OBJECT_TEMPLATES = (
    "{first} {rel} {second}",
    "there is {first} {rel} {second}",
    "{first} is {rel} {second}",
    "{rel} {second} there is {first}",
    "{first}, placed {rel} {second}",
    "{second} with {first} {rel} it",
    "{second}, and {first} {rel} it",
)

_ARTICLE_RE = re.compile(r"\{a\} (\w)")


def _with_articles(text: str) -> str:
    return _ARTICLE_RE.sub(lambda m: ("an " if m.group(1) in "aeiou" else "a ") + m.group(1), text)


# ----------------------------------------------------------------------------- attributes
def _check_attributes(attributes: dict) -> None:
    """Raise T2IError unless ``attributes`` is a valid Shapes scene."""
    try:
        objects = attributes["objects"]
        relation = attributes.get("relation")
    except (TypeError, KeyError, AttributeError):
        raise T2IError(f"Shapes attributes need an 'objects' list, got {attributes!r}") from None
    if len(objects) not in COUNTS:
        raise T2IError(f"a Shapes scene has 1 or 2 objects, got {len(objects)}")
    for obj in objects:
        for key, names in (("shape", SHAPES), ("colour", COLOURS), ("size", SIZES), ("position", POSITIONS)):
            if obj.get(key) not in names:
                raise T2IError(f"Shapes object {obj!r}: {key} must be one of {', '.join(names)}")
    if len(objects) == 1 and relation is not None:
        raise T2IError(f"a one-object Shapes scene has no relation, got {relation!r}")
    if len(objects) == 2:
        if relation not in RELATIONS:
            raise T2IError(f"two-object Shapes scene: relation must be one of {', '.join(RELATIONS)}")
        if (objects[0]["position"], objects[1]["position"]) != RELATION_POSITIONS[relation]:
            raise T2IError(f"Shapes scene {attributes!r}: positions disagree with the relation")


def sample_attributes(rng: random.Random, max_objects: int = 2, held_out: str = "allow") -> dict:
    """Draw a random scene.

    ``held_out``: ``"avoid"`` (train: no object is a :data:`HELD_OUT` pair), ``"allow"`` (test:
    pairs drawn freely) or ``"require"`` (test_heldout: one random object is a held-out pair).
    """
    if held_out not in ("avoid", "allow", "require"):
        raise T2IError(f"held_out must be 'avoid', 'allow' or 'require', got {held_out!r}")
    count = rng.choice(COUNTS[:max_objects])
    if count == 1:
        relation = None
        positions = (rng.choice(POSITIONS),)
    else:
        relation = rng.choice(RELATIONS)
        positions = RELATION_POSITIONS[relation]
    forced = rng.randrange(count) if held_out == "require" else -1
    objects = []
    for k, position in enumerate(positions):
        if k == forced:
            colour, shape = rng.choice(HELD_OUT)
        else:
            while True:
                shape, colour = rng.choice(SHAPES), rng.choice(COLOURS)
                if held_out != "avoid" or (colour, shape) not in HELD_OUT:
                    break
        objects.append({"shape": shape, "colour": colour, "size": rng.choice(SIZES), "position": position})
    return {"objects": objects, "relation": relation}


def attribute_labels(attributes: dict) -> dict[str, int]:
    """Fixed-size integer labels of a scene: an index into ``LABEL_CLASSES[key]`` per key, -1 if absent.

    Keys: ``count, relation, shape0, colour0, size0, position0, shape1, colour1, size1, position1``.
    """
    _check_attributes(attributes)
    objects = attributes["objects"]
    labels = {
        "count": COUNTS.index(len(objects)),
        "relation": -1 if attributes.get("relation") is None else RELATIONS.index(attributes["relation"]),
    }
    for k in range(2):
        for key, names in (("shape", SHAPES), ("colour", COLOURS), ("size", SIZES), ("position", POSITIONS)):
            labels[f"{key}{k}"] = names.index(objects[k][key]) if k < len(objects) else -1
    return labels


# ----------------------------------------------------------------------------- captions
def _noun_phrase(obj: dict, rng: random.Random, phrases: tuple[str, ...] = NOUN_PHRASES) -> str:
    return rng.choice(phrases).format(
        a="{a}", size=rng.choice(SIZE_WORDS[obj["size"]]), colour=obj["colour"], shape=rng.choice(SHAPE_WORDS[obj["shape"]])
    )


def describe(attributes: dict, rng: random.Random, omit: tuple[str, ...] = ()) -> str:
    """One random caption (lower case) that agrees with ``attributes``. ``omit``: what it leaves
    unsaid, a key of :data:`ONE_OBJECT_OMITTING` (one object) or ``("size",)`` (two objects); the
    caption still agrees with the scene, it just does not pin it down."""
    _check_attributes(attributes)
    objects = attributes["objects"]
    allowed = ((), ("size",)) if len(objects) == 2 else ((), *ONE_OBJECT_OMITTING)
    if omit not in allowed:
        raise T2IError(f"a Shapes caption of {len(objects)} object(s) cannot omit {omit!r}")
    if len(objects) == 1:
        obj = objects[0]
        text = rng.choice(ONE_OBJECT_OMITTING[omit] if omit else ONE_OBJECT_TEMPLATES).format(
            a="{a}",
            size=rng.choice(SIZE_WORDS[obj["size"]]),
            colour=obj["colour"],
            shape=rng.choice(SHAPE_WORDS[obj["shape"]]),
            pos=rng.choice(POSITION_WORDS[obj["position"]]),
        )
    else:
        first, second, relation = objects[0], objects[1], attributes["relation"]
        if rng.random() < 0.5:  # name object 1 first: "B below A" instead of "A above B"
            first, second, relation = second, first, INVERSE_RELATION[relation]
        phrases = NOUN_PHRASES_WITHOUT_SIZE if omit else NOUN_PHRASES
        text = rng.choice(TWO_OBJECT_TEMPLATES).format(
            first=_noun_phrase(first, rng, phrases), second=_noun_phrase(second, rng, phrases),
            rel=rng.choice(RELATION_WORDS[relation]),
        )
    return _with_articles(text)


def caption_set(attributes: dict, num_captions: int, rng: random.Random) -> list[str]:
    """``num_captions`` distinct captions of one scene (:func:`describe` until enough are distinct)."""
    captions: list[str] = []
    for _ in range(50 * num_captions):
        caption = describe(attributes, rng)
        if caption not in captions:
            captions.append(caption)
            if len(captions) == num_captions:
                return captions
    raise T2IError(f"could not make {num_captions} distinct captions for {attributes!r}")


# ----------------------------------------------------------------------------- reading captions
# word -> attribute, from the phrases above: a phrase's first word names a shape ("round shape"), a
# position phrase's content word its position ("in the upper part"); one-word relations only ("left
# of" / "right of" are read as a pair)
_POSITION_FILLER = {"on", "the", "side", "at", "in", "part", "near", "of", "image"}
_SHAPE_TOKENS = {p.split()[0]: shape for shape, phrases in SHAPE_WORDS.items() for p in phrases}
_SIZE_TOKENS = {w: size for size, words in SIZE_WORDS.items() for w in words}
_POSITION_TOKENS = {w: pos for pos, phrases in POSITION_WORDS.items() for p in phrases for w in p.split()
                    if w not in _POSITION_FILLER}
_RELATION_TOKENS = {p: rel for rel, phrases in RELATION_WORDS.items() for p in phrases if " " not in p}


def parse_shapes_caption(caption: str) -> dict:
    """The scene a Shapes caption (this module's templates) describes, read from its words:
    ``{"objects": [{"shape", "colour", "size", "position"}, ...], "relation"}`` with ``None`` for
    whatever the caption does not say (a generated caption may be incomplete or garbled).

    Each object is one shape mention ("circle", "round shape", ...); in a two-object caption each noun
    phrase starts at its article, and the relation's subject is the first phrase unless the relation
    comes first ("above X there is Y") or ends in "it" ("X with Y above it")."""
    from .text import tokenize

    words = tokenize(caption)
    mentions = [(i, _SHAPE_TOKENS[w]) for i, w in enumerate(words)
                if w in _SHAPE_TOKENS and not (w == "star" and i > 0 and words[i - 1] in ("round", "triangular"))]
    relation, rel_at, rel_end = None, None, None
    for i, w in enumerate(words):
        if w in ("left", "right") and i + 1 < len(words) and words[i + 1] == "of":
            relation, rel_at, rel_end = f"{w} of", i, i + 1
        elif w in _RELATION_TOKENS:
            relation, rel_at, rel_end = _RELATION_TOKENS[w], i, i
        if relation:
            break

    def first(span, table, skip=()):
        return next((table[words[i]] for i in span if words[i] in table and i not in skip), None)

    colour_of = {c: c for c in COLOURS}
    if len(mentions) <= 1:
        span = range(len(words))
        rel_words = set() if rel_at is None else set(range(rel_at, rel_end + 1))
        obj = {"shape": mentions[0][1] if mentions else None, "colour": first(span, colour_of),
               "size": first(span, _SIZE_TOKENS), "position": first(span, _POSITION_TOKENS, rel_words)}
        return {"objects": [obj], "relation": None}
    (i0, shape0), (i1, shape1) = mentions[:2]
    articles = [i for i in range(i0 + 1, i1) if words[i] in ("a", "an")]
    split = articles[-1] if articles else i0 + 1
    phrases = []
    for span, shape in ((range(0, split), shape0), (range(split, len(words)), shape1)):
        phrases.append({"shape": shape, "colour": first(span, colour_of), "size": first(span, _SIZE_TOKENS)})
    subject_second = rel_at is not None and (rel_at < i0 or (rel_end + 1 < len(words) and words[rel_end + 1] == "it"))
    objects = phrases[::-1] if subject_second else phrases
    positions = RELATION_POSITIONS.get(relation, (None, None))
    for obj, pos in zip(objects, positions):
        obj["position"] = pos
    return {"objects": objects, "relation": relation}


def render_scene(attributes: dict, image_size: int = 64, rng: random.Random | None = None) -> Image.Image:
    """Draw a scene as an RGB ``image_size`` x ``image_size`` PIL image (:mod:`.shapes_render`).

    ``rng`` jitters each object's centre, size and rotation a little; ``None`` draws the canonical
    layout. Drawn at 4x the size and box-filtered down (antialiasing).
    """
    _check_attributes(attributes)
    return draw_scene(attributes, image_size, rng)


def _stable_seed(*parts) -> int:
    """A 64-bit seed from a BLAKE2 hash of ``parts`` (stable across runs, unlike ``hash()``)."""
    text = "/".join(str(p) for p in ("t2igan-shapes",) + parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


# ----------------------------------------------------------------------------- data set
class ShapesDataset(Dataset):
    """The procedural Shapes data set; items are dicts (see :meth:`get_item`).

    Item ``i`` depends only on ``(seed, split, i)`` and the constructor arguments, never on the
    order of access. With ``random_caption=True`` each access picks one of the image's captions
    uniformly with torch's generator (seed it with ``torch.manual_seed``); otherwise caption
    ``caption_index`` is always used. With ``omit_prob`` > 0 (training), that often an access gets a
    fresh caption that leaves the size, the place or both unsaid (two objects: the sizes), as people
    write "a red circle"; every caption of the fixed sets names everything.
    """

    def __init__(
        self,
        split: str = "train",  # "train" | "test" | "test_heldout"
        image_size: int = 64,  # pixels, 32..256
        num_images: int | None = None,  # None: DEFAULT_NUM_IMAGES[split]
        captions_per_image: int = 5,  # distinct paraphrases per image, 1..10
        max_objects: int = 2,  # 1 or 2 objects per image
        seed: int = 0,  # selects the whole data set
        random_caption: bool = True,  # a random caption per access (training)
        caption_index: int = 0,  # the caption used when random_caption is False
        cache: bool = True,  # keep rendered images in memory
        omit_prob: float = 0.0,  # chance that an access gets a fresh caption leaving size and/or place out
    ):
        if split not in SPLITS:
            raise T2IError(f"unknown Shapes split {split!r} (use one of {', '.join(SPLITS)})")
        check_image_size(image_size)
        if num_images is None:
            num_images = DEFAULT_NUM_IMAGES[split]
        if not isinstance(num_images, int) or num_images < 1:
            raise T2IError(f"Shapes num_images must be a positive integer, got {num_images!r}")
        if not isinstance(captions_per_image, int) or not 1 <= captions_per_image <= MAX_CAPTIONS_PER_IMAGE:
            raise T2IError(f"Shapes captions_per_image must be 1..{MAX_CAPTIONS_PER_IMAGE}, got {captions_per_image!r}")
        if max_objects not in COUNTS:
            raise T2IError(f"Shapes max_objects must be 1 or 2, got {max_objects!r}")
        if not 0 <= caption_index < captions_per_image:
            raise T2IError(f"Shapes caption_index {caption_index} is not below captions_per_image={captions_per_image}")
        self.split = split
        self.image_size = image_size
        self.num_images = num_images
        self.captions_per_image = captions_per_image
        self.max_objects = max_objects
        self.seed = seed
        self.random_caption = random_caption
        self.caption_index = caption_index
        self.cache = cache
        if not 0.0 <= omit_prob <= 1.0:
            raise T2IError(f"Shapes omit_prob must be in [0, 1], got {omit_prob!r}")
        self.omit_prob = omit_prob
        self._held_out_mode = {"train": "avoid", "test": "allow", "test_heldout": "require"}[split]
        self._images: dict[int, torch.Tensor] = {}  # image_idx -> uint8 (3, S, S)

    def __len__(self) -> int:
        return self.num_images

    def _index(self, i) -> int:
        i = operator.index(i)
        if not 0 <= i < self.num_images:
            raise IndexError(f"Shapes {self.split} index {i} out of range (0..{self.num_images - 1})")
        return i

    def _rng(self, i: int, stream: str) -> random.Random:
        return random.Random(_stable_seed(self.seed, self.split, i, stream))

    def key(self, i) -> str:
        return f"shapes/{self.split}/{self._index(i):06d}"

    def attributes(self, i) -> dict:
        """Ground-truth scene of image ``i`` (cheap: no rendering)."""
        return sample_attributes(self._rng(self._index(i), "attributes"), self.max_objects, self._held_out_mode)

    def captions(self, i) -> list[str]:
        """The ``captions_per_image`` captions of image ``i`` (cheap: no rendering)."""
        return caption_set(self.attributes(i), self.captions_per_image, self._rng(self._index(i), "captions"))

    def all_captions(self) -> list[str]:
        """Every caption of every image, image by image (for building the vocabulary)."""
        return [c for i in range(self.num_images) for c in self.captions(i)]

    def render(self, i) -> Image.Image:
        """Image ``i`` as a PIL image (always rendered afresh)."""
        return render_scene(self.attributes(i), self.image_size, self._rng(self._index(i), "layout"))

    def image_uint8(self, i) -> torch.Tensor:
        """Image ``i`` as a uint8 tensor ``(3, S, S)``, from the cache when enabled."""
        i = self._index(i)
        image = self._images.get(i)
        if image is None:
            image = torch.from_numpy(np.array(self.render(i))).permute(2, 0, 1).contiguous()  # (3, S, S)
            if self.cache:
                self._images[i] = image
        return image

    def get_item(self, i, caption_idx: int) -> dict:
        """Item of image ``i`` with caption number ``caption_idx``."""
        i = self._index(i)
        attributes = self.attributes(i)
        captions = caption_set(attributes, self.captions_per_image, self._rng(i, "captions"))
        if not 0 <= caption_idx < len(captions):
            raise IndexError(f"Shapes image {i} has {len(captions)} captions, asked for {caption_idx}")
        return {
            "image": self.image_uint8(i).float() / 127.5 - 1.0,  # (3, S, S) in [-1, 1]
            "caption": captions[caption_idx],
            "image_idx": i,
            "caption_idx": caption_idx,
            "class_id": -1,
            "key": self.key(i),
            "attributes": attributes,
        }

    def __getitem__(self, i) -> dict:
        if self.random_caption:
            caption_idx = int(torch.randint(self.captions_per_image, ()).item())
        else:
            caption_idx = self.caption_index
        item = self.get_item(i, caption_idx)
        if self.omit_prob and float(torch.rand(())) < self.omit_prob:  # torch's generator, like the caption index
            rng = random.Random(int(torch.randint(2**31, ()).item()))
            two = len(item["attributes"]["objects"]) == 2
            omit = ("size",) if two else rng.choice(list(ONE_OBJECT_OMITTING))
            item["caption"] = describe(item["attributes"], rng, omit)
        return item
