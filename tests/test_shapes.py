"""Tests of the procedural Shapes data set (t2igan.data.shapes)."""

import random

import numpy as np
import pytest
import torch

from t2igan.data.shapes import (
    BACKGROUND_RGB,
    COLOUR_RGB,
    COLOURS,
    HELD_OUT,
    LABEL_CLASSES,
    POSITIONS,
    SHAPES,
    ShapesDataset,
    attribute_labels,
    describe,
    parse_shapes_caption,
    render_scene,
)
from t2igan.data.text import CaptionCollator, Vocabulary, tokenize
from t2igan.errors import T2IError

# Word tables written independently of the module, to parse captions back.
SHAPE_SYN = {
    "circle": {"circle", "disc", "round"},
    "square": {"square", "box", "block"},
    "triangle": {"triangle", "triangular"},
    "star": {"star"},
    "diamond": {"diamond", "rhombus"},
}
SIZE_SYN = {"small": {"small", "little", "tiny"}, "large": {"large", "big"}}
POSITION_SYN = {
    "left": {"left"},
    "right": {"right"},
    "top": {"top", "upper"},
    "bottom": {"bottom", "lower"},
    "centre": {"centre", "center", "middle"},
}
RELATION_SYN = {
    "left of": {"left"},
    "right of": {"right"},
    "above": {"above", "over"},
    "below": {"below", "under", "beneath"},
}
SUBJECT_POSITION = {"left of": "left", "right of": "right", "above": "top", "below": "bottom"}
ALL_SHAPE_WORDS = set().union(*SHAPE_SYN.values())
ALL_SIZE_WORDS = set().union(*SIZE_SYN.values())
ALL_POSITION_WORDS = set().union(*POSITION_SYN.values())


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, S, S) in [-1, 1] -> (S, S, 3) int array in 0..255."""
    return ((image.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(int)


def colour_mask(pixels: np.ndarray, rgb, tol: float = 30.0) -> np.ndarray:
    return np.linalg.norm(pixels - np.array(rgb), axis=-1) < tol


def check_caption(caption: str, attributes: dict) -> bool:
    """Assert ``caption`` agrees with ``attributes``; return True if the relation direction was checked."""
    tokens = tokenize(caption)
    objects = attributes["objects"]
    for obj in objects:
        assert obj["colour"] in tokens, (caption, obj)
        assert SHAPE_SYN[obj["shape"]] & set(tokens), (caption, obj)
        assert SIZE_SYN[obj["size"]] & set(tokens), (caption, obj)
    # nothing the scene does not hold
    assert {t for t in tokens if t in COLOURS} == {o["colour"] for o in objects}, caption
    assert {t for t in tokens if t in ALL_SHAPE_WORDS} <= set().union(*(SHAPE_SYN[o["shape"]] for o in objects)), caption
    assert {t for t in tokens if t in ALL_SIZE_WORDS} <= set().union(*(SIZE_SYN[o["size"]] for o in objects)), caption
    if len(objects) == 1:
        assert attributes["relation"] is None
        position_words = {t for t in tokens if t in ALL_POSITION_WORDS}
        assert position_words and position_words <= POSITION_SYN[objects[0]["position"]], caption
        return False
    # two objects: object 0 is <relation> object 1, and the positions agree
    assert objects[0]["position"] == SUBJECT_POSITION[attributes["relation"]]
    relation_words = {w for r in RELATION_SYN.values() for w in r}
    assert relation_words & set(tokens), caption
    if objects[0]["colour"] == objects[1]["colour"]:
        return False
    # Which object is the subject? Mentions are ordered by their colour word. The subject is the
    # first mentioned, unless the relation comes first ("above X there is Y") or the caption ends
    # with "... it" ("X with Y above it").
    mentions = sorted(objects, key=lambda o: tokens.index(o["colour"]))
    rel_at = min(i for i, t in enumerate(tokens) if t in relation_words)
    subject_second = rel_at < tokens.index(mentions[0]["colour"]) or tokens[-1] == "it"
    subject, reference = (mentions[1], mentions[0]) if subject_second else (mentions[0], mentions[1])
    relation = next(r for r, words in RELATION_SYN.items() if words & set(tokens))
    assert subject["position"] == SUBJECT_POSITION[relation], (caption, attributes)
    assert reference["position"] != subject["position"]
    return True


def test_determinism():
    a = ShapesDataset("train", image_size=32, num_images=50, seed=3, random_caption=False)
    b = ShapesDataset("train", image_size=32, num_images=50, seed=3, random_caption=False)
    for i in (40, 7, 0):  # order of access does not matter
        assert torch.equal(a[i]["image"], b[i]["image"])
        assert a.captions(i) == b.captions(i)
        assert a.attributes(i) == b.attributes(i)
    assert np.array_equal(np.asarray(a.render(7)), np.asarray(b.render(7)))
    other = ShapesDataset("train", image_size=32, num_images=50, seed=4)
    assert any(a.captions(i) != other.captions(i) for i in range(5))
    assert any(not torch.equal(a[i]["image"], other[i]["image"]) for i in range(5))
    test = ShapesDataset("test", image_size=32, seed=3)
    assert [a.attributes(i) for i in range(10)] != [test.attributes(i) for i in range(10)]


def test_captions_agree_with_attributes():
    directions = 0
    for split in ("train", "test", "test_heldout"):
        ds = ShapesDataset(split, num_images=300, captions_per_image=10)
        for i in range(len(ds)):
            captions = ds.captions(i)
            assert len(captions) == 10 and len(set(captions)) == 10
            for caption in captions:
                directions += check_caption(caption, ds.attributes(i))
                assert len(tokenize(caption)) <= 18, caption
    assert directions > 1000


def test_describe_paraphrases_and_both_orders():
    scene = {
        "objects": [
            {"shape": "square", "colour": "blue", "size": "small", "position": "top"},
            {"shape": "star", "colour": "yellow", "size": "large", "position": "bottom"},
        ],
        "relation": "above",
    }
    rng = random.Random(0)
    captions = {describe(scene, rng) for _ in range(200)}
    assert len(captions) > 50
    assert any(tokenize(c)[-1] != "it" and tokenize(c).index("blue") < tokenize(c).index("yellow") for c in captions)
    assert any(tokenize(c).index("yellow") < tokenize(c).index("blue") for c in captions)
    for c in captions:
        check_caption(c, scene)
    one = {"objects": [{"shape": "circle", "colour": "orange", "size": "large", "position": "left"}], "relation": None}
    texts = {describe(one, rng) for _ in range(50)}
    assert any(t.startswith("an orange") for t in texts)
    assert not any(" a orange" in t or t.startswith("a orange") for t in texts)


def test_held_out_pairs():
    train = ShapesDataset("train")
    pairs = {(o["colour"], o["shape"]) for i in range(2000) for o in train.attributes(i)["objects"]}
    assert not pairs & set(HELD_OUT)
    assert len(pairs) == len(COLOURS) * len(SHAPES) - len(HELD_OUT)  # everything else occurs
    held = ShapesDataset("test_heldout")
    seen = set()
    for i in range(300):
        found = {(o["colour"], o["shape"]) for o in held.attributes(i)["objects"]} & set(HELD_OUT)
        assert found, held.attributes(i)
        seen |= found
    assert seen == set(HELD_OUT)
    test = ShapesDataset("test")
    test_pairs = {(o["colour"], o["shape"]) for i in range(1000) for o in test.attributes(i)["objects"]}
    assert set(HELD_OUT) <= test_pairs


@pytest.mark.parametrize("size", [32, 64, 128])
def test_image_range_and_shape(size):
    ds = ShapesDataset("test", image_size=size, num_images=4)
    item = ds[1]
    image = item["image"]
    assert image.shape == (3, size, size) and image.dtype == torch.float32
    assert image.min() >= -1 and image.max() <= 1
    assert image.min() < 0  # every object colour has a channel below mid-grey; the background has none
    assert to_uint8(image)[0, 0].tolist() == list(BACKGROUND_RGB)


def test_object_colour_and_position_in_pixels():
    size = 64
    for k, colour in enumerate(COLOURS):
        for position in POSITIONS:
            shape = SHAPES[k % len(SHAPES)]
            scene = {"objects": [{"shape": shape, "colour": colour, "size": "small", "position": position}],
                     "relation": None}
            pixels = np.asarray(render_scene(scene, size, random.Random(k))).astype(int)
            dist_bg = np.linalg.norm(pixels - np.array(BACKGROUND_RGB), axis=-1)
            strong = dist_bg > 0.6 * np.linalg.norm(np.array(COLOUR_RGB[colour]) - np.array(BACKGROUND_RGB))
            assert strong.sum() > 20
            assert np.abs(pixels[strong].mean(0) - COLOUR_RGB[colour]).max() < 20, (colour, position)
            ys, xs = np.nonzero(dist_bg > 10)
            cx, cy = xs.mean() / size, ys.mean() / size
            expect = {"left": cx < 0.4, "right": cx > 0.6, "top": cy < 0.4, "bottom": cy > 0.6,
                      "centre": abs(cx - 0.5) < 0.12 and abs(cy - 0.5) < 0.12}
            assert expect[position], (position, cx, cy)


def test_dataset_pixels_match_attributes():
    ds = ShapesDataset("train", image_size=64, num_images=80, cache=False)
    checked_one = checked_two = 0
    for i in range(len(ds)):
        attributes = ds.attributes(i)
        pixels = to_uint8(ds.get_item(i, 0)["image"])
        objects = attributes["objects"]
        if len(objects) == 2 and objects[0]["colour"] == objects[1]["colour"]:
            continue
        boxes = []
        for obj in objects:
            ys, xs = np.nonzero(colour_mask(pixels, COLOUR_RGB[obj["colour"]]))
            assert len(xs) > 20, (i, obj)
            cx, cy = xs.mean() / 64, ys.mean() / 64
            assert {"left": cx < 0.5, "right": cx > 0.5, "top": cy < 0.5, "bottom": cy > 0.5,
                    "centre": abs(cx - 0.5) < 0.12}[obj["position"]], (i, obj, cx, cy)
            boxes.append((xs.min(), xs.max(), ys.min(), ys.max()))
        if len(boxes) == 1:
            # large ~42% of the width, small ~22%
            width = max(boxes[0][1] - boxes[0][0], boxes[0][3] - boxes[0][2]) + 1
            assert (0.3 < width / 64 < 0.5) if objects[0]["size"] == "large" else (0.13 < width / 64 < 0.27)
            checked_one += 1
        else:
            (ax0, ax1, ay0, ay1), (bx0, bx1, by0, by1) = boxes
            assert ax1 < bx0 or bx1 < ax0 or ay1 < by0 or by1 < ay0, (i, boxes)  # no overlap
            checked_two += 1
    assert checked_one > 10 and checked_two > 10


def test_attribute_labels():
    scene = {
        "objects": [
            {"shape": "star", "colour": "pink", "size": "large", "position": "right"},
            {"shape": "circle", "colour": "red", "size": "small", "position": "left"},
        ],
        "relation": "right of",
    }
    labels = attribute_labels(scene)
    assert set(labels) == set(LABEL_CLASSES)
    assert labels == {"count": 1, "relation": 1, "shape0": 3, "colour0": 7, "size0": 1, "position0": 1,
                      "shape1": 0, "colour1": 0, "size1": 0, "position1": 0}
    ds = ShapesDataset("test", num_images=40)
    for i in range(len(ds)):
        attributes = ds.attributes(i)
        labels = attribute_labels(attributes)
        for k in range(2):
            for key in ("shape", "colour", "size", "position"):
                value = labels[f"{key}{k}"]
                if k < len(attributes["objects"]):
                    assert LABEL_CLASSES[f"{key}{k}"][value] == attributes["objects"][k][key]
                else:
                    assert value == -1
        assert LABEL_CLASSES["count"][labels["count"]] == len(attributes["objects"])
        assert (labels["relation"] == -1) == (attributes["relation"] is None)


def test_items_captions_and_collate():
    ds = ShapesDataset("train", image_size=32, num_images=20)
    item = ds[3]
    assert item["key"] == "shapes/train/000003" and item["image_idx"] == 3 and item["class_id"] == -1
    assert item["caption"] == ds.captions(3)[item["caption_idx"]]
    assert item["attributes"] == ds.attributes(3)
    torch.manual_seed(0)
    first = [ds[3]["caption_idx"] for _ in range(30)]
    torch.manual_seed(0)
    assert [ds[3]["caption_idx"] for _ in range(30)] == first
    assert len(set(first)) > 1
    fixed = ShapesDataset("train", image_size=32, num_images=20, random_caption=False, caption_index=2)
    assert {fixed[3]["caption_idx"] for _ in range(5)} == {2}
    assert ds.get_item(3, 4)["caption"] == ds.captions(3)[4]

    captions = ds.all_captions()
    assert len(captions) == 20 * 5 and captions[15:20] == ds.captions(3)
    vocab = Vocabulary.build(captions)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=CaptionCollator(vocab, max_words=18))
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["tokens"].shape == (4, 18)
    assert batch["class_id"].tolist() == [-1] * 4 and len(batch["attributes"]) == 4
    assert vocab.decode(batch["tokens"][0]) == " ".join(tokenize(batch["captions"][0]))


def test_training_captions_can_leave_size_and_place_out():
    ds = ShapesDataset("train", image_size=32, num_images=60, omit_prob=1.0)
    full = ShapesDataset("train", image_size=32, num_images=60)
    torch.manual_seed(0)
    captions = [ds[i]["caption"] for i in range(60)]
    torch.manual_seed(0)
    assert [ds[i]["caption"] for i in range(60)] == captions  # drawn with torch's generator
    left_out = set()
    for i, caption in enumerate(captions):
        scene, read = ds.attributes(i), parse_shapes_caption(caption)
        assert caption not in full.captions(i)
        # what the caption says agrees with the scene
        assert {(o["shape"], o["colour"]) for o in read["objects"]} == {(o["shape"], o["colour"]) for o in scene["objects"]}
        if len(scene["objects"]) == 1:
            obj = read["objects"][0]
            said = tuple(k for k in ("size", "position") if obj[k] is not None)
            assert all(obj[k] == scene["objects"][0][k] for k in said) and len(said) < 2
            left_out.add(said)
        else:
            assert all(o["size"] is None for o in read["objects"]) and read["relation"] is not None
    assert left_out == {("size",), ("position",), ()}  # size said, place said, neither
    torch.manual_seed(0)
    assert all(full[i]["caption"] in full.captions(i) for i in range(20))  # off by default
    with pytest.raises(T2IError, match="omit_prob"):
        ShapesDataset("train", num_images=5, omit_prob=1.5)
    with pytest.raises(T2IError, match="cannot omit"):
        describe(ds.attributes(0), random.Random(0), ("colour",))


def test_cache():
    ds = ShapesDataset("test", image_size=32, num_images=10, cache=True)
    image = ds[2]["image"]
    assert 2 in ds._images
    assert torch.equal(ds[2]["image"], image)
    fresh = torch.from_numpy(np.array(ds.render(2))).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(fresh, image)
    uncached = ShapesDataset("test", image_size=32, num_images=10, cache=False)
    assert torch.equal(uncached[2]["image"], image) and not uncached._images


def test_bad_input():
    for kwargs in ({"split": "val"}, {"image_size": 16}, {"image_size": 300}, {"captions_per_image": 11},
                   {"max_objects": 3}, {"num_images": 0}, {"caption_index": 5}):
        with pytest.raises(T2IError):
            ShapesDataset(**kwargs)
    ds = ShapesDataset("test", num_images=5)
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(T2IError):
        render_scene({"objects": [{"shape": "circle", "colour": "white", "size": "small", "position": "left"}]})
    with pytest.raises(T2IError):  # positions disagree with the relation
        render_scene({"objects": [{"shape": "circle", "colour": "red", "size": "small", "position": "left"},
                                  {"shape": "star", "colour": "blue", "size": "small", "position": "right"}],
                      "relation": "above"})
    one = ShapesDataset("train", num_images=200, max_objects=1)
    assert all(len(one.attributes(i)["objects"]) == 1 for i in range(200))


def test_colours_are_distinct_and_named_right():
    rgb = {c: np.array(COLOUR_RGB[c]) for c in COLOURS}
    background = np.array(BACKGROUND_RGB)
    for c in COLOURS:
        assert np.linalg.norm(rgb[c] - background) > 120, c
        for d in COLOURS:
            if c < d:
                assert np.linalg.norm(rgb[c] - rgb[d]) > 80, (c, d)
    r, g, b = (rgb[c] for c in ("red", "green", "blue"))
    assert r.argmax() == 0 and g.argmax() == 1 and b.argmax() == 2
    assert rgb["yellow"][0] > 200 and rgb["yellow"][1] > 180 and rgb["yellow"][2] < 80
    assert rgb["orange"][0] > 200 and 100 < rgb["orange"][1] < 170 and rgb["orange"][2] < 80
    assert rgb["purple"][2] > rgb["purple"][1] and rgb["purple"][0] > rgb["purple"][1]
    assert rgb["cyan"][0] < 80 and rgb["cyan"][1] > 150 and rgb["cyan"][2] > 150
    assert rgb["pink"][0] > 200 and rgb["pink"][2] > rgb["pink"][1]
