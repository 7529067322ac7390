"""The Python API and the command line as a user of diffusers-style tools expects them: a caption or a
list, ``.to()``, ``generator=``, a readable repr, config overrides as a mapping; on the command line
warnings for unknown words, options checked before anything is written, a folder of single images,
bundled names and checkpoint paths everywhere, ``--version``, "did you mean", fast start-up and quiet
broken pipes. Everything runs on the bundled Shapes models, offline."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml
from PIL import Image

from t2igan import __version__, cli
from t2igan.config import list_presets, preset_description, resolve_config
from t2igan.errors import T2IError
from t2igan.pipeline import Text2ImagePipeline
from t2igan.registry import declared_models
from t2igan.runs import BUNDLED_DIR


@pytest.fixture(scope="module")
def pipe():
    return Text2ImagePipeline.from_pretrained("shapes-dfgan", device="cpu")


def same(a: list[Image.Image], b: list[Image.Image]) -> bool:
    return len(a) == len(b) and all(x.tobytes() == y.tobytes() for x, y in zip(a, b))


def main(argv, capsys) -> tuple[int, str, str]:
    try:
        status = cli.main(argv)
    except SystemExit as e:  # argparse: --help, --version, usage errors
        status = e.code
    out = capsys.readouterr()
    return status, out.out, out.err


# ------------------------------------------------------------------------------------------------ API


def test_a_string_is_one_caption(pipe):
    images = pipe("a red circle", n=2, seed=1)
    assert same(images, pipe(["a red circle"], n=2, seed=1))
    assert same(images, pipe("a red circle", num_images_per_prompt=2, seed=1))
    with pytest.raises(T2IError, match="disagree"):
        pipe("a red circle", n=2, num_images_per_prompt=3)


def test_generator_draws_the_images_of_its_seed(pipe):
    captions = ["a red circle", "a small blue square"]
    by_seed = pipe(captions, n=2, seed=7)
    assert same(pipe(captions, n=2, generator=torch.Generator().manual_seed(7)), by_seed)
    assert not same(pipe(captions, n=2, generator=torch.Generator().manual_seed(8)), by_seed)
    # one generator per image: image i is image 0 of its own seed
    per_image = pipe(["a red circle"] * 3, generator=[torch.Generator().manual_seed(s) for s in (4, 5, 6)])
    assert same(per_image, [pipe("a red circle", seed=s)[0] for s in (4, 5, 6)])
    with pytest.raises(T2IError, match="2 generators for 3 images"):
        pipe(["a red circle"] * 3, generator=[torch.Generator(), torch.Generator()])
    with pytest.raises(T2IError, match="CPU torch.Generator"):
        pipe("a red circle", generator=123)


def test_to_repr_and_output(pipe):
    assert pipe.to("cpu") is pipe and pipe.device == torch.device("cpu")
    text = repr(pipe)
    assert text.startswith("Text2ImagePipeline(model='dfgan'") and "object at" not in text
    assert "source='shapes-dfgan'" in text and "image_size=32" in text and "device='cpu'" in text
    out = pipe("a red circle", n=3, seed=0, return_output=True)
    assert same(out.images, pipe("a red circle", n=3, seed=0)) and out.captions == ["a red circle"] * 3
    assert out.attention is None and out.masks is None  # DF-GAN shows neither
    assert not pipe.shows("attention") and not pipe.shows("masks") and not pipe.shows("stream")


def test_resolve_config_takes_a_mapping():
    from_mapping = resolve_config("dfgan-shapes", {"train.max_steps": 20, "model.nf": 16})
    assert from_mapping == resolve_config("dfgan-shapes", ["train.max_steps=20", "model.nf=16"])
    assert from_mapping.train.max_steps == 20 and from_mapping.model_args["nf"] == 16
    with pytest.raises(T2IError, match="write \\['train.max_steps=20'\\]"):
        resolve_config("dfgan-shapes", "train.max_steps=20")
    with pytest.raises(T2IError, match="did you mean 'dfgan-shapes'"):
        resolve_config("dfgan-shape")


def test_checkpoint_path_loads_its_moving_average(tmp_path):
    """A training checkpoint stands for its run: the generator is the checkpoint's moving average."""
    from safetensors.torch import save_file

    from t2igan.runs import load_run

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("config.json", "vocab.json"):
        (run / name).write_bytes((BUNDLED_DIR / "shapes-dfgan" / name).read_bytes())
    bundled = Text2ImagePipeline.from_pretrained("shapes-dfgan", device="cpu")
    model = load_run("shapes-dfgan")[0]
    state = {f"model.{k}": v.float() for k, v in model.state_dict().items()}
    # the checkpoint's live generator is noise; its moving average holds the bundled weights
    state.update({f"ema.{k}": v.float().clone() for k, v in model.generator.state_dict().items()})
    for k in state:
        if k.startswith("model.generator.") and state[k].is_floating_point():
            state[k] = torch.randn_like(state[k])
    ckpt = run / "checkpoints" / "step-00000010.safetensors"
    save_file(state, str(ckpt))
    pipe = Text2ImagePipeline.from_pretrained(str(ckpt), device="cpu")
    assert same(pipe("a red circle", n=2, seed=0), bundled("a red circle", n=2, seed=0))


# ------------------------------------------------------------------------------------------------ CLI


def test_version_help_and_did_you_mean(capsys):
    status, out, _ = main(["--version"], capsys)
    assert status == 0 and out.strip() == f"t2igan {__version__}"
    status, _, err = main(["smaple", "shapes-dfgan", "a red circle"], capsys)
    assert status == 2 and "did you mean 'sample'" in err and len(err.strip().splitlines()) == 1
    status, _, err = main(["sample", "shapes-dfgan", "a red circle", "--sed", "1"], capsys)
    assert status == 2 and "did you mean '--seed'" in err
    status, _, err = main(["train", "dfgan-shape", "--dry-run"], capsys)
    assert status == 2 and "did you mean 'dfgan-shapes'" in err
    status, _, err = main(["train", "dfgan-shapes", "train.max_step=5", "--dry-run"], capsys)
    assert status == 2 and "did you mean 'max_steps'" in err
    from t2igan.evaluate import parse_metrics
    from t2igan.runs import resolve_run_dir

    with pytest.raises(T2IError, match="did you mean 'fid'"):
        parse_metrics("fdi,is")
    with pytest.raises(T2IError, match="did you mean 'shapes-dfgan'"):
        resolve_run_dir("shapes-dfgn")
    status, out, _ = main(["sample", "--help"], capsys)
    text = " ".join(out.split())
    for shown in ("RUN", "--seed", "(default: 0)", "(default: 8)", "--device", "-o OUTPUT", "(default: samples.png)",
                  "--captions-file", "word attention: AttnGAN, MirrorGAN, DR-GAN", "predict masks: SSA-GAN, DR-GAN"):
        assert shown in text, shown


def test_help_and_lists_import_no_torch():
    """``python -X importtime -m t2igan ...`` lists every import; torch must not be among them."""
    for argv in (["--help"], ["--version"], ["sample", "--help"], ["list-presets"], ["list-pretrained"],
                 ["list-models"]):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "t2igan", *argv], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                    if line.startswith("import time:")}
        assert "torch" not in imported and "numpy" not in imported, argv


def test_list_commands_describe_and_align(capsys):
    assert declared_models() == __import__("t2igan").list_models()
    status, out, _ = main(["list-presets"], capsys)
    lines = out.splitlines()
    assert status == 0 and [line.split()[0] for line in lines] == list_presets()
    assert "mirrorgan-coco" in list_presets()
    for name in list_presets():
        text = (BUNDLED_DIR.parent / "presets" / f"{name}.yaml").read_text()
        description = yaml.safe_load(text)["description"]
        assert description and preset_description(name) == description, name
        assert any(line.split(None, 1)[1] == description for line in lines if line.split()[0] == name)
    status, out, _ = main(["list-pretrained"], capsys)
    lines = out.splitlines()
    assert status == 0 and lines[0].split() == ["name", "model", "size", "steps", "scores"]
    assert len({line.index(" px") for line in lines[1:]}) == 1  # the size column lines up
    end = lines[0].index("steps") + len("steps")  # the steps column is right-aligned under its heading
    assert all(line[end - 1] in "0123456789?" and line[end] == " " for line in lines[1:])


def test_info_of_a_bundled_name_shows_its_card(capsys):
    status, out, _ = main(["info", "shapes-dfgan"], capsys)
    assert status == 0
    assert "checkpoints:" not in out and "steps:       40,000" in out and "scores:      probe:" in out
    assert "MODEL_CARD.md" in out


def test_bundled_vocab_file_by_name(capsys):
    status, out, err = main(["train", "dfgan-shapes", "model.damsm_weights=shapes-damsm",
                             "data.vocab=shapes-damsm/vocab.json", "--dry-run"], capsys)
    assert status == 0, err


def test_unknown_words_warn_and_the_grid_shows_what_was_read(tmp_path, capsys, pipe):
    status, out, err = main(["sample", "shapes-dfgan", "a red cat riding a circle", "--n", "2", "-o",
                             str(tmp_path / "g.png")], capsys)
    assert status == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "'cat'" in warnings[0] and "'riding'" in warnings[0]
    assert (tmp_path / "g.png").is_file()
    read = pipe.read_caption("a red cat riding a circle")
    assert "cat" not in read.split() and read != "a red cat riding a circle"
    assert pipe.read_caption("a red circle") == "a red circle"


@pytest.mark.parametrize("option, expect", [("--attention", "has no word attention"),
                                            ("--masks", "predicts no masks"),
                                            ("--mirror", "has no STREAM captioner")])
def test_figure_options_are_checked_before_writing(option, expect, tmp_path, capsys):
    grid = tmp_path / "g.png"
    status, _, err = main(["sample", "shapes-dfgan", "a red circle", option, "-o", str(grid)], capsys)
    assert status == 2 and expect in err and err.count("error:") == 1
    assert not grid.exists() and list(tmp_path.iterdir()) == []


def test_output_without_extension_is_refused_before_loading(tmp_path, capsys):
    status, _, err = main(["sample", "no-such-model", "a red circle", "-o", str(tmp_path / "out")], capsys)
    assert status == 2 and "no image extension" in err and "out/" in err


def test_folder_output_single_images_and_manifest(tmp_path, capsys):
    captions = tmp_path / "captions.txt"
    captions.write_text("a red circle\n\na small blue square\n")
    folder = tmp_path / "out"
    status, out, err = main(["sample", "shapes-dfgan", "a green star", "--captions-file", str(captions), "--n", "2",
                             "--seed", "5", "-o", f"{folder}/"], capsys)
    assert status == 0, err
    manifest = json.loads((folder / "manifest.json").read_text())
    files = sorted(p.name for p in folder.glob("*.png"))
    assert files == sorted(r["file"] for r in manifest["images"]) and len(files) == 6
    assert [r["caption"] for r in manifest["images"]] == ["a green star"] * 2 + ["a red circle"] * 2 + \
        ["a small blue square"] * 2
    assert [r["seed"] for r in manifest["images"]] == [5, 6] * 3 and manifest["model"] == "dfgan"
    # a file is drawn again by its caption and seed alone
    record = manifest["images"][3]
    again = tmp_path / "again.png"
    status, _, err = main(["sample", "shapes-dfgan", record["caption"], "--n", "1", "--seed", str(record["seed"]),
                           "-o", str(again)], capsys)
    assert status == 0, err
    single = Text2ImagePipeline.from_pretrained("shapes-dfgan", device="cpu")(record["caption"], seed=record["seed"])[0]
    assert Image.open(folder / record["file"]).tobytes() == single.tobytes()
    # a folder that already holds images is refused: two calls' images would mix
    status, _, err = main(["sample", "shapes-dfgan", "a red circle", "-o", f"{folder}/"], capsys)
    assert status == 2 and "already holds 6 PNG file(s)" in err


def test_bundled_mirrorgan_captions_and_streams(tmp_path, capsys):
    grid = tmp_path / "g.png"
    status, out, err = main(["sample", "shapes-dfgan", "a red circle", "--n", "1", "--mirror", "--stream",
                             "shapes-mirrorgan", "-o", str(grid)], capsys)
    assert status == 0, err
    assert "a red circle" in out and grid.is_file()
    status, out, err = main(["caption", "shapes-mirrorgan", str(grid)], capsys)
    assert status == 0, err
    assert out.startswith(f"{grid}: ") and len(out.split(": ", 1)[1].split()) >= 2


@pytest.mark.parametrize("argv", [["list-presets"], ["--help"], ["info", "shapes-dfgan"]])
def test_broken_pipe_ends_quietly(argv):
    """``t2igan info RUN | head -1``: the reader goes away; no error, no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "t2igan", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the command writes anything
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert err == "" and proc.returncode in (0, 141)  # argparse's --help swallows the error itself
