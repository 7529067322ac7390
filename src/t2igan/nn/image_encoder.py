"""Image encoders: the DAMSM image encoder of AttnGAN [Xu et al., CVPR 2018, Sec. 3.2] and its two
backbones, a frozen ImageNet Inception-v3 and a small trainable CNN (also STREAM's backbones).

With ``backbone="inception"`` the encoder is AttnGAN's (``CNN_ENCODER`` in taoxugit/AttnGAN
``code/model.py``): ImageNet Inception-v3 (frozen) on 299 x 299 input, ``Mixed_6e`` (768 x 17 x 17)
projected by a 1x1 conv, the pooled 2048-d feature projected by a linear layer [AttnGAN, Eq. 6]. Its
ImageNet weights are loaded by whoever builds the encoder (:meth:`InceptionBackbone.load_imagenet_weights`). ``backbone="small_cnn"`` is a small trainable CNN
for 16-64 px images (8 x 8 regions), so a DAMSM for the built-in Shapes data trains on a CPU in
minutes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import T2IError
from .inception import ImageNetInceptionV3

BACKBONES = ("inception", "small_cnn")


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class SmallCNN(nn.Module):
    """A small trainable backbone for 16-256 px images: stride-2 4x4 convs (channels doubling) down to
    8 x 8, one 3x3 conv there (the local features), one more stride-2 conv to 4 x 4 and a spatial mean
    (the global feature). Cheap enough to train on a CPU at 64 px.

    GroupNorm, not BatchNorm: an image's features never depend on the rest of its batch, and eval mode
    behaves as training did (with BatchNorm the contrastive DAMSM loss learns to lean on batch
    statistics that the running averages, trailing lr-0.002 updates, do not match: measured on Shapes,
    R-precision 29% in eval mode against 87% with batch statistics)."""

    def __init__(self, image_size: int, channels: int = 32, max_channels: int = 256):
        super().__init__()
        if image_size < 16 or image_size & (image_size - 1):
            raise T2IError(f"small_cnn backbone needs a power-of-two image_size >= 16, got {image_size}")
        layers: list[nn.Module] = []
        ch_in, ch, size = 3, channels, image_size
        while size > 8:
            layers += [nn.Conv2d(ch_in, ch, 4, stride=2, padding=1), group_norm(ch), nn.LeakyReLU(0.2)]
            ch_in, ch, size = ch, min(ch * 2, max_channels), size // 2
        ch = ch_in
        layers += [nn.Conv2d(ch, ch, 3, padding=1), group_norm(ch), nn.LeakyReLU(0.2)]
        self.local = nn.Sequential(*layers)
        out = min(ch * 2, max_channels * 2)
        self.glob = nn.Sequential(nn.Conv2d(ch, out, 4, stride=2, padding=1), group_norm(out), nn.LeakyReLU(0.2))
        self.image_size = image_size
        self.local_dim, self.global_dim = ch, out

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   align_corners=False)
        local = self.local(images)  # (B, C, 8, 8)
        return local, self.glob(local).mean(dim=(2, 3))  # (B, C, 8, 8), (B, C')

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The last activation at each side the network reaches, finest first (images resized to its
        input side as in :meth:`forward`): at 64 px the maps of sides 32, 16, 8 (the local features) and
        the 4 x 4 map the global feature is the mean of."""
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   align_corners=False)
        maps, h = {}, images
        for layer in self.local:
            h = layer(h)
            if isinstance(layer, nn.LeakyReLU):
                maps[h.shape[-1]] = h  # a later map of the same side replaces the earlier one
        maps[0] = self.glob(h)
        return list(maps.values())


class InceptionBackbone(nn.Module):
    """ImageNet Inception-v3 (:class:`t2igan.nn.inception.ImageNetInceptionV3`), frozen and always
    in eval mode: ``Mixed_6e`` output (B, 768, 17, 17) as local features, the pooled ``Mixed_7c``
    output (B, 2048) as the global feature. Images in [-1, 1] are resized to 299 bilinearly and fed
    as they are (the official DAMSM does the same). Built random; :meth:`load_imagenet_weights` loads
    the released ImageNet weights."""

    local_dim, global_dim = 768, 2048

    def __init__(self):
        super().__init__()
        self.net = ImageNetInceptionV3()
        self.net.fc = nn.Identity()  # the classifier is not used
        self.requires_grad_(False)

    def load_imagenet_weights(self, state_dict: dict[str, torch.Tensor], source: str) -> None:
        """Load torchvision's ``inception_v3_google`` state dict (its classifier ``fc.*`` is not used)."""
        self.net.load_official_state_dict({k: v for k, v in state_dict.items() if not k.startswith("fc.")}, source)

    def train(self, mode: bool = True) -> "InceptionBackbone":
        return super().train(False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.net
        x = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
        x = n.maxpool1(n.Conv2d_2b_3x3(n.Conv2d_2a_3x3(n.Conv2d_1a_3x3(x))))  # (B, 64, 73, 73)
        x = n.maxpool2(n.Conv2d_4a_3x3(n.Conv2d_3b_1x1(x)))  # (B, 192, 35, 35)
        x = n.Mixed_6a(n.Mixed_5d(n.Mixed_5c(n.Mixed_5b(x))))  # (B, 768, 17, 17)
        local = n.Mixed_6e(n.Mixed_6d(n.Mixed_6c(n.Mixed_6b(x))))  # (B, 768, 17, 17)
        x = n.Mixed_7c(n.Mixed_7b(n.Mixed_7a(local)))  # (B, 2048, 8, 8)
        return local, x.mean(dim=(2, 3))  # (B, 768, 17, 17), (B, 2048)

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``Mixed_5d`` (B, 288, 35, 35), ``Mixed_6e`` (B, 768, 17, 17: the local features) and ``Mixed_7c``
        (B, 2048, 8, 8), images resized to 299 as in :meth:`forward`."""
        n = self.net
        x = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
        x = n.maxpool1(n.Conv2d_2b_3x3(n.Conv2d_2a_3x3(n.Conv2d_1a_3x3(x))))
        m5 = n.Mixed_5d(n.Mixed_5c(n.Mixed_5b(n.maxpool2(n.Conv2d_4a_3x3(n.Conv2d_3b_1x1(x))))))
        m6 = n.Mixed_6e(n.Mixed_6d(n.Mixed_6c(n.Mixed_6b(n.Mixed_6a(m5)))))
        return [m5, m6, n.Mixed_7c(n.Mixed_7b(n.Mixed_7a(m6)))]


class ImageEncoder(nn.Module):
    """DAMSM image encoder: backbone -> 1x1 conv on local features (regions ``v``), linear on the
    global feature (``v_bar``) [AttnGAN, Sec. 3.2, Eq. 6]."""

    def __init__(
        self,
        embed_dim: int = 256,  # D, the joint text-image feature size
        backbone: str = "inception",  # inception (frozen ImageNet Inception-v3) | small_cnn (trainable)
        image_size: int = 299,  # small_cnn: side of its input (images are resized to it); inception: 299 always
        cnn_channels: int = 32,  # small_cnn: channels of its first conv (doubled at each down-sampling)
    ):
        super().__init__()
        if backbone not in BACKBONES:
            raise T2IError(f"DAMSM image encoder backbone must be one of {BACKBONES}, got {backbone!r}")
        self.backbone_name = backbone
        if backbone == "inception":
            self.backbone = InceptionBackbone()
        else:
            self.backbone = SmallCNN(image_size, cnn_channels)
        self.emb_features = nn.Conv2d(self.backbone.local_dim, embed_dim, 1, bias=False)  # Eq. 6: v = W f
        self.emb_code = nn.Linear(self.backbone.global_dim, embed_dim)  # Eq. 6: v_bar = W_bar f_bar
        nn.init.uniform_(self.emb_features.weight, -0.1, 0.1)
        nn.init.uniform_(self.emb_code.weight, -0.1, 0.1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 3, H, W) RGB in [-1, 1] -> (region_feats (B, D, h, w), image_emb (B, D))."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise T2IError(f"DAMSM image encoder expects images (B, 3, H, W), got {tuple(images.shape)}")
        local, glob = self.backbone(images)
        return self.emb_features(local), self.emb_code(glob)
