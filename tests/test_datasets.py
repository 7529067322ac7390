"""Tests of the on-disk data set loaders (t2igan.data.datasets).

The CUB tests read the real subset in ../shared/data/cub_birds_subset (override with the environment
variable T2IGAN_CUB_SUBSET). They fail, with a message, when it is absent: they never copy it into
the repository. Trees for the error cases, Oxford-102, COCO, folders and JSONL are built in tmp_path.
"""

import json
import os
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from t2igan.data.coco import COCODataset
from t2igan.data.cub import CUBDataset, Flowers102Dataset
from t2igan.data.datasets import build_dataset, read_attngan_captions, vocabulary_from_attngan
from t2igan.data.folders import ImageFolderCaptions, JSONLManifest
from t2igan.data.images import ImageTransform, bbox_crop_box, load_rgb, resize_shorter_side
from t2igan.data.text import CaptionCollator, Vocabulary, tokenize
from t2igan.errors import T2IError

DEFAULT_CUB = Path(__file__).resolve().parents[2] / "shared/data/cub_birds_subset"  # ../shared next to the repo
CUB_ROOT = Path(os.environ.get("T2IGAN_CUB_SUBSET", DEFAULT_CUB))
GRAY_KEY = "009.Brewer_Blackbird/Brewer_Blackbird_0028_2682"
TRAIN_KEYS = [  # three class-002 training images, copied into the small trees
    "002.Laysan_Albatross/Laysan_Albatross_0002_1027",
    "002.Laysan_Albatross/Laysan_Albatross_0003_1033",
    "002.Laysan_Albatross/Laysan_Albatross_0082_524",
]


def cub_root() -> Path:
    assert (CUB_ROOT / "CUB_200_2011" / "images").is_dir(), (
        f"the shared CUB subset is missing: expected {CUB_ROOT} (AttnGAN data/birds layout, described by "
        "the README.md in that folder); set T2IGAN_CUB_SUBSET to its folder"
    )
    return CUB_ROOT


@pytest.fixture(scope="module")
def cub_train():
    root = cub_root()
    return CUBDataset(root, "train", image_size=64, filenames=root / "subset_train_filenames.txt")


@pytest.fixture(scope="module")
def cub_test():
    root = cub_root()
    return CUBDataset(root, "test", image_size=64, filenames=root / "subset_test_filenames.txt")


def file_captions(path: Path, n: int = 10) -> list[list[str]]:
    lines = [tokenize(line) for line in path.read_text().splitlines()]
    return [t for t in lines if t][:n]


def small_cub_tree(tmp_path: Path, keys=TRAIN_KEYS) -> Path:
    """A 3-image copy of the subset (images, captions, the matching box lines, a key list)."""
    src, dst = cub_root(), tmp_path / "birds"
    ids = []
    for line in (src / "CUB_200_2011/images.txt").read_text().splitlines():
        num, name = line.split()
        if name[:-4] in keys:
            ids.append(num)
    for sub in ("CUB_200_2011/images", "text"):
        ext = ".jpg" if "images" in sub else ".txt"
        for key in keys:
            (dst / sub / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src / sub / f"{key}{ext}", dst / sub / f"{key}{ext}")
    for name in ("images.txt", "bounding_boxes.txt"):
        lines = [ln for ln in (src / "CUB_200_2011" / name).read_text().splitlines() if ln.split()[0] in ids]
        (dst / "CUB_200_2011" / name).write_text("\n".join(lines) + "\n")
    (dst / "keys.txt").write_text("\n".join(keys) + "\n")
    return dst


def save_image(path: Path, colour, size=(40, 30), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


# ----------------------------------------------------------------------------- CUB subset


def test_cub_subset_lengths_images_and_classes(cub_train, cub_test):
    assert len(cub_train) == 275 and len(cub_test) == 983
    for ds in (cub_train, cub_test):
        assert all(c == int(k.split(".")[0]) for c, k in zip(ds.class_ids, ds.keys))
    assert set(cub_train.class_ids) == {2, 3, 5, 7, 10}
    assert len(set(cub_test.class_ids)) == 17
    random.seed(0)
    for i in (0, 100, 274):
        item = cub_train[i]
        img = item["image"]
        assert img.shape == (3, 64, 64) and img.dtype == torch.float32
        assert img.min() >= -1 and img.max() <= 1 and img.std() > 0.05
        assert item["class_id"] == int(item["key"][:3]) and item["image_idx"] == i


def test_cub_captions_come_from_the_right_text_file(cub_train, cub_test):
    random.seed(1)
    for ds in (cub_train, cub_test):
        for i in (0, 57, len(ds) - 1):
            expected = file_captions(CUB_ROOT / "text" / f"{ds.keys[i]}.txt")
            assert [tokenize(c) for c in ds.captions(i)] == expected and len(expected) == 10
            item = ds[i]
            assert tokenize(item["caption"]) == expected[item["caption_idx"]]
    assert len(cub_train.all_captions()) == 2750


def test_cub_random_caption_never_reads_past_the_image(cub_train):
    """randrange(n), not the official inclusive randint(0, n)."""
    random.seed(2)
    idx = {cub_train[3]["caption_idx"] for _ in range(300)}
    assert idx == set(range(10))
    fixed = CUBDataset(CUB_ROOT, "train", filenames=TRAIN_KEYS, random_caption=False)
    assert {fixed[1]["caption_idx"] for _ in range(5)} == {0}


def test_cub_grayscale_image_loads_as_rgb(cub_test):
    i = cub_test.keys.index(GRAY_KEY)
    with Image.open(cub_test.image_paths[i]) as original:
        assert original.mode == "L"
    img = cub_test.get_item(i, 0)["image"]
    assert img.shape == (3, 64, 64)
    assert torch.equal(img[0], img[1]) and torch.equal(img[1], img[2])


def test_cub_bbox_crop_changes_the_image():
    root = cub_root()
    with_box = CUBDataset(root, "train", filenames=TRAIN_KEYS, train_transform=False)
    no_box = CUBDataset(root, "train", filenames=TRAIN_KEYS, train_transform=False, use_bbox=False)
    full = Image.open(root / "CUB_200_2011/images" / f"{TRAIN_KEYS[0]}.jpg")
    assert no_box.raw_image(0).size == full.size
    box = bbox_crop_box(with_box.bboxes[0], *full.size)
    assert with_box.raw_image(0).size == (box[2] - box[0], box[3] - box[1]) != full.size
    assert (with_box.image(0) - no_box.image(0)).abs().mean() > 0.05


def test_bbox_crop_box_follows_attngan():
    # box x=10, y=20, w=40, h=20 in a 100x60 image: r = int(40 * 0.75) = 30, centre (30, 30)
    assert bbox_crop_box((10, 20, 40, 20), 100, 60) == (0, 0, 60, 60)
    # a box in the middle of a large image: not clipped, a square of side 2r
    assert bbox_crop_box((100.0, 100.0, 50.0, 30.0), 400, 400) == (88, 78, 162, 152)


def test_cub_centre_crop_is_deterministic_and_train_crop_is_not():
    root = cub_root()
    ev = CUBDataset(root, "train", filenames=TRAIN_KEYS, train_transform=False)
    assert torch.equal(ev[0]["image"], ev[0]["image"])
    tr = CUBDataset(root, "train", filenames=TRAIN_KEYS, train_transform=True)
    random.seed(3)
    draws = [tr[0]["image"] for _ in range(6)]
    assert any(not torch.equal(draws[0], d) for d in draws[1:])
    # the test split defaults to the evaluation transform
    assert CUBDataset(root, "test", filenames=[GRAY_KEY]).transform.train is False


def test_cub_cache_and_fast_decode(cub_train):
    root = cub_root()
    ds = CUBDataset(root, "train", filenames=TRAIN_KEYS, train_transform=False, cache=True)
    first = ds[1]["image"]
    assert 1 in ds._prepared and torch.equal(first, ds[1]["image"])
    fast = CUBDataset(root, "train", filenames=TRAIN_KEYS, train_transform=False, fast_decode=True)
    for i in range(3):
        assert fast.raw_image(i).size[0] < ds.raw_image(i).size[0]  # decoded at a reduced scale
        assert (fast[i]["image"] - ds[i]["image"]).abs().mean() < 0.1


def test_cub_dataloader_with_collator(cub_train):
    vocab = Vocabulary.build(cub_train.all_captions())
    loader = DataLoader(cub_train, batch_size=8, shuffle=True, collate_fn=CaptionCollator(vocab, 18))
    torch.manual_seed(0)
    batch = next(iter(loader))
    assert batch["image"].shape == (8, 3, 64, 64) and batch["tokens"].shape == (8, 18)
    assert batch["class_id"].tolist() == [int(k[:3]) for k in batch["key"]]


def test_cub_full_split_list_reports_missing_images():
    """The error names the split and gives the fixes in command-line form; skip_missing says what it kept."""
    root = cub_root()
    with pytest.raises(T2IError, match=r"^train split: 8580 of 8855 listed files are missing \(first: "
                                       r"CUB_200_2011/images/.*\.jpg in .*\); run 't2igan data prepare cub', or keep what "
                                       r"is there: 'data\.train_args=\{skip_missing: true\}', or list a subset: "
                                       r"'data\.train_args=\{filenames: FILE\}'") as err:
        CUBDataset(root, "train")
    assert "skip_missing=True" not in str(err.value) and "filenames=" not in str(err.value)  # no Python syntax
    with pytest.raises(T2IError, match=r"^test split: 1950 of 2933 .*'data\.test_args=\{skip_missing: true\}'"):
        CUBDataset(root, "test")
    with pytest.warns(UserWarning, match=r"train split: kept 275 of 8855 listed images, left out 8580 whose files "
                                         r"are missing \(skip_missing\)"):
        ds = CUBDataset(root, "train", skip_missing=True)  # class ids from train/class_info.pickle
    assert len(ds) == 275 and ds.missing == 8580
    assert all(c == int(k[:3]) for c, k in zip(ds.class_ids, ds.keys))


def test_cub_absent_split_list_and_root_say_how_to_prepare(tmp_path):
    root = small_cub_tree(tmp_path)
    with pytest.raises(T2IError, match=r"^test split: its list .*test/filenames\.pickle is not there; run 't2igan "
                                       r"data prepare cub', or list the images: 'data\.test_args=\{filenames: FILE\}'"):
        CUBDataset(root, "test")
    with pytest.raises(T2IError, match=r"flowers data not found: .*nowhere does not exist \(run 't2igan data "
                                       r"prepare flowers -o .*nowhere'\)"):
        build_dataset("flowers", tmp_path / "nowhere")


# ----------------------------------------------------------------------------- CUB error cases (small copies)


def test_cub_missing_image_names_the_file(tmp_path):
    root = small_cub_tree(tmp_path)
    missing = root / "CUB_200_2011/images" / f"{TRAIN_KEYS[1]}.jpg"
    missing.unlink()
    with pytest.raises(T2IError, match="Laysan_Albatross_0003_1033.jpg"):
        CUBDataset(root, "train", filenames="keys.txt")  # relative to root
    with pytest.warns(UserWarning, match="kept 2 of 3 listed images, left out 1"):
        ds = CUBDataset(root, "train", filenames=root / "keys.txt", skip_missing=True)
    assert len(ds) == 2 and ds.missing == 1 and TRAIN_KEYS[1] not in ds.keys


def test_cub_missing_caption_file_names_it(tmp_path):
    root = small_cub_tree(tmp_path)
    (root / "text" / f"{TRAIN_KEYS[2]}.txt").unlink()
    with pytest.raises(T2IError, match="Laysan_Albatross_0082_524.txt"):
        CUBDataset(root, "train", filenames=root / "keys.txt")


def test_cub_corrupt_jpeg_names_the_file(tmp_path):
    root = small_cub_tree(tmp_path)
    bad = root / "CUB_200_2011/images" / f"{TRAIN_KEYS[0]}.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg" * 10)
    ds = CUBDataset(root, "train", filenames=root / "keys.txt")
    assert ds[1]["image"].shape == (3, 64, 64)
    with pytest.raises(T2IError, match=f"cannot read image {bad}"):
        ds[0]
    # a truncated file too
    good = root / "CUB_200_2011/images" / f"{TRAIN_KEYS[1]}.jpg"
    good.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(T2IError, match="Laysan_Albatross_0003_1033.jpg"):
        ds[1]


def test_cub_caption_count_rules(tmp_path):
    root = small_cub_tree(tmp_path)
    text = root / "text" / f"{TRAIN_KEYS[0]}.txt"
    lines = text.read_text().splitlines()
    text.write_text("\n\n".join(lines[:4]) + "\n  \n" + "\n".join(lines[4:]) + "\nan eleventh caption\n")
    ds = CUBDataset(root, "train", filenames=root / "keys.txt")  # empty lines skipped, extra dropped
    assert ds.captions(0) == [ln.strip() for ln in lines]
    short = CUBDataset(root, "train", filenames=root / "keys.txt", captions_per_image=3)
    assert short.captions(0) == [ln.strip() for ln in lines[:3]]
    text.write_text("\n".join(lines[:7]) + "\n\n\n")
    with pytest.raises(T2IError, match=r"0002_1027.txt has 7 non-empty captions, expected at least 10"):
        CUBDataset(root, "train", filenames=root / "keys.txt")


def test_cub_class_info_pickle_and_missing_boxes(tmp_path):
    root = small_cub_tree(tmp_path)
    (root / "train").mkdir()
    with open(root / "train/filenames.pickle", "wb") as f:
        pickle.dump(TRAIN_KEYS, f, protocol=2)
    with open(root / "train/class_info.pickle", "wb") as f:
        pickle.dump([7, 8, 9], f, protocol=2)
    assert CUBDataset(root, "train").class_ids == [7, 8, 9]  # class_info wins over folder numbers
    (root / "CUB_200_2011/bounding_boxes.txt").unlink()
    with pytest.raises(T2IError, match="bounding_boxes.txt"):
        CUBDataset(root, "train")
    assert len(CUBDataset(root, "train", use_bbox=False)) == 3


# ----------------------------------------------------------------------------- Oxford-102, COCO, folder, JSONL


def test_flowers_layout(tmp_path):
    root = tmp_path / "flowers"
    for n, (cls, colour) in enumerate([(1, "red"), (1, "yellow"), (17, "blue")], 1):
        save_image(root / "jpg" / f"image_{n:05d}.jpg", colour, size=(90, 70))
        cap = root / "text_c10" / f"class_{cls:05d}" / f"image_{n:05d}.txt"
        cap.parent.mkdir(parents=True, exist_ok=True)
        cap.write_text("".join(f"a {colour} flower number {j}\n" for j in range(10)))
    (root / "train").mkdir()
    with open(root / "train/filenames.pickle", "wb") as f:  # StackGAN-style keys with the class folder
        pickle.dump(["class_00001/image_00001", "class_00001/image_00002", "class_00017/image_00003"], f)
    ds = Flowers102Dataset(root, "train", image_size=32)
    assert len(ds) == 3 and ds.class_ids == [1, 1, 17] and ds.bboxes is None
    img = ds.get_item(2, 4)
    assert img["caption"] == "a blue flower number 4"
    assert img["image"][2].mean() > 0.9 and img["image"][0].mean() < -0.9  # pure blue
    flat = Flowers102Dataset(root, "train", filenames=["jpg/image_00002"])  # keys naming the image folder
    assert flat.class_ids == [1] and flat.captions(0)[0] == "a yellow flower number 0"


def write_coco(root: Path, counts: dict[int, int], split="train"):
    images, anns = [], []
    for image_id, n in counts.items():
        name = f"COCO_{split}2014_{image_id:012d}.jpg"
        save_image(root / f"{split}2014" / name, (image_id * 40 % 256, 90, 30))
        images.append({"id": image_id, "file_name": name, "width": 40, "height": 30})
        anns += [{"id": 100 * image_id + j, "image_id": image_id, "caption": f"image {image_id} caption {j}. "}
                 for j in range(n)]
    anns.reverse()  # interleaving must not matter
    anns.sort(key=lambda a: a["id"] % 100)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    ann_path = root / "annotations" / f"captions_{split}2014.json"
    ann_path.write_text(json.dumps({"images": images, "annotations": anns}))


def test_coco_groups_captions_by_image(tmp_path):
    root = tmp_path / "coco"
    write_coco(root, {3: 7, 5: 5})
    ds = COCODataset(root, "train", image_size=16)
    assert len(ds) == 2 and ds.keys == ["COCO_train2014_000000000003.jpg", "COCO_train2014_000000000005.jpg"]
    assert ds.captions(0) == [f"image 3 caption {j}." for j in range(5)]
    random.seed(0)
    item = ds[1]
    assert item["class_id"] == -1 and item["caption"] == f"image 5 caption {item['caption_idx']}."
    assert item["image"].shape == (3, 16, 16)
    every = COCODataset(root, "train", captions_per_image=None)  # all captions of each image
    assert [len(every.captions(i)) for i in range(2)] == [7, 5]
    with pytest.raises(T2IError, match="COCO_train2014_000000000005.jpg .* has 5 non-empty captions"):
        COCODataset(root, "train", captions_per_image=6)
    write_coco(root, {8: 5}, split="val")
    assert COCODataset(root, "test").keys == ["COCO_val2014_000000000008.jpg"]  # test reads val2014
    (root / "train2014" / "COCO_train2014_000000000003.jpg").unlink()
    with pytest.raises(T2IError, match=r"^train split: 1 of \d+ listed COCO images are missing \(first: train2014/"
                                       r"COCO_train2014_000000000003.jpg in .*\); run 't2igan data prepare coco', or "
                                       r"keep what is there: 'data\.train_args=\{skip_missing: true\}'$"):
        COCODataset(root, "train")
    with pytest.warns(UserWarning, match=r"train split: kept \d+ of \d+ listed COCO images, left out 1 whose"):
        assert COCODataset(root, "train", skip_missing=True).missing == 1
    with pytest.raises(T2IError, match=r"^test split: COCO caption file not found: .*captions_val2017\.json \(run "):
        COCODataset(root, "test", year=2017)


def test_image_folder_captions(tmp_path):
    root = tmp_path / "folder"
    save_image(root / "a.png", "red")
    (root / "a.txt").write_text("a red picture\n\nstill red\n")
    save_image(root / "sub" / "b.jpg", "green", mode="L")
    (root / "sub" / "b.txt").write_text("a grey one\n")
    save_image(root / "sub" / "c.webp", "blue")  # no caption file: skipped and counted
    ds = ImageFolderCaptions(root, image_size=16, train_transform=False)
    assert ds.keys == ["a.png", "sub/b.jpg"] and ds.missing == 1
    assert ds.captions(0) == ["a red picture", "still red"]
    assert ds.get_item(1, 0)["image"].shape == (3, 16, 16)
    assert ds.all_captions() == ["a red picture", "still red", "a grey one"]
    empty = tmp_path / "nocaps"
    save_image(empty / "x.jpg", "red")
    with pytest.raises(T2IError, match="no image with a same-name .txt"):
        ImageFolderCaptions(empty)
    (root / "a.txt").write_text("\n . \n")
    with pytest.raises(T2IError, match="a.txt has no caption"):
        ImageFolderCaptions(root)


def test_jsonl_manifest(tmp_path):
    save_image(tmp_path / "data" / "imgs" / "one.png", "red")  # relative to the manifest's folder
    save_image(tmp_path / "elsewhere" / "two.jpg", "blue")  # absolute
    lines = [
        json.dumps({"image": "imgs/one.png", "captions": ["a red square", "red again"]}),
        "",
        json.dumps({"image": str(tmp_path / "elsewhere" / "two.jpg"), "caption": "a blue square", "class_id": 4}),
    ]
    manifest = tmp_path / "data" / "train.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    ds = JSONLManifest(manifest, image_size=16)
    assert len(ds) == 2 and ds.captions(1) == ["a blue square"] and ds.class_ids == [-1, 4]
    assert ds.keys[0] == "imgs/one.png"
    assert ds.get_item(0, 1)["image"][0].mean() > 0.9
    manifest.write_text(lines[0] + "\n\n{not json\n")
    with pytest.raises(T2IError, match=r"train.jsonl:3: not valid JSON"):
        JSONLManifest(manifest)
    manifest.write_text(json.dumps({"image": "imgs/one.png", "captions": [1, 2]}) + "\n")
    with pytest.raises(T2IError, match=r"train.jsonl:1: \"captions\" must be a list"):
        JSONLManifest(manifest)
    manifest.write_text(json.dumps({"image": "imgs/three.png", "caption": "x"}) + "\n")
    with pytest.raises(T2IError, match=r"three.png \(.*train.jsonl:1\)"):
        JSONLManifest(manifest)


# ----------------------------------------------------------------------------- images and transforms


def test_load_rgb_converts_modes_and_reports_corrupt_files(tmp_path):
    save_image(tmp_path / "cmyk.jpg", (0, 255, 255, 0), mode="CMYK")  # cyan-free, magenta+yellow: red
    save_image(tmp_path / "pal.png", 3, mode="P")
    save_image(tmp_path / "rgba.png", (10, 20, 30, 0), mode="RGBA")
    for name in ("cmyk.jpg", "pal.png", "rgba.png"):
        assert load_rgb(tmp_path / name).mode == "RGB"
    r, g, b = np.asarray(load_rgb(tmp_path / "cmyk.jpg")).reshape(-1, 3).mean(0)
    assert r > 200 and g < 50 and b < 50
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(T2IError, match=f"cannot read image {tmp_path / 'bad.png'}"):
        load_rgb(tmp_path / "bad.png")
    with pytest.raises(T2IError, match="cannot read image"):
        load_rgb(tmp_path / "absent.jpg")


def test_image_transform_resize_crop_flip():
    assert resize_shorter_side(Image.new("RGB", (100, 50)), 76).size == (152, 76)
    assert resize_shorter_side(Image.new("RGB", (50, 120)), 76).size == (76, 182)
    # left half black, right half white: the centre crop of a 64 px target keeps the split in the middle
    array = np.zeros((76, 76, 3), np.uint8)
    array[:, 38:] = 255
    ev = ImageTransform(64, train=False)
    out = ev.finish(array)
    assert out.shape == (3, 64, 64) and out[:, :, :32].max() == -1 and out[:, :, 32:].min() == 1
    tr = ImageTransform(64, train=True)
    random.seed(0)
    left_means = {round(tr.finish(array)[:, :, :8].mean().item(), 3) for _ in range(40)}
    assert -1.0 in left_means and 1.0 in left_means  # flipped some of the time
    assert ImageTransform(256).load_size == 304 and ImageTransform(64).load_size == 76


# ----------------------------------------------------------------------------- AttnGAN captions.pickle


def test_read_attngan_captions_and_vocabulary(tmp_path):
    ixtoword = {0: "<end>", 1: "this", 2: "bird", 3: "is", 4: "red"}
    wordtoix = {w: i for i, w in ixtoword.items()}
    train, test = [[1, 2, 3, 4], [2, 4]], [[1, 2]]
    path = tmp_path / "captions.pickle"
    with open(path, "wb") as f:
        pickle.dump([train, test, ixtoword, wordtoix], f, protocol=2)
    tr, te, i2w, w2i = read_attngan_captions(path)
    assert tr == train and te == test and w2i == wordtoix
    vocab = vocabulary_from_attngan(i2w)
    assert vocab.words == ["<pad>", "this", "bird", "is", "red"] and vocab.unk_id is None
    assert vocab.encode("This zebra bird is RED") == [1, 2, 3, 4]  # unknown words dropped, as AttnGAN does
    assert vocab.decode(train[0]) == "this bird is red"
    with open(path, "wb") as f:
        pickle.dump({"not": "a list"}, f)
    with pytest.raises(T2IError, match="captions.pickle"):
        read_attngan_captions(path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    with open(path, "wb") as f:
        pickle.dump([Evil(), [], {}, {}], f)
    with pytest.raises(T2IError, match="refused"):
        read_attngan_captions(path)


# ----------------------------------------------------------------------------- factory


def test_build_dataset_names_and_errors(tmp_path):
    with pytest.raises(T2IError, match="unknown data set 'birds'.*shapes, cub, flowers, coco, folder, jsonl"):
        build_dataset("birds", root=tmp_path)
    with pytest.raises(T2IError, match=str(tmp_path / "nowhere")):
        build_dataset("cub", root=tmp_path / "nowhere")
    with pytest.raises(T2IError, match="needs a root"):
        build_dataset("coco")
    shapes = build_dataset("shapes", split="test", image_size=32, num_images=3, random_caption=False)
    assert len(shapes) == 3 and shapes[0]["image"].shape == (3, 32, 32)

    cub = build_dataset("cub", root=cub_root(), split="train", filenames=TRAIN_KEYS)
    assert isinstance(cub, CUBDataset) and len(cub) == 3 and cub.transform.train
    with pytest.raises(T2IError, match="bad arguments for data set 'cub'.*filenamez"):
        build_dataset("cub", root=cub_root(), filenamez=TRAIN_KEYS)

    save_image(tmp_path / "f" / "train" / "a.png", "red")
    (tmp_path / "f" / "train" / "a.txt").write_text("red\n")
    save_image(tmp_path / "f" / "test" / "b.png", "blue")
    (tmp_path / "f" / "test" / "b.txt").write_text("blue\n")
    train, test = (build_dataset("folder", root=tmp_path / "f", split=s) for s in ("train", "test"))
    assert train.keys == ["a.png"] and test.keys == ["b.png"]
    assert train.transform.train and not test.transform.train and not test.random_caption

    (tmp_path / "f" / "test.jsonl").write_text(json.dumps({"image": "test/b.png", "caption": "blue"}) + "\n")
    assert build_dataset("jsonl", root=tmp_path / "f", split="test").captions(0) == ["blue"]
    with pytest.raises(T2IError, match="train.jsonl"):
        build_dataset("jsonl", root=tmp_path / "f", split="train")


def test_build_dataset_attaches_caption_embeddings_by_split_row(tmp_path):
    """Reed et al.'s embeddings follow <split>/filenames.pickle: a subset must pick its own rows."""
    root = cub_root()
    rows = 8855
    emb = np.arange(rows, dtype=np.float32)[:, None, None] * 10 + np.arange(10, dtype=np.float32)[None, :, None]
    path = tmp_path / "emb.pickle"
    with open(path, "wb") as f:
        pickle.dump(np.repeat(emb, 3, axis=2), f)  # (8855, 10, 3): value = 10 * row + caption
    ds = build_dataset("cub", root=root, split="train", filenames=TRAIN_KEYS[::-1], caption_embeddings=path,
                       random_caption=False)
    assert ds.split_rows == [2, 1, 0]  # the first three entries of train/filenames.pickle, reversed
    item = ds[0]  # caption 0 of the first image, which is row 2
    assert item["key"] == TRAIN_KEYS[2] and item["sent_emb"].tolist() == [20.0] * 3
    assert ds.sentence_embedding(0, 7).tolist() == [27.0] * 3
    assert len(ds.all_captions()) == 30  # the base data set's API passes through
    test_key = "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18"  # a test-split image
    with pytest.raises(T2IError, match="has no embedding for 001.Black_footed_Albatross"):
        build_dataset("cub", root=root, split="train", filenames=[test_key], caption_embeddings=path)
