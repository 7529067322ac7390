"""Inception-v3 in plain PyTorch: the networks of FID and IS (:mod:`t2igan.metrics`), and the frozen
backbone of the DAMSM image encoder and STREAM (:mod:`.image_encoder`).

Two networks share one implementation:

* :class:`FIDInceptionV3` is the TensorFlow Inception of 2015-12-05 that the original FID code
  (bioinf-jku/TTUR) and the original IS code (openai/improved-gan) use, laid out as pytorch-fid's
  ``fid_inception_v3`` (``mseitzer/pytorch-fid``, ``src/pytorch_fid/inception.py``): torchvision's
  Inception-v3 with 1008 output classes, no auxiliary head, and the TF pooling quirks: the 3x3 average
  pools of the A, C and first E blocks ignore the zero padding (``count_include_pad=False``) and the
  last E block (``Mixed_7c``) max-pools its pool branch. Weights: pytorch-fid's release file
  ``pt_inception-2015-12-05-6726825d.pth``.
* :class:`ImageNetInceptionV3` is torchvision's ``inception_v3`` (``torchvision/models/inception.py``)
  with the ``inception_v3_google-0cc3c7bd.pth`` ImageNet weights (1000 classes), as many PyTorch T2I
  repositories use for IS.

Both take RGB images in [-1, 1] (what t2igan generators output; ``input_range="[0,1]"`` for images in
[0, 1]), resize them to 299 x 299 bilinearly (``align_corners=False``, as pytorch-fid) and feed the
network values in [-1, 1]. This is the single normalisation both weight sets were trained with:
pytorch-fid maps [0, 1] to [-1, 1] by ``2x - 1``, and torchvision's ``transform_input`` turns
ImageNet-normalised input back into the same ``2x - 1`` range. Nothing else is applied: a second
normalisation silently lowers IS.

Weights files are found and loaded by :mod:`t2igan.metrics.inception`; a network here loads a state
dict it is given (:meth:`InceptionV3.load_official_state_dict`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import T2IError

INPUT_SIZE = 299
INPUT_RANGES = ("[-1,1]", "[0,1]")
# what forward() can return; "*_no_bias" skip the FC bias, as the original IS code (openai/improved-gan)
# does with the 2015 TF network (softmax(pool3 @ W))
OUTPUTS = ("pool3", "logits", "logits_no_bias", "probs", "probs_no_bias")


# ---------------------------------------------------------------------------------------------------
# Blocks (torchvision module names, so state-dict keys match the released files)
# ---------------------------------------------------------------------------------------------------


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 0.001, as TF) -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def pool_branch(kind: str) -> nn.Module:
    """The 3x3 stride-1 pooling in front of a block's ``branch_pool`` conv.

    ``avg``: torchvision (zero padding counted in the mean); ``avg_tf``: TF / FID (padding ignored);
    ``max``: the FID network's ``Mixed_7c``.
    """
    if kind == "avg":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True)
    if kind == "avg_tf":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    if kind == "max":
        return nn.MaxPool2d(3, stride=1, padding=1)
    raise ValueError(f"unknown pool kind {kind!r}")


class InceptionA(nn.Module):
    """35x35 block (Mixed_5b-d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | pool-1x1; out 224 + pool_features."""

    def __init__(self, in_channels: int, pool_features: int, pool: str):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.pool = pool_branch(pool)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(self.pool(x))
        return torch.cat([b1, b5, b3, bp], dim=1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2; out 384 + 96 + in."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        b3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b3dbl, bp], dim=1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convs (Mixed_6b-e); out 4 x 192 = 768."""

    def __init__(self, in_channels: int, channels_7x7: int, pool: str):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.pool = pool_branch(pool)
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7dbl = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                     self.branch7x7dbl_4, self.branch7x7dbl_5):
            b7dbl = conv(b7dbl)
        bp = self.branch_pool(self.pool(x))
        return torch.cat([b1, b7, b7dbl, bp], dim=1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2; out 320 + 192 + in."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], dim=1)


class InceptionE(nn.Module):
    """8x8 block with expanded 1x3 / 3x1 branches (Mixed_7b-c); out 320 + 768 + 768 + 192 = 2048."""

    def __init__(self, in_channels: int, pool: str):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.pool = pool_branch(pool)
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        h = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(h), self.branch3x3_2b(h)], dim=1)
        h = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3dbl = torch.cat([self.branch3x3dbl_3a(h), self.branch3x3dbl_3b(h)], dim=1)
        bp = self.branch_pool(self.pool(x))
        return torch.cat([b1, b3, b3dbl, bp], dim=1)


# ---------------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------------


class InceptionV3(nn.Module):
    """Inception-v3 without the auxiliary head; ``tf_pooling`` selects the FID network's pooling.

    Always in eval mode (BatchNorm uses the released running statistics): ``train()`` is a no-op.
    """

    def __init__(self, num_classes: int, tf_pooling: bool, input_range: str = "[-1,1]"):
        super().__init__()
        if input_range not in INPUT_RANGES:
            raise T2IError(f"input_range must be one of {INPUT_RANGES}, got {input_range!r}")
        self.input_range = input_range  # value range of the images given to forward()
        self.tf_pooling = tf_pooling
        avg = "avg_tf" if tf_pooling else "avg"
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32, pool=avg)  # -> 256
        self.Mixed_5c = InceptionA(256, pool_features=64, pool=avg)  # -> 288
        self.Mixed_5d = InceptionA(288, pool_features=64, pool=avg)  # -> 288
        self.Mixed_6a = InceptionB(288)  # -> 768, 17x17
        self.Mixed_6b = InceptionC(768, channels_7x7=128, pool=avg)
        self.Mixed_6c = InceptionC(768, channels_7x7=160, pool=avg)
        self.Mixed_6d = InceptionC(768, channels_7x7=160, pool=avg)
        self.Mixed_6e = InceptionC(768, channels_7x7=192, pool=avg)
        self.Mixed_7a = InceptionD(768)  # -> 1280, 8x8
        self.Mixed_7b = InceptionE(1280, pool=avg)  # -> 2048
        self.Mixed_7c = InceptionE(2048, pool="max" if tf_pooling else "avg")  # -> 2048
        self.fc = nn.Linear(2048, num_classes)
        self.eval()
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> InceptionV3:
        return super().train(False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in ``input_range`` -> (B, 3, 299, 299) in [-1, 1] (one normalisation)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise T2IError(f"Inception expects images of shape (B, 3, H, W), got {tuple(images.shape)}")
        x = images.float()
        low = -1.0 if self.input_range == "[-1,1]" else 0.0
        lo, hi = x.min().item(), x.max().item()
        if lo < low - 1e-3 or hi > 1.0 + 1e-3:
            raise T2IError(f"Inception expects images in {self.input_range}, got values in [{lo:.3g}, {hi:.3g}]")
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        if self.input_range == "[0,1]":
            x = 2 * x - 1
        return x

    def pool3(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed (B, 3, 299, 299) -> pool3 features (B, 2048)."""
        x = self.Conv2d_1a_3x3(x)  # (B, 32, 149, 149)
        x = self.Conv2d_2a_3x3(x)  # (B, 32, 147, 147)
        x = self.Conv2d_2b_3x3(x)  # (B, 64, 147, 147)
        x = self.maxpool1(x)  # (B, 64, 73, 73)
        x = self.Conv2d_3b_1x1(x)  # (B, 80, 73, 73)
        x = self.Conv2d_4a_3x3(x)  # (B, 192, 71, 71)
        x = self.maxpool2(x)  # (B, 192, 35, 35)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # (B, 288, 35, 35)
        x = self.Mixed_6a(x)  # (B, 768, 17, 17)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # (B, 768, 17, 17)
        x = self.Mixed_7a(x)  # (B, 1280, 8, 8)
        x = self.Mixed_7c(self.Mixed_7b(x))  # (B, 2048, 8, 8)
        return x.mean(dim=(2, 3))  # (B, 2048)

    def forward(self, images: torch.Tensor, output: str = "pool3") -> torch.Tensor:
        """Images (B, 3, H, W) in ``input_range`` -> ``output``: "pool3" (B, 2048) features, "logits" /
        "probs" (B, num_classes), or "logits_no_bias" / "probs_no_bias" (FC without its bias)."""
        if output not in OUTPUTS:
            raise T2IError(f"output must be one of {OUTPUTS}, got {output!r}")
        features = self.pool3(self.preprocess(images))  # (B, 2048)
        if output == "pool3":
            return features
        bias = None if output.endswith("_no_bias") else self.fc.bias
        logits = F.linear(features, self.fc.weight, bias)  # (B, num_classes)
        return logits.softmax(dim=1) if output.startswith("probs") else logits

    def load_official_state_dict(self, state_dict: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """Load a released state dict, strictly: every key and shape must match (BatchNorm's
        ``num_batches_tracked``, unused in eval mode, may be absent, as in files saved before PyTorch 0.4.1)."""
        expected = self.state_dict()
        state_dict = {k: v for k, v in state_dict.items() if not self._ignored_key(k)}
        missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
        unexpected = [k for k in state_dict if k not in expected]
        if missing or unexpected:
            raise T2IError(
                f"{source} does not fit {type(self).__name__}: missing keys {_preview(missing)}, "
                f"unexpected keys {_preview(unexpected)}"
            )
        wrong = [f"{k} {tuple(v.shape)} (expected {tuple(expected[k].shape)})"
                 for k, v in state_dict.items() if v.shape != expected[k].shape]
        if wrong:
            raise T2IError(f"{source} has tensors of the wrong shape: {_preview(wrong)}")
        self.load_state_dict(state_dict, strict=False)

    def _ignored_key(self, key: str) -> bool:
        return False


class FIDInceptionV3(InceptionV3):
    """The TF 2015-12-05 Inception of FID (pytorch-fid ``fid_inception_v3``): 1008 classes, TF pooling."""

    def __init__(self, input_range: str = "[-1,1]"):
        super().__init__(num_classes=1008, tf_pooling=True, input_range=input_range)


class ImageNetInceptionV3(InceptionV3):
    """torchvision's ImageNet Inception-v3 (``inception_v3_google``): 1000 classes, standard pooling.

    Its input is torchvision's ``transform_input`` output, i.e. RGB in [-1, 1]. The released file also
    holds the auxiliary head (``AuxLogits.*``), which is only used in training and is skipped here.
    """

    def __init__(self, input_range: str = "[-1,1]"):
        super().__init__(num_classes=1000, tf_pooling=False, input_range=input_range)

    def _ignored_key(self, key: str) -> bool:
        return key.startswith("AuxLogits.")


class CUBInceptionV3(InceptionV3):
    """StackGAN's CUB-fine-tuned slim Inception-v3: ``num_classes`` logits, the first a background class."""

    def __init__(self, num_classes: int = 51, input_range: str = "[-1,1]"):
        super().__init__(num_classes=num_classes, tf_pooling=True, input_range=input_range)
        self.Mixed_7c.pool = pool_branch("avg_tf")  # slim averages here too (TF: padding not counted)

    def class_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed (B, 3, 299, 299) in [-1, 1] -> (B, num_classes - 1) probabilities over the real
        classes: ``softmax(logits[:, 1:])``, as StackGAN's ``inception_score.py`` (background dropped)."""
        return self.fc(self.pool3(x))[:, 1:].softmax(dim=1)


def _preview(keys: list[str], n: int = 5) -> str:
    if not keys:
        return "none"
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return f"{len(keys)} ({', '.join(keys[:n])}{more})"
