"""A digits ViT in the spirit of the Masked Spiking Transformer (Wang et al., ICCV 2023): BatchNorm in
place of LayerNorm and QCFS activations (Bu et al., ICLR 2022) where MST puts its IF neurons, so that the
trained ANN is, activation by activation, what an IF neuron with v0 = theta/2 computes in T = L steps.

Where the QCFS activations are (MST's placement): after each normalisation (the BatchNorms that stand
where ViT has LayerNorm), after the q, k and v projections, after the scaled scores q.k^T (so the
softmax reads a spike count, as MST's attention does), after attn.v, after the output projection, and in
the MLP after fc1 + BN and fc2 + BN. The softmax stays: MST keeps it, applied to the spiking scores,
and its output meets v's spikes in attn.v, a product with one spiking operand (a select-and-add per
event), which the QCFS after it turns back into spikes. Putting a QCFS after the softmax too would
quantise the attention weights themselves, L levels for weights that are mostly below 1/17 here.

The patches, CLS token and head are DigitsViT's (snnconvert/zoo/models.py), written out here rather
than inherited: models.py registers this model in MODELS, and the package's modules may not import each
other in a cycle.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGE_SIZE, PATCH, NUM_CLASSES = 8, 2, 10
LEVELS = 8  # QCFS quantisation levels L (an IF neuron reproduces the ANN exactly at T = L steps)
# Random Spike Masking in training (MST masks in training and inference): the QCFS outputs that enter
# a linear layer, an attention product or the softmax are dropped with this probability, the kept ones
# scaled by 1/(1 - p), as the converter's masked neurons weight their kept spikes; eval mode (the export)
# masks nothing.
TRAIN_MASK = 0.25


class QCFS(nn.Module):
    """Quantisation clip-floor-shift: lam * clip(floor(x * L / lam + 1/2) / L, 0, 1), lam trainable.

    The floor passes its gradient straight through in training; in eval mode (what is exported) it is a
    plain Floor, so the ONNX graph holds the pattern Div, Mul, Add, Floor, Clip, Mul, Div that
    snnconvert's qcfs_to_if pass recognises."""

    def __init__(self, levels: int = LEVELS, init: float = 2.0, mask: float = 0.0) -> None:
        super().__init__()
        self.levels = int(levels)
        self.lam = nn.Parameter(torch.tensor(float(init)))
        self.mask = float(mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x / self.lam * self.levels + 0.5
        f = z + (torch.floor(z) - z).detach() if self.training else torch.floor(z)
        y = torch.clamp(f, 0.0, float(self.levels)) * self.lam / self.levels
        if self.training and self.mask > 0:
            y = y * (torch.rand_like(y) >= self.mask).to(y.dtype) / (1.0 - self.mask)
        return y


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the feature axis of [batch, tokens, features] (statistics over batch and tokens),
    as MST uses it in place of LayerNorm."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class QCFSAttention(nn.Module):
    """MST's attention: q, k, v spike (QCFS), the scaled scores spike, softmax, attn.v spikes, the
    projection spikes. Written op by op (MatMul, Softmax) so the converter sees each product."""

    def __init__(self, dim: int, heads: int, tokens: int) -> None:
        super().__init__()
        self.heads, self.head_dim, self.tokens = heads, dim // heads, tokens
        self.scale = self.head_dim**-0.5
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))
        self.q_act, self.k_act, self.v_act = (QCFS(mask=TRAIN_MASK) for _ in range(3))
        self.score_act, self.ctx_act = QCFS(init=4.0, mask=TRAIN_MASK), QCFS(mask=TRAIN_MASK)
        self.out_act = QCFS()

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        # explicit sizes except the batch: the exported Reshape carries a constant shape
        return t.reshape(-1, self.tokens, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self._split_heads(self.q_act(self.q(x)))
        k = self._split_heads(self.k_act(self.k(x)))
        v = self._split_heads(self.v_act(self.v(x)))
        scores = self.score_act((q @ k.transpose(-2, -1)) * self.scale)
        ctx = self.ctx_act(scores.softmax(dim=-1) @ v)
        return self.out_act(
            self.out(ctx.transpose(1, 2).reshape(-1, self.tokens, self.heads * self.head_dim))
        )


class QCFSBlock(nn.Module):
    """Pre-norm encoder block with BN + QCFS in place of LayerNorm, and fc + BN + QCFS in the MLP."""

    def __init__(self, dim: int, heads: int, hidden: int, tokens: int) -> None:
        super().__init__()
        self.norm1, self.norm1_act = TokenBatchNorm(dim), QCFS(mask=TRAIN_MASK)
        self.attn = QCFSAttention(dim, heads, tokens)
        self.norm2, self.norm2_act = TokenBatchNorm(dim), QCFS(mask=TRAIN_MASK)
        self.fc1, self.bn1, self.act1 = nn.Linear(dim, hidden), TokenBatchNorm(hidden), QCFS(mask=TRAIN_MASK)
        self.fc2, self.bn2, self.act2 = nn.Linear(hidden, dim), TokenBatchNorm(dim), QCFS()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1_act(self.norm1(x)))
        h = self.act1(self.bn1(self.fc1(self.norm2_act(self.norm2(x)))))
        return x + self.act2(self.bn2(self.fc2(h)))


class DigitsViTQCFS(nn.Module):
    """DigitsViT's layout (2x2 patches, 16 tokens + CLS, learned positions, CLS head) with MST's blocks
    and a BN + QCFS final norm."""

    def __init__(self, dim: int = 48, depth: int = 2, heads: int = 4, hidden: int = 96) -> None:
        super().__init__()
        self.grid = IMAGE_SIZE // PATCH
        self.num_patches = self.grid * self.grid
        self.tokens = self.num_patches + 1
        self.patch_embed = nn.Linear(PATCH * PATCH, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.tokens, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.Sequential(*(QCFSBlock(dim, heads, hidden, self.tokens) for _ in range(depth)))
        self.norm = nn.Sequential(TokenBatchNorm(dim), QCFS())
        self.head = nn.Linear(dim, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, p = self.grid, PATCH
        # [B,1,8,8] -> [B,16,4]: patches by Reshape/Transpose, as DigitsViT cuts them
        patches = x.reshape(-1, 1, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(-1, self.num_patches, p * p)
        tokens = self.patch_embed(patches)
        h = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(h))[:, 0])
