"""Shared pieces of the speed benchmarks (train_speed, sample_speed, damsm_speed, run_speed).

Synthetic CUB-sized data (no data set needed), the list of models to measure, preset-derived model
arguments, the environment record and the table printer. Not a test and not part of the library.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# every model family of the library, in paper order; a family whose module is not written yet
# is skipped with a printed reason (see model_unavailable)
MODELS = ("gan_int_cls", "attngan", "mirrorgan", "dfgan", "ssagan", "drgan")

CUB_VOCAB_SIZE = 5450  # words in AttnGAN's CUB captions.pickle (incl. padding)
CUB_CLASSES = 200
CUB_MAX_WORDS = 18


def model_unavailable(name: str) -> str | None:
    """None when model ``name`` can be built, else a one-line reason (module missing or broken)."""
    try:
        importlib.import_module(f"t2igan.models.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"t2igan.models.{name}":
            return f"src/t2igan/models/{name}.py does not exist yet"
        return f"t2igan.models.{name} does not import: {type(e).__name__}: {e}"
    except Exception as e:  # a half-written module: report it, measure the others
        return f"t2igan.models.{name} does not import: {type(e).__name__}: {str(e)[:160]}"
    from t2igan.models import model_config_class

    try:
        model_config_class(name)
    except Exception as e:
        return f"model {name!r} is not registered: {type(e).__name__}: {str(e)[:160]}"
    return None


def preset_unavailable(preset: str) -> str | None:
    from t2igan.config import load_preset

    try:
        load_preset(preset)
    except Exception as e:
        return f"no preset {preset!r} ({type(e).__name__})"
    return None


def without_pretrained(model_args: dict) -> list[str]:
    """Overrides setting every ``*_weights`` path (pretrained DAMSM, STREAM, text encoder) to null:
    the benchmarks use random weights for those parts."""
    return [f"model.{k}=null" for k in model_args if k.endswith("_weights")]


def synthetic_words(n_words: int = CUB_VOCAB_SIZE) -> list[str]:
    """``n_words - 2`` made-up words, so that a vocabulary built from them (plus ``<pad>`` and
    ``<unk>``) has CUB's size."""
    return [f"w{i}" for i in range(n_words - 2)]


class SyntheticCaptions(torch.utils.data.Dataset):
    """CUB-shaped items with random content: an image in [-1, 1] at ``image_size``, a caption of
    10-25 made-up words (shortened to ``max_words`` by the collator, as real CUB captions are), a class
    id in [0, 200) and, when ``sent_emb_dim`` is set, a random precomputed sentence embedding
    (GAN-INT-CLS's char-CNN-RNN input). Item ``i`` depends only on ``(seed, i)``."""

    def __init__(self, image_size: int, num_items: int, sent_emb_dim: int | None = None,
                 n_words: int = CUB_VOCAB_SIZE, seed: int = 0):
        self.image_size = image_size
        self.num_items = num_items
        self.sent_emb_dim = sent_emb_dim
        self.words = synthetic_words(n_words)
        self.seed = seed

    def __len__(self) -> int:
        return self.num_items

    def all_captions(self) -> list[str]:
        """Captions that use every word once (the vocabulary is built from them)."""
        return [" ".join(self.words[i:i + 20]) for i in range(0, len(self.words), 20)]

    def captions(self, i: int) -> list[str]:
        return [self[i]["caption"]]

    def __getitem__(self, i: int) -> dict:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        n = int(torch.randint(10, 26, (1,), generator=gen))
        ids = torch.randint(0, len(self.words), (n,), generator=gen).tolist()
        item = {
            "image": torch.rand(3, self.image_size, self.image_size, generator=gen) * 2 - 1,
            "caption": " ".join(self.words[j] for j in ids),
            "image_idx": i,
            "caption_idx": 0,
            "class_id": int(torch.randint(0, CUB_CLASSES, (1,), generator=gen)),
            "key": f"synthetic_{i:05d}",
        }
        if self.sent_emb_dim:
            item["sent_emb"] = torch.randn(self.sent_emb_dim, generator=gen)
        return item


def synthetic_vocab(n_words: int = CUB_VOCAB_SIZE):
    from t2igan.data.text import Vocabulary

    return Vocabulary.build(SyntheticCaptions(16, 1, n_words=n_words).all_captions())


def synthetic_caption(n_words: int = 12, seed: int = 0) -> str:
    words = synthetic_words()
    gen = torch.Generator().manual_seed(seed)
    return " ".join(words[j] for j in torch.randint(0, len(words), (n_words,), generator=gen).tolist())


def sized_model_args(model: str, model_args: dict, image_size: int) -> dict:
    """``model_args`` (from a preset) at another output size: ``image_size`` set, and for staged
    generators (AttnGAN-style ``base_size`` / ``num_stages``) the number of stages chosen so the last
    one is ``image_size`` (64 px: the first stage only, as in the official 64 px evaluation)."""
    from t2igan.models import model_config_class

    fields = model_config_class(model).__dataclass_fields__
    args = {k: (None if k.endswith("_weights") else v) for k, v in model_args.items()}
    if "image_size" in fields:
        args["image_size"] = image_size
    if "base_size" in fields and "num_stages" in fields:
        base = min(args.get("base_size", fields["base_size"].default), image_size)
        args["base_size"] = base
        args["num_stages"] = int(round(math.log2(image_size / base))) + 1
    return args


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    """Wall seconds of one call of ``fn``, the device synchronised before and after."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def environment(device: str, threads: int | None = None) -> dict:
    """What the numbers depend on: versions, device, threads, and the machine's load when measured
    (the 2-core CPU machine is shared by other processes: a load above the core count slows CPU rows)."""
    dev = torch.device(device)
    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device,
        "cpu_count": os.cpu_count(),
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if dev.type == "cuda" and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(dev)
    else:
        env["cpu"] = cpu_name()
    return env


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def format_value(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, fmt) if fmt else str(v)


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Print rows as an aligned table; ``columns`` are (key, header, format spec). Returns the text."""
    cells = [[header for _, header, _ in columns]]
    for r in rows:
        cells.append([format_value(r.get(key), fmt) for key, _, fmt in columns])
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def write_json(path: str | Path, payload: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}", flush=True)
    return path
