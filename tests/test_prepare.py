"""``t2igan data prepare``: small archives in the published structure (a few images and captions made
here) prepared end to end, corrupt and partial archives, resumable downloads from a local server.

The archives copy the layout of the real ones: ``CUB_200_2011.tgz`` (``CUB_200_2011/images/<class>/
<name>.jpg``, ``images.txt``, ``bounding_boxes.txt``, ... and a top-level ``attributes.txt``), AttnGAN's
``birds.zip`` (``birds/`` with ``text.zip`` inside, ``train|test/filenames.pickle``, ``class_info.pickle``,
``captions.pickle``, macOS ``__MACOSX`` debris), the COCO-2014 zips and the Oxford-102 / Reed et al. /
StackGAN flowers archives. The real CUB subset (../shared) goes through it too.
"""

import dataclasses
import hashlib
import io
import json
import os
import pickle
import re
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from t2igan.data import prepare as prep
from t2igan.data.coco import COCODataset
from t2igan.data.cub import CUBDataset, Flowers102Dataset
from t2igan.data.datasets import build_dataset
from t2igan.data.pickles import safe_pickle_load
from t2igan.errors import T2IError

CAPTIONS = [f"this bird number {i} has a short beak and {c} wings" for i, c in enumerate(
    ["brown", "grey", "white", "black", "red", "blue", "green", "yellow", "orange", "pink"])]
TRAIN = ["002.Laysan_Albatross/Laysan_Albatross_0002_1027", "002.Laysan_Albatross/Laysan_Albatross_0003_1033",
         "003.Sooty_Albatross/Sooty_Albatross_0001_1071"]
TEST = ["001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111",
        "001.Black_footed_Albatross/Black_Footed_Albatross_0002_55"]
EXTRA = "004.Groove_billed_Ani/Groove_Billed_Ani_0001_1733"  # in the image archive, in no split list


def jpeg(seed: int, size=(64, 48)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = (rng.random((size[1], size[0], 3)) * 60 + rng.integers(0, 190, 3)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_tgz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            add(tar, name, data)
    return path


def write_zip(path_or_buf, files: dict[str, bytes]):
    with zipfile.ZipFile(path_or_buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path_or_buf


def pickled(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


def cub_archives(folder: Path, images: dict[str, bytes] | None = None, captions: dict[str, str] | None = None,
                 text_zip: bool = True, vocab: bool = True) -> tuple[Path, Path]:
    """``CUB_200_2011.tgz`` and ``birds.zip`` of the published structure for TRAIN + TEST (+ EXTRA)."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = TEST + TRAIN + [EXTRA]
    images = images if images is not None else {k: jpeg(i) for i, k in enumerate(keys)}
    captions = captions if captions is not None else {k: "\n".join(CAPTIONS) + "\n" for k in keys}
    files = {"attributes.txt": b"1 has_bill_shape::curved_(up_or_down)\n"}
    for n, key in enumerate(keys, 1):
        if key in images:
            files[f"CUB_200_2011/images/{key}.jpg"] = images[key]
    files["CUB_200_2011/images.txt"] = "".join(f"{n} {k}.jpg\n" for n, k in enumerate(keys, 1)).encode()
    files["CUB_200_2011/bounding_boxes.txt"] = "".join(f"{n} 4.0 3.0 40.0 30.0\n" for n in range(1, len(keys) + 1)).encode()
    files["CUB_200_2011/classes.txt"] = b"1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n"
    files["CUB_200_2011/image_class_labels.txt"] = "".join(f"{n} {int(k[:3])}\n" for n, k in enumerate(keys, 1)).encode()
    files["CUB_200_2011/train_test_split.txt"] = "".join(f"{n} 1\n" for n in range(1, len(keys) + 1)).encode()
    files["CUB_200_2011/README"] = b"CUB-200-2011\n"
    files["CUB_200_2011/parts/parts.txt"] = b"1 back\n"
    tgz = write_tgz(folder / "CUB_200_2011.tgz", files)

    text = {f"text/{k}.txt": v.encode() for k, v in captions.items() if k != EXTRA}
    birds = {"birds/readme.txt": b"1. extract text.zip to text\n", "__MACOSX/birds/._captions.pickle": b"\x00junk",
             "birds/example_filenames.txt": b"example_captions\n"}
    if text_zip:
        birds["birds/text.zip"] = write_zip(io.BytesIO(), text).getvalue()
    for split, keys_ in (("train", TRAIN), ("test", TEST)):
        birds[f"birds/{split}/filenames.pickle"] = pickled(keys_)
        birds[f"birds/{split}/class_info.pickle"] = pickled([int(k[:3]) for k in keys_])
    if vocab:
        words = sorted({w for c in CAPTIONS for w in c.split()})
        ixtoword = {0: "<end>", **{i + 1: w for i, w in enumerate(words)}}
        wordtoix = {w: i for i, w in ixtoword.items()}
        encode = [[wordtoix[w] for w in c.split()] for c in CAPTIONS]
        birds["birds/captions.pickle"] = pickled([encode * len(TRAIN), encode * len(TEST), ixtoword, wordtoix])
    return tgz, write_zip(folder / "birds.zip", birds)


def run_cli(*args):
    """``python -m t2igan ARGS`` in a new process, offline."""
    return subprocess.run([sys.executable, "-m", "t2igan", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "T2IGAN_OFFLINE": "1"}, timeout=300)


@pytest.fixture
def cli(capsys, monkeypatch):
    """``cli(*args) -> (status, stdout, stderr)``: the command line in this process (its one error
    boundary included), offline."""
    from t2igan.cli import main

    monkeypatch.setenv("T2IGAN_OFFLINE", "1")

    def run(*args):
        capsys.readouterr()
        try:
            status = main([str(a) for a in args])
        except SystemExit as e:  # a usage error, from argparse
            status = e.code
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def no_leftovers(out: Path) -> None:
    """No output folder and no hidden partial folder beside it."""
    assert not out.exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def quiet(**kw):
    return dict(offline=True, progress=False, log=lambda line: None, **kw)


# ----------------------------------------------------------------------------- CUB end to end


def test_cub_archives_prepare_end_to_end_through_the_cli(tmp_path, cli):
    tgz, birds = cub_archives(tmp_path / "downloads")
    out = tmp_path / "data" / "birds"
    r = run_cli("data", "prepare", "cub", birds, tgz, "-o", out, "--no-hash-check", "--no-progress",
                "--download-dir", tmp_path / "empty")
    assert r.returncode == 0, r.stderr
    assert "train: 3 of 3 listed images kept" in r.stdout and "test: 2 of 2 listed images kept" in r.stdout
    assert "1 images in the sources are in no split list (not copied)" in r.stdout
    assert "CUB_200_2011.tgz: hash check skipped (--no-hash-check); contents checked" in r.stdout
    assert "left out" not in r.stdout and not (out / prep.LEFT_OUT).exists()
    record = json.loads((out / prep.MARKER).read_text())
    assert record["splits"] == {"train": {"listed": 3, "kept": 3, "left_out": {}},
                                "test": {"listed": 2, "kept": 2, "left_out": {}}}
    assert [s["name"] for s in record["sources"]] == ["birds.zip", "CUB_200_2011.tgz"]
    # nothing left out: the published files unchanged, the images byte for byte
    with zipfile.ZipFile(birds) as zf:
        assert (out / "train/filenames.pickle").read_bytes() == zf.read("birds/train/filenames.pickle")
        assert (out / "captions.pickle").read_bytes() == zf.read("birds/captions.pickle")
    with tarfile.open(tgz) as tar:
        assert (out / f"CUB_200_2011/images/{TRAIN[0]}.jpg").read_bytes() == \
            tar.extractfile(f"CUB_200_2011/images/{TRAIN[0]}.jpg").read()
    assert not (out / f"CUB_200_2011/images/{EXTRA}.jpg").exists()
    assert not list(out.rglob("._*")) and not (out / "__MACOSX").exists()
    # the layout the dfgan-cub preset reads
    train = build_dataset("cub", out, "train", image_size=64)
    assert train.keys == TRAIN and train.class_ids == [2, 2, 3] and train.captions(0) == CAPTIONS
    item = build_dataset("cub", out, "test", image_size=64)[1]
    assert item["image"].shape == (3, 64, 64) and item["key"] == TEST[1]
    # a second run finds it prepared and leaves it alone
    status, text, _ = cli("data", "prepare", "cub", birds, tgz, "-o", out, "--no-hash-check", "--no-progress")
    assert status == 0 and f"{out} is already prepared (PREPARED.json); --force prepares it again" in text


def test_cub_leaves_out_broken_items_with_reasons_and_filters_every_split_file(tmp_path):
    images = {k: jpeg(i) for i, k in enumerate(TEST + TRAIN)}
    images[TRAIN[1]] = images[TRAIN[1]][:300]  # truncated JPEG
    del images[TEST[0]]  # listed, not in the archive
    captions = {k: "\n".join(CAPTIONS) + "\n" for k in TEST + TRAIN}
    captions[TRAIN[2]] = "\n".join(CAPTIONS[:6]) + "\n\n \n"  # six captions
    tgz, birds = cub_archives(tmp_path / "dl", images=images, captions=captions)
    out = tmp_path / "birds"
    lines = []
    record = prep.prepare("cub", [tgz, birds], out, download_dir=tmp_path / "empty", hash_check=False,
                          offline=True, progress=False, log=lines.append)
    train = record["splits"]["train"]
    assert (train["listed"], train["kept"], train["left_out"]["caption file has fewer than 10 captions"]) == (3, 1, 1)
    assert [n for reason, n in train["left_out"].items() if reason.startswith("corrupt image (")] == [1]
    assert record["splits"]["test"]["left_out"] == {"image not in the sources": 1}
    text = "\n".join(lines)
    assert "train: 1 of 3 listed images kept; left out: " in text and "test: 1 of 2 listed images kept" in text
    rows = (out / prep.LEFT_OUT).read_text().splitlines()
    assert rows[0] == "split\tkey\treason" and f"test\t{TEST[0]}\timage not in the sources" in rows
    # the split lists and class ids name the kept images only, so the preset's loader needs no option
    assert safe_pickle_load(out / "train/filenames.pickle") == [TRAIN[0]]
    assert safe_pickle_load(out / "train/class_info.pickle") == [2]
    assert CUBDataset(out, "train").keys == [TRAIN[0]] and CUBDataset(out, "test").keys == [TEST[1]]
    assert not (out / f"CUB_200_2011/images/{TRAIN[1]}.jpg").exists() and not (out / f"text/{TRAIN[2]}.txt").exists()


def test_cub_with_stackgan_embeddings_beside_attngan_metadata(tmp_path):
    """StackGAN's birds archive (same split lists, pickled differently, plus char-CNN-RNN embeddings) can
    be given beside AttnGAN's; lists that disagree are refused."""
    tgz, birds = cub_archives(tmp_path / "dl")
    emb = np.random.default_rng(0).random((3, 10, 8)).astype(np.float32)
    stackgan = write_zip(tmp_path / "dl" / "stackgan_birds.zip", {
        "birds/train/filenames.pickle": pickle.dumps([k.encode() for k in TRAIN], protocol=0),
        "birds/train/class_info.pickle": pickled([np.int64(int(k[:3])) for k in TRAIN]),
        "birds/train/char-CNN-RNN-embeddings.pickle": pickled(emb)})
    out = tmp_path / "birds"
    prep.prepare("cub", [tgz, birds, stackgan], out, **quiet(hash_check=False, download_dir=tmp_path / "e"))
    ds = build_dataset("cub", out, "train", caption_embeddings="char-CNN-RNN-embeddings.pickle", random_caption=False,
                       train_transform=False)
    assert np.array_equal(ds[2]["sent_emb"].numpy(), emb[2, 0])
    other = write_zip(tmp_path / "other.zip", {"birds/train/filenames.pickle": pickled(TRAIN[::-1])})
    with pytest.raises(T2IError, match=r"two different birds/train/filenames\.pickle: .*birds\.zip: .* and "
                                       r".*other\.zip: birds/train/filenames\.pickle; pass only one of them"):
        prep.prepare("cub", [tgz, birds, other], tmp_path / "b2", **quiet(hash_check=False, download_dir=tmp_path / "e"))
    no_leftovers(tmp_path / "b2")


def test_cub_captions_rebuilt_from_captions_pickle_when_birds_zip_has_no_text(tmp_path):
    tgz, birds = cub_archives(tmp_path / "dl", text_zip=False)
    out = tmp_path / "birds"
    record = prep.prepare("cub", [tgz, birds], out, **quiet(hash_check=False, download_dir=tmp_path / "e"))
    assert record["splits"]["train"]["kept"] == 3
    assert any("5 caption files rebuilt from captions.pickle" in n for n in record["notes"])
    assert CUBDataset(out, "train").captions(0) == CAPTIONS  # lower case, no punctuation: the same tokens


def test_an_unpacked_folder_and_a_prepared_one_are_sources_too(tmp_path):
    tgz, birds = cub_archives(tmp_path / "dl")
    tree = tmp_path / "unpacked"
    with tarfile.open(tgz) as tar:
        tar.extractall(tree, filter="data")
    with zipfile.ZipFile(birds) as zf:
        zf.extractall(tree)
    with zipfile.ZipFile(tree / "birds/text.zip") as zf:
        zf.extractall(tree / "birds")
    out = tmp_path / "birds"
    record = prep.prepare("cub", [tree], out, **quiet(download_dir=tmp_path / "e"))
    assert record["sources"][0]["check"] == "folder; contents checked"
    assert [record["splits"][s]["kept"] for s in ("train", "test")] == [3, 2]
    # the output itself is a folder in the layout: preparing from it gives the same lists
    again = prep.prepare("cub", [out], tmp_path / "birds2", **quiet(download_dir=tmp_path / "e"))
    assert again["splits"] == record["splits"]


@pytest.mark.slow
def test_the_real_subset_folder_prepares_and_loads_with_the_dfgan_cub_data_config(tmp_path):
    """The shared CUB subset (already in the layout, 1,258 of the 11,788 images) goes through prepare;
    the dfgan-cub preset's data config then reads the result with no extra option."""
    from t2igan.config import resolve_config

    subset = Path(os.environ.get("T2IGAN_CUB_SUBSET", Path(__file__).resolve().parents[2] / "shared/data/cub_birds_subset"))
    assert (subset / "CUB_200_2011/images").is_dir(), f"the shared CUB subset is missing: {subset}"
    out = tmp_path / "birds"
    lines = []
    record = prep.prepare("cub", [subset], out, offline=True, progress=False, log=lines.append,
                          download_dir=tmp_path / "empty")
    assert record["splits"] == {"train": {"listed": 8855, "kept": 275, "left_out": {"image not in the sources": 8580}},
                                "test": {"listed": 2933, "kept": 983, "left_out": {"image not in the sources": 1950}}}
    assert "  train: 275 of 8,855 listed images kept; left out: 8,580 image not in the sources" in lines
    assert safe_pickle_load(out / "train/filenames.pickle") == \
        (subset / "subset_train_filenames.txt").read_text().split()
    data = resolve_config("dfgan-cub", [f"data.root={out}", "data.image_size=64"]).data
    train = build_dataset(data.dataset, root=data.root, split="train", image_size=data.image_size, **data.train_args)
    test = build_dataset(data.dataset, root=data.root, split="test", image_size=data.image_size, **data.test_args)
    assert (len(train), len(test)) == (275, 983)
    item = test[0]
    assert item["image"].shape == (3, 64, 64) and item["class_id"] == 1 and len(test.captions(0)) == 10


def test_the_output_must_not_be_a_source_or_an_unprepared_folder(tmp_path):
    tgz, birds = cub_archives(tmp_path / "dl")
    with pytest.raises(T2IError, match="overlap: choose another -o"):
        prep.prepare("cub", [tmp_path / "dl"], tmp_path / "dl", **quiet(hash_check=False))
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(T2IError, match=r"taken exists and is not a prepared data set \(no PREPARED.json\)"):
        prep.prepare("cub", [tgz, birds], taken, **quiet(hash_check=False))
    assert (taken / "notes.txt").read_text() == "mine"
    # --force replaces a prepared folder (and only such a folder)
    out = tmp_path / "birds"
    prep.prepare("cub", [tgz, birds], out, **quiet(hash_check=False, download_dir=tmp_path / "e"))
    (out / "stray.txt").write_text("x")
    prep.prepare("cub", [tgz, birds], out, **quiet(hash_check=False, force=True, download_dir=tmp_path / "e"))
    assert not (out / "stray.txt").exists() and (out / prep.MARKER).is_file()
    no_leftovers(tmp_path / "nothing")


# ----------------------------------------------------------------------------- bad archives: one line, no output


@pytest.mark.parametrize("damage", ["truncated tgz", "corrupt tgz", "truncated zip", "corrupt zip member",
                                    "not an archive", "published name, other md5"])
def test_bad_archives_are_one_error_line_and_leave_nothing(tmp_path, cli, damage):
    tgz, birds = cub_archives(tmp_path / "dl")
    flags = ["--no-hash-check"]
    if damage == "truncated tgz":
        tgz.write_bytes(tgz.read_bytes()[: tgz.stat().st_size // 2])
        expect = r"CUB_200_2011\.tgz is damaged or incomplete \(.*\); download it again"
    elif damage == "corrupt tgz":
        data = bytearray(tgz.read_bytes())
        for i in range(len(data) // 3, len(data) // 3 + 64):
            data[i] ^= 0x5A
        tgz.write_bytes(bytes(data))
        expect = r"CUB_200_2011\.tgz is damaged or incomplete"
    elif damage == "truncated zip":
        birds.write_bytes(birds.read_bytes()[:-200])
        expect = r"birds\.zip is damaged or incomplete"
    elif damage == "corrupt zip member":
        data = bytearray(birds.read_bytes())
        at = data.find(b"birds/text.zip") + 200  # inside the compressed captions
        data[at: at + 32] = bytes(b ^ 0xFF for b in data[at: at + 32])
        birds.write_bytes(bytes(data))
        expect = r"birds\.zip(:birds/text\.zip)? is damaged or incomplete"
    elif damage == "not an archive":
        birds.write_bytes(b"<html>Google Drive can't scan this file for viruses</html>")
        expect = r"birds\.zip is not a tar or zip archive"
    else:
        flags = []
        expect = (r"CUB_200_2011\.tgz: md5 [0-9a-f]{32} is not the published 97eceeb196236b17998738112f37df78 \(a "
                  r"damaged or different copy\): download it again from https://data\.caltech\.edu/records/65de6-vp158/"
                  r"files/CUB_200_2011\.tgz\?download=1, or pass --no-hash-check to use it anyway$")
    out = tmp_path / "data" / "birds"
    status, _, err = cli("data", "prepare", "cub", tgz, birds, "-o", out, "--no-progress", *flags,
                         "--download-dir", tmp_path / "empty")
    errors = [ln for ln in err.splitlines() if ln.strip()]
    assert status == 2 and len(errors) == 1 and errors[0].startswith("error: "), err
    assert re.search(expect, errors[0]), errors[0]
    no_leftovers(out)


def test_offline_without_the_archives_names_the_urls_and_where_to_put_them(tmp_path, cli):
    out = tmp_path / "birds"
    status, _, err = cli("data", "prepare", "cub", "-o", out, "--download-dir", tmp_path / "dl")
    assert status == 2
    assert err.strip() == (
        "error: downloads are off (--offline or T2IGAN_OFFLINE=1); get CUB_200_2011.tgz from "
        "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1; get birds.zip from "
        f"https://drive.google.com/file/d/1O_LtUP9sch09QH3s_EBAgLEctBQ5JBSJ/view; put them in {tmp_path / 'dl'} "
        "or pass their paths")
    no_leftovers(out)
    # an archive that lacks what it should hold is not fetched again: one line says what is missing
    tgz, _ = cub_archives(tmp_path / "dl2")
    empty_birds = write_zip(tmp_path / "dl2" / "birds.zip", {"birds/readme.txt": b"hi"})
    status, out_text, err = cli("data", "prepare", "cub", tgz, empty_birds, "-o", out, "--no-hash-check",
                                "--no-progress")
    assert status == 2 and err.startswith("error: the sources lack the split lists train/filenames.pickle and "
                                          "test/filenames.pickle: birds.zip (AttnGAN's birds metadata")
    assert f"note: nothing in {empty_birds} belongs to cub" in out_text
    no_leftovers(out)


def test_an_interrupted_run_leaves_nothing_and_a_killed_one_is_cleaned_up(tmp_path, monkeypatch):
    tgz, birds = cub_archives(tmp_path / "dl")
    out = tmp_path / "birds"
    stale = tmp_path / ".birds.partial-999999999"  # a run killed earlier (no such process)
    (stale / "CUB_200_2011").mkdir(parents=True)

    def interrupted(found, progress):
        raise KeyboardInterrupt

    monkeypatch.setitem(prep.BUILDERS, "cub", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prep.prepare("cub", [tgz, birds], out, **quiet(hash_check=False, download_dir=tmp_path / "e"))
    no_leftovers(out)
    assert not stale.exists()


# ----------------------------------------------------------------------------- downloads


class Server:
    """A local HTTP server for one file: ranges, a connection cut after ``cut`` bytes, an HTML answer."""

    def __init__(self, body: bytes):
        self.body, self.cut, self.html, self.requests = body, None, False, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append(rng)
                if server.html:
                    page = b"<html>confirm</html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start >= len(server.body):
                    self.send_response(416)
                    self.end_headers()
                    return
                data = server.body[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.body) - 1}/{len(server.body)}")
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if server.cut is not None:
                    data, server.cut = data[: server.cut], None
                    self.close_connection = True
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_resumes_checks_the_md5_and_prepares(tmp_path, monkeypatch):
    tgz, birds = cub_archives(tmp_path / "built")
    body = tgz.read_bytes()
    server = Server(body)
    try:
        archive = dataclasses.replace(prep.ARCHIVES["cub"][0], url=server.url, md5=hashlib.md5(body).hexdigest())
        monkeypatch.setitem(prep.ARCHIVES, "cub", (archive, prep.ARCHIVES["cub"][1]))
        monkeypatch.delenv("T2IGAN_OFFLINE", raising=False)
        downloads, out = tmp_path / "downloads", tmp_path / "birds"
        server.cut = len(body) // 3
        with pytest.raises(T2IError, match=r"the download of CUB_200_2011\.tgz broke off after .*; run the command "
                                           r"again to resume it, or download it from http://127\.0\.0\.1"):
            prep.prepare("cub", [birds], out, download_dir=downloads, progress=False, log=lambda s: None)
        assert (downloads / "CUB_200_2011.tgz.part").stat().st_size == len(body) // 3
        assert not (downloads / "CUB_200_2011.tgz").exists()
        no_leftovers(out)
        record = prep.prepare("cub", [birds], out, download_dir=downloads, progress=False, log=lambda s: None)
        assert server.requests[-1] == f"bytes={len(body) // 3}-"  # resumed, not started again
        assert (downloads / "CUB_200_2011.tgz").read_bytes() == body and not (downloads / "CUB_200_2011.tgz.part").exists()
        assert record["sources"][-1]["check"] == "md5 matches the published one"
        assert record["splits"]["train"]["kept"] == 3
        # a finished download in the download folder is found (and hash-checked) by the next run
        again = prep.prepare("cub", [birds], tmp_path / "birds2", download_dir=downloads, offline=True,
                             progress=False, log=lambda s: None)
        assert again["sources"][1]["name"] == "CUB_200_2011.tgz"
    finally:
        server.close()


def test_download_with_a_wrong_md5_or_a_web_page_is_refused(tmp_path):
    from t2igan.data.download import Archive, download

    server = Server(b"x" * 5000)
    try:
        archive = Archive("thing.tgz", "a thing", server.url, md5="0" * 32)
        with pytest.raises(T2IError, match=r"the downloaded thing\.tgz has md5 [0-9a-f]{32}, not the published 0{32}; "
                                           r"it was removed: run the command again"):
            download(archive, tmp_path, progress=False)
        assert not list(tmp_path.iterdir())
        server.html = True
        with pytest.raises(T2IError, match=r"answered with a web page, not thing\.tgz .*; download it from "
                                           r"http://127\.0\.0\.1.* and put it at .*thing\.tgz"):
            download(dataclasses.replace(archive, md5=None), tmp_path, progress=False)
    finally:
        server.close()
    with pytest.raises(T2IError, match=r"could not download thing\.tgz \(.*\); download it from http://127"):
        download(archive, tmp_path, progress=False, timeout=5)  # the server is gone


# ----------------------------------------------------------------------------- COCO and Oxford-102


def coco_json(part: str, n: int, short: int | None = None) -> bytes:
    images = [{"id": i, "file_name": f"COCO_{part}2014_{i:012d}.jpg", "height": 48, "width": 64} for i in range(1, n + 1)]
    anns = [{"id": 100 * i + j, "image_id": i, "caption": f"a photo of thing {i} number {j}."}
            for i in range(1, n + 1) for j in range(4 if i == short else 5)]
    return json.dumps({"info": {"year": 2014}, "licenses": [], "images": images, "annotations": anns}).encode()


def test_coco_zips_prepare_and_load(tmp_path):
    dl = tmp_path / "dl"
    dl.mkdir()
    write_zip(dl / "train2014.zip", {f"train2014/COCO_train2014_{i:012d}.jpg": jpeg(i) for i in range(1, 5)})
    write_zip(dl / "val2014.zip", {f"val2014/COCO_val2014_{i:012d}.jpg": jpeg(10 + i) for i in range(1, 4)})
    write_zip(dl / "annotations_trainval2014.zip", {
        "annotations/captions_train2014.json": coco_json("train", 4, short=2),
        "annotations/captions_val2014.json": coco_json("val", 3),
        "annotations/instances_train2014.json": b"{}"})
    out = tmp_path / "coco"
    lines = []
    record = prep.prepare("coco", [dl], out, hash_check=False, offline=True, progress=False, log=lines.append,
                          download_dir=tmp_path / "e")
    assert record["splits"]["train"] == {"listed": 4, "kept": 3, "left_out": {"fewer than 5 captions": 1}}
    assert record["splits"]["test"] == {"listed": 3, "kept": 3, "left_out": {}}
    assert not (out / "annotations/instances_train2014.json").exists()
    train = COCODataset(out, "train")  # the filtered JSON: no skip_missing needed
    assert train.keys == [f"COCO_train2014_{i:012d}.jpg" for i in (1, 3, 4)] and len(train.captions(0)) == 5
    assert build_dataset("coco", out, "test", image_size=32)[2]["image"].shape == (3, 32, 32)
    with zipfile.ZipFile(dl / "annotations_trainval2014.zip") as zf:  # nothing left out: unchanged
        assert (out / "annotations/captions_val2014.json").read_bytes() == zf.read("annotations/captions_val2014.json")
    assert not (out / "train2014/COCO_train2014_000000000002.jpg").exists()


def flowers_archives(folder: Path, stackgan: bool) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    classes = {1: [6734, 6735], 2: [100, 101], 3: [3000]}  # classes 1, 2 train+val; 3 test
    images = {n: c for c, ns in classes.items() for n in ns}
    tgz = write_tgz(folder / "102flowers.tgz", {f"jpg/image_{n:05d}.jpg": jpeg(n) for n in images})
    reed = {f"cvpr2016_flowers/text_c10/class_{c:05d}/image_{n:05d}.txt":
            ("\n".join(f"this flower {n} has {k} petals" for k in range(10)) + "\n").encode() for n, c in images.items()}
    reed["cvpr2016_flowers/text_c10/class_00001/image_06734.h5"] = b"\x89HDF"
    reed["cvpr2016_flowers/trainvalclasses.txt"] = b"class_00001\nclass_00002\n"
    reed["cvpr2016_flowers/testclasses.txt"] = b"class_00003\n"
    reed["cvpr2016_flowers/allclasses.txt"] = b"class_00001\nclass_00002\nclass_00003\n"
    paths = [tgz, write_tgz(folder / "cvpr2016_flowers.tar.gz", reed)]
    if stackgan:
        train = ["jpg/image_00100", "jpg/image_06734", "jpg/image_09999", "jpg/image_06735"]  # 09999: no such image
        emb = np.arange(4 * 10 * 6, dtype=np.float32).reshape(4, 10, 6)
        paths.append(write_zip(folder / "flowers.zip", {
            "flowers/train/filenames.pickle": pickled(train), "flowers/train/char-CNN-RNN-embeddings.pickle": pickled(emb),
            "flowers/train/class_info.pickle": pickled([2, 1, 1, 1]),
            "flowers/test/filenames.pickle": pickled(["jpg/image_03000"]),
            "flowers/test/char-CNN-RNN-embeddings.pickle": pickled(emb[:1])}))
    return paths


def test_flowers_from_reed_class_lists_and_from_stackgan_lists_with_embeddings(tmp_path):
    out = tmp_path / "flowers"
    record = prep.prepare("flowers", flowers_archives(tmp_path / "dl", stackgan=False), out,
                          **quiet(hash_check=False, download_dir=tmp_path / "e"))
    assert [record["splits"][s]["kept"] for s in ("train", "test")] == [4, 1]
    ds = Flowers102Dataset(out, "train")
    assert ds.keys == ["class_00001/image_06734", "class_00001/image_06735", "class_00002/image_00100",
                       "class_00002/image_00101"] and ds.class_ids == [1, 1, 2, 2]
    assert not (out / "text_c10/class_00001/image_06734.h5").exists()

    out2 = tmp_path / "flowers2"
    record = prep.prepare("flowers", flowers_archives(tmp_path / "dl2", stackgan=True), out2,
                          **quiet(hash_check=False, download_dir=tmp_path / "e"))
    assert record["splits"]["train"] == {"listed": 4, "kept": 3, "left_out": {"image not in the sources": 1}}
    assert safe_pickle_load(out2 / "train/filenames.pickle") == ["jpg/image_00100", "jpg/image_06734", "jpg/image_06735"]
    emb = np.arange(4 * 10 * 6, dtype=np.float32).reshape(4, 10, 6)
    rows = safe_pickle_load(out2 / "train/char-CNN-RNN-embeddings.pickle")
    assert np.array_equal(rows, emb[[0, 1, 3]])  # the row of the missing image went with it
    ds = build_dataset("flowers", out2, "train", image_size=32, caption_embeddings="char-CNN-RNN-embeddings.pickle",
                       train_transform=False, random_caption=False)
    item = ds[2]
    assert item["key"] == "jpg/image_06735" and np.array_equal(item["sent_emb"].numpy(), emb[3, 0])


def test_data_sources_lists_urls_and_checksums(cli):
    status, out, _ = cli("data", "sources", "coco")
    assert status == 0
    assert "train2014.zip: COCO-2014 training images; 12.6 GiB, md5 0da8c0bd3d6becc4dcb32757491aca88" in out
    assert "http://images.cocodataset.org/annotations/annotations_trainval2014.zip" in out
    assert "coco.zip" in out and "[optional: used when given, never downloaded]" in out
    status, _, err = cli("data", "prepare", "birds")
    assert status == 2 and err.startswith("error: argument dataset: invalid choice: 'birds'")
