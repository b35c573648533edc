"""Model factories for the --model-factory tests: plain user code, imported by snnconvert from the
working directory or PYTHONPATH exactly as a user's module would be."""

from __future__ import annotations

import torch
from torch import nn


class TinyViT(nn.Module):
    """A one-block ViT on 8x8 images: patch embedding, single-head attention, a Linear+ReLU MLP."""

    def __init__(self, dim: int = 16, hidden: int = 32, classes: int = 10, patch: int = 4) -> None:
        super().__init__()
        self.embed = nn.Conv2d(1, dim, patch, stride=patch)
        self.pos = nn.Parameter(0.02 * torch.randn(1, (8 // patch) ** 2, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.head = nn.Linear(dim, classes)
        self.scale = dim**-0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2) + self.pos
        q, k, v = self.qkv(self.norm1(t)).chunk(3, dim=-1)
        a = torch.softmax(q @ k.transpose(1, 2) * self.scale, dim=-1)
        t = t + self.proj(a @ v)
        t = t + self.fc2(torch.relu(self.fc1(self.norm2(t))))
        return self.head(t.mean(dim=1))


def build_vit(dim: int = 16, hidden: int = 32, classes: int = 10, seed: int = 0) -> TinyViT:
    torch.manual_seed(seed)
    return TinyViT(dim=dim, hidden=hidden, classes=classes)


def build_fails() -> nn.Module:
    raise ValueError("this factory always fails")


def not_a_module() -> dict:
    return {"weights": 1}


class Branchy(nn.Module):
    """A Python branch on a tensor's value: torch.export cannot trace it, the TorchScript tracer can."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        if float(h.sum()) > -1e9:  # always true; data-dependent to a tracer
            h = h * 1.0
        return self.fc2(h)


def build_branchy() -> Branchy:
    torch.manual_seed(0)
    return Branchy()
