"""Run folders (``t2igan.runs``): found by path or bundled name, written with their format version,
loaded with an expected kind, and refused with one line when written in another format."""

import json
import subprocess
import sys

import pytest
import torch

from t2igan import create_model
from t2igan.data.text import Vocabulary
from t2igan.errors import T2IError
from t2igan.runs import (FORMAT_VERSION, load_damsm, load_run, load_stream, read_config, resolve_run_dir,
                         save_run)

VOCAB = Vocabulary(["<pad>", "<unk>", "red", "circle"])


@pytest.fixture
def run(tmp_path):
    torch.manual_seed(0)
    model = create_model("dfgan", vocab_size=len(VOCAB), image_size=16, nf=4, text_emb_dim=8, text_hidden_dim=4)
    save_run(tmp_path / "run", {"data": {"max_words": 18}}, model, VOCAB)
    return tmp_path / "run"


def test_a_run_folder_records_its_format_and_loads_with_its_kind(run):
    config = read_config(run)
    assert config["format_version"] == FORMAT_VERSION and config["model_name"] == "dfgan"
    model, vocab, _ = load_run(run, kind="dfgan")
    assert vocab.words == VOCAB.words and not model.training
    with pytest.raises(T2IError, match=r"is a 'dfgan' run, not a damsm run"):
        load_damsm(run)
    with pytest.raises(T2IError, match=r"is a 'dfgan' run, not a stream or mirrorgan run"):
        load_stream(run)
    # a file in the run folder stands for the folder where a pretrained part is named
    assert resolve_run_dir(run / "model.safetensors", file_ok=True) == run
    assert resolve_run_dir("shapes-dfgan").name == "shapes-dfgan"


@pytest.mark.parametrize("version", [None, FORMAT_VERSION + 1])
def test_a_run_folder_of_another_format_is_one_error_naming_its_version(run, version):
    config = json.loads((run / "config.json").read_text())
    if version is None:  # a folder written before config.json recorded its format
        del config["format_version"]
    else:
        config["format_version"] = version
    (run / "config.json").write_text(json.dumps(config))
    shown = 0 if version is None else version
    with pytest.raises(T2IError, match=rf"run-folder format {shown}; this t2igan reads format {FORMAT_VERSION}"):
        load_run(run)
    out = subprocess.run([sys.executable, "-m", "t2igan", "sample", str(run), "red circle", "-o",
                          str(run.parent / "a.png")], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and f"run-folder format {shown}" in out.stderr
    assert not (run.parent / "a.png").exists()


def test_old_setting_names_are_unknown_keys():
    """No legacy-rename tables: an old name is an unknown key, listing the valid ones."""
    with pytest.raises(T2IError, match=r"unknown model.* config keys: \['damsm_lambda'\]"):
        create_model("attngan", vocab_size=10, damsm_lambda=2.0)
