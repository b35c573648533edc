"""Reference models of the zoo.

They are written so that the ONNX export stays inside the op set the converter understands: only ReLU as
non-linearity, attention spelled out with MatMul/Softmax instead of a fused kernel, patches cut with
Reshape/Transpose instead of Conv/unfold, and the batch axis kept as axis 0 everywhere (the converter
treats axis 0 as the batch and must never see it merged with the heads).
"""

from __future__ import annotations

import torch
from torch import nn

from snnconvert.zoo.vit_qcfs import DigitsViTQCFS
from snnconvert.zoo.vit_spike_attention import DigitsSDSAViT, DigitsSSAViT

IMAGE_SIZE = 8
NUM_CLASSES = 10


class Attention(nn.Module):
    """Multi-head self-attention written out op by op, so the converter sees each product and the softmax."""

    def __init__(self, dim: int, heads: int, tokens: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.head_dim = dim // heads
        self.tokens = tokens
        self.scale = self.head_dim**-0.5
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        # Explicit sizes except the batch: the exported Reshape then carries a constant shape.
        return t.reshape(-1, self.tokens, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self._split_heads(self.q(x))
        k = self._split_heads(self.k(x))
        v = self._split_heads(self.v(x))
        scores = (q @ k.transpose(-2, -1)) * self.scale
        attn = scores.softmax(dim=-1)
        ctx = (attn @ v).transpose(1, 2).reshape(-1, self.tokens, self.heads * self.head_dim)
        return self.out(ctx)


class Block(nn.Module):
    """Pre-LayerNorm encoder block (as in ViT), with ReLU so its hidden units map onto IF neurons."""

    def __init__(self, dim: int, heads: int, hidden: int, tokens: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, tokens)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class DigitsViT(nn.Module):
    """A tiny ViT for 8x8 digits in the spirit of Mueller et al. 2021's MNIST ViT (2x2 patches, 16 tokens + CLS)."""

    def __init__(
        self,
        patch: int = 2,
        dim: int = 48,
        depth: int = 2,
        heads: int = 4,
        hidden: int = 96,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        if IMAGE_SIZE % patch:
            raise ValueError(f"patch size {patch} does not divide the image size {IMAGE_SIZE}")
        self.patch = patch
        self.grid = IMAGE_SIZE // patch
        self.num_patches = self.grid * self.grid
        self.tokens = self.num_patches + 1
        self.patch_embed = nn.Linear(patch * patch, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.tokens, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads, hidden, self.tokens) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, p = self.grid, self.patch
        # [B,1,8,8] -> [B,1,gy,py,gx,px] -> [B,gy,gx,1,py,px] -> [B,16,4]: patches without Conv or unfold.
        patches = x.reshape(-1, 1, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(-1, self.num_patches, p * p)
        tokens = self.patch_embed(patches)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        h = torch.cat([cls, tokens], dim=1) + self.pos_embed
        h = self.norm(self.blocks(h))
        return self.head(h[:, 0])


class DigitsMLP(nn.Module):
    """The simplest ReLU network: a baseline for the converter with nothing but Gemm and Relu."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(IMAGE_SIZE * IMAGE_SIZE, 128),
            nn.ReLU(),
            nn.Linear(128, 64),
            nn.ReLU(),
            nn.Linear(64, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DigitsCNN(nn.Module):
    """A small CNN that keeps BatchNorm and MaxPool on purpose: the converter must fold BN and swap MaxPool."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 2 * 2, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TextTransformer(nn.Module):
    """Shaped like Mueller et al. 2021's IMDB classifier: token embedding plus learned positions, pre-LN
    encoder blocks with a ReLU feed-forward (the only non-linearity their conversion spikes), mean pooling
    over the tokens and a linear head. Sized for tools/train_zoo.py's key-order task (64 tokens, length 32,
    6 classes)."""

    def __init__(
        self,
        vocab: int = 64,
        length: int = 32,
        dim: int = 32,
        depth: int = 2,
        heads: int = 2,
        hidden: int = 64,
        num_classes: int = 6,  # tools/train_zoo.py's TEXT_CLASSES: the 3! orders of three keys
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, length, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads, hidden, length) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.blocks(self.embed(x) + self.pos_embed))
        return self.head(h.mean(dim=1))


MODELS: dict[str, type[nn.Module]] = {
    "vit": DigitsViT,
    "mlp": DigitsMLP,
    "cnn": DigitsCNN,
    "text": TextTransformer,
    "vit_ssa": DigitsSSAViT,
    "vit_sdsa": DigitsSDSAViT,
    "vit_qcfs": DigitsViTQCFS,
}


def build_model(name: str) -> nn.Module:
    """Build a zoo model by its short name, so the training script and tests share one registry."""
    try:
        return MODELS[name]()
    except KeyError:
        raise ValueError(f"unknown zoo model {name!r}; expected one of {sorted(MODELS)}") from None
