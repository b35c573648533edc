"""Digits ViTs whose attention is a spiking-transformer attention, trained as ANNs for conversion.

Both follow their papers' layout as far as an ANN can: every linear layer is a 1x1 convolution over
the token axis followed by BatchNorm (as Spikformer's and the Spike-driven Transformer's code write
them), every spiking neuron is a ReLU, and the stem downsamples with a strided convolution, not a
MaxPool: a MaxPool becomes an AvgPool in conversion, a different network from the one trained
(methods.md section 1). Activations are channels-first, [B, D, N] with N = 16 tokens (2x2 patches).

- `DigitsSSAViT` (Spikformer, Zhou et al. 2023): Q, K, V = ReLU(BN(conv(x))) are non-negative, as
  spike-form Q, K, V are; attention is ReLU(Q K^T V * s), no softmax; every branch ends with a
  neuron, so the residual stream is a sum of spike trains.
- `DigitsSDSAViT` (Spike-driven Transformer, Yao et al. 2023): attention is
  Q * ReLU(s * SUM_tokens(K * V)), Hadamard products and a column sum; the residual stream is the
  membrane (analog, the "membrane shortcut") and each branch starts with a neuron on it.
"""

from __future__ import annotations

import torch
from torch import nn

PATCH = 2


def conv_bn(cin: int, cout: int) -> nn.Sequential:
    """A token-wise linear layer as Spikformer writes it: Conv1d(k=1) + BatchNorm1d, folded by convert."""
    return nn.Sequential(nn.Conv1d(cin, cout, 1, bias=False), nn.BatchNorm1d(cout))


class Stem(nn.Module):
    """Spikformer's SPS without its MaxPool: conv-BN, then a stride-2 conv-BN that cuts 2x2 patches."""

    def __init__(self, dim: int, tokens: int, relu_out: bool) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(1, dim // 2, 3, padding=1, bias=False), nn.BatchNorm2d(dim // 2))
        self.conv2 = nn.Sequential(
            nn.Conv2d(dim // 2, dim, PATCH, stride=PATCH, bias=False), nn.BatchNorm2d(dim)
        )
        self.pos = nn.Parameter(torch.zeros(1, dim, tokens))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.relu_out = relu_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(torch.relu(self.conv1(x)))
        h = h.flatten(2) + self.pos  # [B, D, N]
        return torch.relu(h) if self.relu_out else h


class _Heads(nn.Module):
    def __init__(self, dim: int, heads: int, tokens: int) -> None:
        super().__init__()
        self.tokens = tokens
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim = heads, dim // heads
        self.q, self.k, self.v = conv_bn(dim, dim), conv_bn(dim, dim), conv_bn(dim, dim)
        self.out = conv_bn(dim, dim)

    def split(self, t: torch.Tensor) -> torch.Tensor:
        """[B, D, N] -> [B, h, N, d]."""
        return t.reshape(-1, self.heads, self.head_dim, self.tokens).transpose(-2, -1)

    def merge(self, t: torch.Tensor) -> torch.Tensor:
        """[B, h, N, d] -> [B, D, N]."""
        return t.transpose(-2, -1).reshape(-1, self.heads * self.head_dim, self.tokens)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(self.split(torch.relu(f(x))) for f in (self.q, self.k, self.v))  # type: ignore[return-value]


class SSA(_Heads):
    """Spiking self-attention: SN(Q K^T V s). Written in the order Q K^T first, as the paper's formula
    reads; the converter's reassociation pass computes Q (K^T V) when N > d."""

    def __init__(self, dim: int, heads: int, tokens: int, scale: float = 0.125) -> None:
        super().__init__(dim, heads, tokens)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x)
        attn = torch.relu((q @ k.transpose(-2, -1)) @ v * self.scale)
        return torch.relu(self.out(self.merge(attn)))


class SDSA(_Heads):
    """Spike-driven self-attention: Q * SN(s * SUM_c(K * V)), the sum over tokens, per channel."""

    def __init__(self, dim: int, heads: int, tokens: int) -> None:
        super().__init__(dim, heads, tokens)
        self.scale = 1.0 / tokens  # the column sum's mean: its neuron's input stays O(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x)
        kv = torch.relu((k * v).sum(dim=-2, keepdim=True) * self.scale)  # [B, h, 1, d]
        return self.out(self.merge(q * kv))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, relu_out: bool) -> None:
        super().__init__()
        self.fc1, self.fc2 = conv_bn(dim, hidden), conv_bn(hidden, dim)
        self.relu_out = relu_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc2(torch.relu(self.fc1(x)))
        return torch.relu(h) if self.relu_out else h


class SSABlock(nn.Module):
    """Spikformer's block: x + SSA(x), then x + MLP(x); both branches end with a neuron (no LayerNorm)."""

    def __init__(self, dim: int, heads: int, hidden: int, tokens: int) -> None:
        super().__init__()
        self.attn, self.mlp = SSA(dim, heads, tokens), MLP(dim, hidden, relu_out=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class SDSABlock(nn.Module):
    """The Spike-driven Transformer's block: the residual is the membrane, each branch starts with a neuron."""

    def __init__(self, dim: int, heads: int, hidden: int, tokens: int) -> None:
        super().__init__()
        self.attn, self.mlp = SDSA(dim, heads, tokens), MLP(dim, hidden, relu_out=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(torch.relu(x))
        return x + self.mlp(torch.relu(x))


class _SpikeViT(nn.Module):
    block: type[nn.Module]
    spiking_residual: bool

    def __init__(
        self,
        dim: int = 48,
        depth: int = 2,
        heads: int = 6,
        hidden: int = 96,
        image_size: int = 8,  # models.IMAGE_SIZE and NUM_CLASSES: not imported, as models.py
        num_classes: int = 10,  # imports this module for its MODELS table
    ) -> None:
        super().__init__()
        tokens = (image_size // PATCH) ** 2
        self.stem = Stem(dim, tokens, relu_out=self.spiking_residual)
        self.blocks = nn.Sequential(*(self.block(dim, heads, hidden, tokens) for _ in range(depth)))
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))
        if not self.spiking_residual:
            h = torch.relu(h)  # the head reads spikes, as in the Spike-driven Transformer
        return self.head(h.mean(dim=-1))


class DigitsSSAViT(_SpikeViT):
    """Spikformer-like digits ViT: 16 tokens, width 48, 6 heads of d = 8 < N, so Q (K^T V) is cheaper."""

    block = SSABlock
    spiking_residual = True


class DigitsSDSAViT(_SpikeViT):
    """Spike-driven-Transformer-like digits ViT (SDSA attention, membrane-shortcut residuals)."""

    block = SDSABlock
    spiking_residual = False
