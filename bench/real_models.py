"""Real-world transformer exports through the whole CLI (issue L, item 7).

A matrix of architectures as people export them (timm, torchvision, nn.TransformerEncoder, bare
nn.MultiheadAttention, Hugging Face BERT/DistilBERT/RoBERTa/ViT/DeiT/Swin/GPT-2/Llama/T5/Whisper/
Wav2Vec2, a sentence-transformers-style encoder), each built small from its config class with
seeded random weights (no hub), exported with TorchScript (opsets 14 and 17) and dynamo (opset 18),
then run through `snnconvert` stage by stage: inspect -> calibrate -> convert (every built-in
recipe) -> simulate -> energy-report. The weights are random, so accuracy means nothing here; what
is measured is whether each stage gets through and how close the SNN's output is to the ANN's
(cosine over the test samples' outputs at T = 8 and 32).

    python -m bench.real_models export [--only PATTERN ...] [--no-install]
    python -m bench.real_models run [--only PATTERN ...] [--timesteps 8 32] [--code DIR] [--tag before]
    python -m bench.real_models report          # rewrite the Markdown/TXT from the JSON
    python -m bench.real_models                 # export + run (what `make bench` calls)

Exports are cached outside the repository in $SNN_REAL_MODELS_CACHE (default
~/.cache/snnconvert-real-models): CASE/EXPORTER/{model.onnx[.data], calib.npz, test.npz, case.json},
and the CLI's outputs under runs/. timm and torchvision are installed (--no-deps, never replacing
torch) into CACHE/site and put on the path only of the export subprocesses that need them: with
torchvision importable, transformers tries to import it, and the PyPI torchvision dies registering
its custom ops against the CPU torch, so it must not be visible to anything else.

Writes bench/results/real_models.json, real_models.md (a table: case x exporter rows, stage
columns, output cosine per recipe at T = 8 / 32) and real_models_unsupported.txt (the ONNX op types
the import reported unsupported, with the cases that need them). `--tag before` also writes
real_models_before.{json,md}. `--code DIR` runs the CLI from the snnconvert package under DIR (e.g.
a `git archive` of a commit) instead of the installed one.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CACHE = Path(os.environ.get("SNN_REAL_MODELS_CACHE", "~/.cache/snnconvert-real-models")).expanduser()

# exporter id -> (torch.onnx.export's dynamo flag, opset)
EXPORTERS: dict[str, tuple[bool, int]] = {"ts14": (False, 14), "ts17": (False, 17), "dy18": (True, 18)}
N_SAMPLES = 32  # calibration and test samples each
EXAMPLE_BATCH = 2  # the batch the exporters trace with (dynamo specialises a batch of 1)
STAGE_TIMEOUT = 300.0
EXPORT_TIMEOUT = 600.0
TABLE_RECIPES = (("mueller2021", "mu"), ("sit2024", "sit"), ("spikezip_count", "zip"))
SIT_TARGET = 0.99  # the bar: sit2024 output cosine at T = 32

# width 64, 4 heads, 2 layers, seq <= 16, images 32x32 wherever the architecture allows
D, HEADS, FF, LAYERS, SEQ, VOCAB, IMG, PATCH = 64, 4, 128, 2, 16, 100, 32, 8


# -- inputs --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Input:
    """One model input. `shape` excludes the batch, which sits at `batch_axis` of the full array."""

    name: str
    kind: str  # normal (~N(0,1)) | tokens | mask (1 = keep) | padmask (True = padding) | audio
    shape: tuple[int, ...]
    batch_axis: int = 0
    vocab: int = VOCAB
    pad_id: int = 0


def make_data(inputs: list[Input], n: int, seed: int) -> dict[str, np.ndarray]:
    """Plausible inputs for n samples: images/features ~N(0,1), token ids in the vocabulary with the
    padded tail set to the pad id, attention masks with some padding (every sample keeps at least
    half its tokens), waveforms ~0.1*N(0,1)."""
    rng = np.random.default_rng(seed)
    seq = next((i.shape[0] for i in inputs if i.kind in ("tokens", "mask", "padmask")), 0)
    lengths = rng.integers((seq + 1) // 2, seq + 1, size=n) if seq else None
    if lengths is not None:
        lengths[0] = seq  # one unpadded sample at least
    out = {}
    for i in inputs:
        if i.kind == "normal":
            a = rng.standard_normal((n, *i.shape)).astype(np.float32)
        elif i.kind == "audio":
            a = (0.1 * rng.standard_normal((n, *i.shape))).astype(np.float32)
        elif i.kind == "tokens":
            a = rng.integers(3, i.vocab, size=(n, *i.shape)).astype(np.int64)
            for k, ln in enumerate(lengths):
                a[k, ln:] = i.pad_id
        elif i.kind == "mask":
            a = (np.arange(i.shape[0])[None, :] < lengths[:, None]).astype(np.int64)
        elif i.kind == "padmask":
            a = np.arange(i.shape[0])[None, :] >= lengths[:, None]
        else:
            raise ValueError(f"unknown input kind {i.kind}")
        out[i.name] = np.moveaxis(a, 0, i.batch_axis) if i.batch_axis else a
    return out


# -- cases ---------------------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    family: str  # torch | timm | torchvision | hf
    what: str
    build: Callable[[], Any]  # -> torch.nn.Module whose forward takes the inputs by name, in order
    inputs: list[Input]
    out_batch_axis: int = 0
    big: bool = False
    extras: tuple[str, ...] = ()  # packages beyond torch + transformers: timm, torchvision

    @property
    def seed(self) -> int:
        return zlib.crc32(self.id.encode()) & 0x7FFFFFFF


def _text(vocab=VOCAB, pad_id=0, seq=SEQ) -> list[Input]:
    return [
        Input("input_ids", "tokens", (seq,), vocab=vocab, pad_id=pad_id),
        Input("attention_mask", "mask", (seq,)),
    ]


def _image(size=IMG) -> list[Input]:
    return [Input("pixel_values", "normal", (3, size, size))]


def fused_qkv_vit(act: str = "gelu", dim=D, heads=HEADS, depth=LAYERS, img=IMG, patch=PATCH, classes=10):
    """A timm-style ViT written in plain torch: one fused qkv Linear split by
    reshape(B, N, 3, H, d).permute(2, 0, 3, 1, 4), class token, learned positions, pre-norm blocks,
    MLP with GELU or ReLU, classifier on the class token."""
    import torch
    from torch import nn

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads, self.scale = heads, (dim // heads) ** -0.5
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)

        def forward(self, x):
            B, N, C = x.shape
            qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
            attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
            return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1, self.attn, self.norm2 = nn.LayerNorm(dim), Attention(), nn.LayerNorm(dim)
            self.mlp = nn.Sequential(
                nn.Linear(dim, 2 * dim), nn.GELU() if act == "gelu" else nn.ReLU(), nn.Linear(2 * dim, dim)
            )

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class ViT(nn.Module):
        def __init__(self):
            super().__init__()
            n = (img // patch) ** 2
            self.patch = nn.Conv2d(3, dim, patch, patch)
            self.cls = nn.Parameter(0.02 * torch.randn(1, 1, dim))
            self.pos = nn.Parameter(0.02 * torch.randn(1, n + 1, dim))
            self.blocks = nn.Sequential(*[Block() for _ in range(depth)])
            self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

        def forward(self, pixel_values):
            x = self.patch(pixel_values).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
            return self.head(self.norm(self.blocks(x))[:, 0])

    return ViT()


def transformer_encoder(batch_first: bool, norm_first: bool = False, act: str = "relu", mask: bool = False):
    """nn.TransformerEncoder over float features [B, S, E] (or [S, B, E]), optionally with a key
    padding mask input (bool, True = padding)."""
    from torch import nn

    layer = nn.TransformerEncoderLayer(
        D, HEADS, FF, dropout=0.0, activation=act, batch_first=batch_first, norm_first=norm_first
    )
    enc = nn.TransformerEncoder(
        layer, LAYERS, norm=nn.LayerNorm(D) if norm_first else None, enable_nested_tensor=False
    )

    class Enc(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = enc

        def forward(self, src):
            return self.enc(src)

    class EncMask(Enc):
        def forward(self, src, src_key_padding_mask):
            return self.enc(src, src_key_padding_mask=src_key_padding_mask)

    return EncMask() if mask else Enc()


def bare_mha(batch_first: bool):
    """One nn.MultiheadAttention used as self-attention, nothing around it."""
    from torch import nn

    class MHA(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(D, HEADS, batch_first=batch_first)

        def forward(self, x):
            return self.mha(x, x, x, need_weights=False)[0]

    return MHA()


def _timm_vit(act: str):
    from timm.models.vision_transformer import VisionTransformer
    from torch import nn

    kw = {} if act == "gelu" else {"act_layer": nn.ReLU}
    return VisionTransformer(
        img_size=IMG, patch_size=PATCH, embed_dim=D, depth=LAYERS, num_heads=HEADS, mlp_ratio=2.0,
        num_classes=10, **kw,
    )  # fmt: skip


def _tv_vit_small():
    from torchvision.models.vision_transformer import VisionTransformer

    return _tv_head(VisionTransformer(
        image_size=IMG, patch_size=PATCH, num_layers=LAYERS, num_heads=HEADS, hidden_dim=D, mlp_dim=FF,
        num_classes=10,
    ))  # fmt: skip


def _tv_vit_b_16():
    from torchvision.models import vit_b_16

    return _tv_head(vit_b_16(weights=None))


def _tv_head(m):
    """torchvision zero-initialises the classifier (an all-zero output, whose cosine says nothing)."""
    import torch

    torch.nn.init.normal_(m.heads.head.weight, std=0.02)
    torch.nn.init.normal_(m.heads.head.bias, std=0.02)
    return m


# Hugging Face: a wrapper whose forward takes the inputs by name and returns one tensor
def _hf(model, names: tuple[str, ...], pick: str = "last_hidden_state"):
    from torch import nn

    class One(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

    if names == ("input_ids", "attention_mask"):

        class Text(One):
            def forward(self, input_ids, attention_mask):
                return self.model(input_ids=input_ids, attention_mask=attention_mask)[pick]

        return Text()
    if names == ("pixel_values",):

        class Image(One):
            def forward(self, pixel_values):
                return self.model(pixel_values=pixel_values)[pick]

        return Image()
    if names == ("input_values",):

        class Audio(One):
            def forward(self, input_values):
                return self.model(input_values=input_values)[pick]

        return Audio()
    if names == ("input_features",):

        class Mel(One):
            def forward(self, input_features):
                return self.model(input_features=input_features)[pick]

        return Mel()
    raise ValueError(names)


_TEXT = ("input_ids", "attention_mask")
_SMALL_BERT = dict(
    vocab_size=VOCAB, hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
    intermediate_size=FF, max_position_embeddings=32,
)  # fmt: skip


def _bert(attn: str):
    from transformers import BertConfig, BertModel

    return _hf(BertModel(BertConfig(**_SMALL_BERT, attn_implementation=attn)), _TEXT)


def _distilbert():
    from transformers import DistilBertConfig, DistilBertModel

    cfg = DistilBertConfig(vocab_size=VOCAB, dim=D, n_layers=LAYERS, n_heads=HEADS, hidden_dim=FF,
                           max_position_embeddings=32)  # fmt: skip
    return _hf(DistilBertModel(cfg), _TEXT)


def _roberta():
    from transformers import RobertaConfig, RobertaModel

    cfg = RobertaConfig(**{**_SMALL_BERT, "max_position_embeddings": SEQ + 2}, pad_token_id=1)
    return _hf(RobertaModel(cfg, add_pooling_layer=False), _TEXT)


def _hf_vit():
    from transformers import ViTConfig, ViTModel

    cfg = ViTConfig(image_size=IMG, patch_size=PATCH, hidden_size=D, num_hidden_layers=LAYERS,
                    num_attention_heads=HEADS, intermediate_size=FF)  # fmt: skip
    return _hf(ViTModel(cfg, add_pooling_layer=False), ("pixel_values",))


def _deit():
    from transformers import DeiTConfig, DeiTModel

    cfg = DeiTConfig(image_size=IMG, patch_size=PATCH, hidden_size=D, num_hidden_layers=LAYERS,
                     num_attention_heads=HEADS, intermediate_size=FF)  # fmt: skip
    return _hf(DeiTModel(cfg, add_pooling_layer=False), ("pixel_values",))


def _swin():
    from transformers import SwinConfig, SwinModel

    cfg = SwinConfig(image_size=IMG, patch_size=4, embed_dim=32, depths=[1, 1], num_heads=[2, 4],
                     window_size=4, mlp_ratio=2.0)  # fmt: skip
    return _hf(SwinModel(cfg, add_pooling_layer=False), ("pixel_values",))


def _gpt2():
    from transformers import GPT2Config, GPT2Model

    cfg = GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=D, n_layer=LAYERS, n_head=HEADS, n_inner=FF,
                     use_cache=False)  # fmt: skip
    return _hf(GPT2Model(cfg), _TEXT)


def _llama():
    from transformers import LlamaConfig, LlamaModel

    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=D, intermediate_size=FF, num_hidden_layers=LAYERS,
                      num_attention_heads=HEADS, num_key_value_heads=2, max_position_embeddings=32,
                      use_cache=False)  # fmt: skip
    return _hf(LlamaModel(cfg), _TEXT)


def _t5_encoder():
    from transformers import T5Config, T5EncoderModel

    cfg = T5Config(vocab_size=VOCAB, d_model=D, d_kv=D // HEADS, d_ff=FF, num_layers=LAYERS, num_heads=HEADS,
                   relative_attention_num_buckets=8, relative_attention_max_distance=16,
                   use_cache=False)  # fmt: skip
    return _hf(T5EncoderModel(cfg), _TEXT)


WHISPER_MELS, WHISPER_POS = 16, 8  # input frames = 2 * positions (the encoder's conv has stride 2)


def _whisper_encoder():
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    cfg = WhisperConfig(vocab_size=VOCAB, num_mel_bins=WHISPER_MELS, d_model=D, encoder_layers=LAYERS,
                        encoder_attention_heads=HEADS, encoder_ffn_dim=FF, decoder_layers=1,
                        decoder_attention_heads=HEADS, decoder_ffn_dim=FF,
                        max_source_positions=WHISPER_POS, max_target_positions=16)  # fmt: skip
    return _hf(WhisperEncoder(cfg), ("input_features",))


WAV_SAMPLES = 160  # -> 15 frames after the (10, 5) and (3, 2) convolutions


def _wav2vec2():
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    cfg = Wav2Vec2Config(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=FF,
                         conv_dim=(32, 32), conv_stride=(5, 2), conv_kernel=(10, 3),
                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                         mask_time_prob=0.0)  # fmt: skip
    return _hf(Wav2Vec2Model(cfg), ("input_values",))


def _sentence_encoder():
    """all-MiniLM-style: a BERT encoder, mean pooling over the attention mask, L2 normalisation."""
    import torch
    from torch import nn
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(**_SMALL_BERT, attn_implementation="eager"), add_pooling_layer=False)

    class SentenceEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return SentenceEncoder()


_FEATS = [Input("src", "normal", (SEQ, D))]
_FEATS_SF = [Input("src", "normal", (SEQ, D), batch_axis=1)]
_KPM = [Input("src", "normal", (SEQ, D)), Input("src_key_padding_mask", "padmask", (SEQ,))]

CASES: list[Case] = [
    Case("qkv_gelu", "torch", "plain-torch timm-style ViT, fused qkv, GELU MLP",
         lambda: fused_qkv_vit("gelu"), _image()),
    Case("qkv_relu", "torch", "plain-torch timm-style ViT, fused qkv, ReLU MLP",
         lambda: fused_qkv_vit("relu"), _image()),
    Case("tenc_bf", "torch", "nn.TransformerEncoder batch_first=True, post-norm, ReLU",
         lambda: transformer_encoder(True), _FEATS),
    Case("tenc_nf", "torch", "nn.TransformerEncoder batch_first=True, norm_first=True, GELU, final norm",
         lambda: transformer_encoder(True, norm_first=True, act="gelu"), _FEATS),
    Case("tenc_sf", "torch", "nn.TransformerEncoder batch_first=False (batch on axis 1), ReLU",
         lambda: transformer_encoder(False), _FEATS_SF, out_batch_axis=1),
    Case("tenc_kpm", "torch", "nn.TransformerEncoder batch_first=True with src_key_padding_mask, ReLU",
         lambda: transformer_encoder(True, mask=True), _KPM),
    Case("mha_bf", "torch", "bare nn.MultiheadAttention self-attention, batch_first=True",
         lambda: bare_mha(True), [Input("x", "normal", (SEQ, D))]),
    Case("mha_sf", "torch", "bare nn.MultiheadAttention self-attention, batch_first=False (axis 1)",
         lambda: bare_mha(False), [Input("x", "normal", (SEQ, D), batch_axis=1)], out_batch_axis=1),
    Case("timm_vit", "timm", "timm VisionTransformer (fused qkv), GELU MLP",
         lambda: _timm_vit("gelu"), _image(), extras=("timm",)),
    Case("timm_relu", "timm", "timm VisionTransformer (fused qkv), ReLU MLP",
         lambda: _timm_vit("relu"), _image(), extras=("timm",)),
    Case("tv_vit2", "torchvision", "torchvision VisionTransformer, 2 layers, width 64, 32x32",
         _tv_vit_small, _image(), extras=("torchvision",)),
    Case("tv_b16", "torchvision", "torchvision vit_b_16 at real size (12 x 768, 224x224, 86 M params)",
         _tv_vit_b_16, _image(224), big=True, extras=("torchvision",)),
    Case("bert_eager", "hf", "HF BertModel, eager attention", lambda: _bert("eager"), _text()),
    Case("bert_sdpa", "hf", "HF BertModel, SDPA attention", lambda: _bert("sdpa"), _text()),
    Case("distilbert", "hf", "HF DistilBertModel", _distilbert, _text()),
    Case("roberta", "hf", "HF RobertaModel (positions from the ids, pad id 1)", _roberta, _text(pad_id=1)),
    Case("hf_vit", "hf", "HF ViTModel", _hf_vit, _image()),
    Case("deit", "hf", "HF DeiTModel (class + distillation tokens)", _deit, _image()),
    Case("swin", "hf", "HF SwinModel (window attention, patch merging)", _swin, _image()),
    Case("gpt2", "hf", "HF GPT2Model (causal, Conv1D, gelu_new)", _gpt2, _text()),
    Case("llama", "hf", "HF LlamaModel (RMSNorm, rotary, SiLU-gated MLP, GQA)", _llama, _text()),
    Case("t5_enc", "hf", "HF T5EncoderModel (relative position bias, RMSNorm, ReLU)", _t5_encoder, _text()),
    Case("whisper_enc", "hf", "HF WhisperEncoder (conv front end, 16 mels x 16 frames)", _whisper_encoder,
         [Input("input_features", "normal", (WHISPER_MELS, 2 * WHISPER_POS))]),
    Case("wav2vec2", "hf", "HF Wav2Vec2Model (conv feature encoder, group norm, conv positions)",
         _wav2vec2, [Input("input_values", "audio", (WAV_SAMPLES,))]),
    Case("st_mean", "hf", "sentence-transformers style: BERT, mean pooling over the mask, L2 norm",
         _sentence_encoder, _text()),
]  # fmt: skip
BY_ID = {c.id: c for c in CASES}


def select(patterns: list[str] | None, big: bool = True) -> list[Case]:
    cs = [c for c in CASES if big or not c.big]
    if not patterns:
        return cs
    return [c for c in cs if any(fnmatch.fnmatch(c.id, p) or p in c.id for p in patterns)]


def needs(case: Case) -> list[str]:
    """CLI options a case needs that the CLI may not have yet."""
    return [f"--batch-axis {i.name}={i.batch_axis}" for i in case.inputs if i.batch_axis]


# -- export --------------------------------------------------------------------------------------------
def _first_line(e: BaseException | str, limit: int = 300) -> str:
    """One line saying what went wrong: for an exception, the innermost cause (torch.onnx's
    TorchExportError wraps the torch.export error in a page of advice), colour codes removed."""
    if isinstance(e, BaseException):
        while e.__cause__ is not None:
            e = e.__cause__
    s = e if isinstance(e, str) else (f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
    s = re.sub(r"\x1b\[[0-9;]*m", "", s)
    lines = [ln.strip() for ln in s.strip().splitlines() if ln.strip()]
    return (lines[0] if lines else "")[:limit]


def _site() -> Path:
    return CACHE / "site"


def install_extras() -> str | None:
    """timm and the torchvision matching the installed torch, --no-deps into CACHE/site. Returns
    None when both import there, else why not."""
    import torch

    site = _site()
    if (site / "timm").is_dir() and (site / "torchvision").is_dir():
        return None
    major, minor = (int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
    tv = f"torchvision==0.{minor + 15}.*" if major == 2 else "torchvision"
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), "timm", tv]
    print(f"installing into {site}: {' '.join(cmd[4:])}", flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return f"pip install {tv} timm failed: {_first_line(r.stderr.strip().splitlines()[-1] if r.stderr else '')}"
    return None


def _stub_torchvision_ops() -> None:
    """The PyPI torchvision registers fake kernels for its C++ ops at import, which the CPU torch
    does not have ('operator torchvision::nms does not exist'); the models need none of them."""
    import types

    sys.modules.setdefault(
        "torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations")
    )


def _export_one(model, case: Case, exporter: str, example: tuple, path: Path) -> None:
    import torch

    dynamo, opset = EXPORTERS[exporter]
    names = [i.name for i in case.inputs]
    kw: dict[str, Any] = dict(input_names=names, output_names=["output"], opset_version=opset)
    if dynamo:
        batch = torch.export.Dim("batch", min=1, max=4096)
        kw["dynamic_shapes"] = tuple({i.batch_axis: batch} for i in case.inputs)  # by position
        kw["verbose"] = False
    else:
        kw["dynamic_axes"] = {i.name: {i.batch_axis: "batch"} for i in case.inputs}
        kw["dynamic_axes"]["output"] = {case.out_batch_axis: "batch"}
    import contextlib
    import io
    import logging
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            torch.onnx.export(model, example, str(path), dynamo=dynamo, **kw)
        finally:
            logging.disable(logging.NOTSET)


def _ort_check(path: Path, feeds: dict[str, np.ndarray], want: np.ndarray) -> dict[str, Any]:
    """Run the exported file on the test samples with onnxruntime and compare with torch."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    got = sess.run(None, feeds)[0]
    if got.shape != want.shape:
        raise ValueError(f"onnxruntime output shape {list(got.shape)} != torch {list(want.shape)}")
    a, b = got.astype(np.float64).ravel(), want.astype(np.float64).ravel()
    cos = (
        float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        if np.linalg.norm(a) * np.linalg.norm(b)
        else 1.0
    )
    return {"max_abs_diff": float(np.abs(a - b).max()), "cosine": cos, "output_shape": list(want.shape)}


def export_case(case: Case, exporters: list[str], out_root: Path) -> None:
    """Build the case (seeded) and export it with each exporter into out_root/CASE/EXPORTER. Runs in
    a subprocess of `export`; every outcome, failure included, is a case.json."""
    import torch

    if "torchvision" in case.extras or "timm" in case.extras:
        _stub_torchvision_ops()
    torch.manual_seed(case.seed)
    np.random.seed(case.seed % 2**32)
    t0 = time.perf_counter()
    base = {
        "case": case.id,
        "family": case.family,
        "what": case.what,
        "big": case.big,
        "inputs": [
            {"name": i.name, "kind": i.kind, "shape": list(i.shape), "batch_axis": i.batch_axis}
            for i in case.inputs
        ],
        "out_batch_axis": case.out_batch_axis,
        "needs": needs(case),
        "seed": case.seed,
        "versions": _versions(case),
    }
    try:
        model = case.build().eval()
        params = sum(p.numel() for p in model.parameters())
        calib = make_data(case.inputs, N_SAMPLES, seed=case.seed + 1)
        test = make_data(case.inputs, N_SAMPLES, seed=case.seed + 2)
        example = tuple(
            torch.from_numpy(np.take(calib[i.name], range(EXAMPLE_BATCH), axis=i.batch_axis))
            for i in case.inputs
        )
        with torch.no_grad():
            want = model(*[torch.from_numpy(test[i.name]) for i in case.inputs]).numpy()
        if float(np.std(want)) == 0.0:
            raise RuntimeError(
                "the model's output is constant on the test samples (a zero-initialised head?)"
            )
        build_error = None
    except Exception as e:  # a case that cannot even be built (a config the library rejects)
        build_error, params = _first_line(e), None
    base["build_seconds"] = round(time.perf_counter() - t0, 2)
    for exp in exporters:
        dst = out_root / case.id / exp
        tmp = Path(tempfile.mkdtemp(prefix=f".{exp}-", dir=dst.parent if dst.parent.is_dir() else None))
        info = {
            **base,
            "exporter": exp,
            "dynamo": EXPORTERS[exp][0],
            "opset": EXPORTERS[exp][1],
            "params": params,
        }
        t1 = time.perf_counter()
        try:
            if build_error:
                raise RuntimeError(f"building the model failed: {build_error}")
            # grad enabled: nn.MultiheadAttention's fast path (taken under no_grad) does not export
            try:
                _export_one(model, case, exp, example, tmp / "model.onnx")
            except Exception as e:
                raise RuntimeError(f"export failed: {_first_line(e)}") from None
            try:
                info["ort_check"] = _ort_check(tmp / "model.onnx", test, want)
            except Exception as e:
                raise RuntimeError(
                    f"export failed: onnxruntime cannot run it on the test batch: {_first_line(e)}"
                ) from None
            info["onnx_ops"] = _op_histogram(tmp / "model.onnx")
            np.savez(tmp / "calib.npz", **calib)
            np.savez(tmp / "test.npz", **test)
            info["status"] = "ok"
        except Exception as e:
            info["status"] = (
                str(e)
                if str(e).startswith(("export failed", "building"))
                else f"export failed: {_first_line(e)}"
            )
            for f in tmp.iterdir():
                f.unlink()
        info["export_seconds"] = round(time.perf_counter() - t1, 2)
        (tmp / "case.json").write_text(json.dumps(info, indent=1) + "\n")
        if dst.exists():
            shutil.rmtree(dst)
        tmp.rename(dst)
        print(f"  {case.id}/{exp}: {info['status']} ({info['export_seconds']:.1f} s)", flush=True)


def _op_histogram(path: Path) -> dict[str, int]:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    h: dict[str, int] = defaultdict(int)
    for n in m.graph.node:
        h[(n.domain + "." if n.domain not in ("", "ai.onnx") else "") + n.op_type] += 1
    return dict(sorted(h.items()))


def _versions(case: Case) -> dict[str, str]:
    import torch

    v = {"torch": torch.__version__}
    mods = ["transformers", "onnx", "onnxruntime", "onnxscript", *case.extras]
    for m in mods:
        try:
            v[m] = __import__(m).__version__
        except Exception:
            v[m] = "not importable"
    return v


def _export_versions(dirs: list[Path]) -> dict[str, str]:
    """The library versions the exports were made with (timm/torchvision: those in CACHE/site)."""
    v: dict[str, str] = {}
    for d in dirs:
        for k, x in json.loads((d / "case.json").read_text()).get("versions", {}).items():
            if x != "not importable":
                v.setdefault(k, x)
    return dict(sorted(v.items()))


def cmd_export(args) -> int:
    cases = select(args.only, big=not args.no_big)
    if not cases:
        print(f"no case matches {args.only}; cases: {', '.join(c.id for c in CASES)}")
        return 2
    CACHE.mkdir(parents=True, exist_ok=True)
    extras_error = None
    if any(c.extras for c in cases):
        extras_error = "--no-install given" if args.no_install and not _site().is_dir() else None
        if not args.no_install:
            extras_error = install_extras()
    exporters = args.exporters or list(EXPORTERS)
    t0 = time.perf_counter()
    for k, case in enumerate(cases, 1):
        print(f"[{k}/{len(cases)}] export {case.id} ({case.what})", flush=True)
        (CACHE / case.id).mkdir(parents=True, exist_ok=True)
        for exp in exporters:  # a stale export must not stand in for one that fails now
            if (CACHE / case.id / exp).exists():
                shutil.rmtree(CACHE / case.id / exp)
        env = dict(os.environ)
        if case.extras:
            env["PYTHONPATH"] = os.pathsep.join([str(_site()), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            )
        else:
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        cmd = [sys.executable, "-m", "bench.real_models", "_export_one", case.id, *exporters]
        why = None
        if case.extras and extras_error:
            why = f"export failed: {'/'.join(case.extras)} not available ({extras_error})"
        else:
            try:
                r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                   timeout=EXPORT_TIMEOUT * (3 if case.big else 1))  # fmt: skip
                sys.stdout.write(r.stdout)
                if r.returncode != 0:
                    tail = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
                    why = f"export failed: exporter process died ({_first_line(tail[-1] if tail else f'exit {r.returncode}')})"
            except subprocess.TimeoutExpired:
                why = f"export failed: timed out after {EXPORT_TIMEOUT:g} s"
        for exp in exporters:  # record every exporter the subprocess did not get to
            d = CACHE / case.id / exp
            if (d / "case.json").is_file():
                continue
            why = why or "export failed: the exporter process wrote nothing"
            if d.exists():
                shutil.rmtree(d)
            d.mkdir(parents=True)
            info = {"case": case.id, "exporter": exp, "status": why, "what": case.what, "big": case.big,
                    "needs": needs(case), "family": case.family}  # fmt: skip
            (d / "case.json").write_text(json.dumps(info, indent=1) + "\n")
            print(f"  {case.id}/{exp}: {why}", flush=True)
    print(f"exported {len(cases)} cases in {time.perf_counter() - t0:.0f} s into {CACHE}", flush=True)
    return 0


# -- run -----------------------------------------------------------------------------------------------
@dataclass
class Stage:
    status: str  # ok | error | internal error | timeout | crash | skipped
    message: str = ""
    seconds: float = 0.0

    def json(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, "seconds": round(self.seconds, 2)}


@dataclass
class Runner:
    code: Path | None  # run the snnconvert package under this directory instead of the installed one
    timeout: float = STAGE_TIMEOUT
    _help: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        if self.code is not None:
            env["PYTHONPATH"] = str(self.code)
        env.setdefault("COLUMNS", "200")
        return env

    def cli(self, *args: str, timeout: float | None = None) -> Stage:
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "snnconvert", *map(str, args)]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout or self.timeout,
                               env=self.env(), cwd=tempfile.gettempdir())  # fmt: skip
        except subprocess.TimeoutExpired:
            return Stage(
                "timeout", f"timed out after {timeout or self.timeout:g} s", time.perf_counter() - t0
            )
        dt = time.perf_counter() - t0
        r.stderr = r.stderr.replace(str(CACHE), "$CACHE")
        if r.returncode == 0:
            return Stage("ok", "", dt)
        lines = [ln.strip() for ln in r.stderr.splitlines() if ln.strip()]
        for ln in lines:
            if ln.startswith("internal error:"):
                return Stage("internal error", ln[len("internal error:") :].strip(), dt)
            if ln.startswith("error:"):
                return Stage("error", ln[len("error:") :].strip(), dt)
        return Stage("crash", f"exit {r.returncode}: {lines[-1] if lines else '(no output)'}"[:400], dt)

    def has_option(self, command: str, option: str) -> bool:
        if command not in self._help:
            r = subprocess.run([sys.executable, "-m", "snnconvert", command, "--help"], capture_output=True,
                               text=True, env=self.env(), cwd=tempfile.gettempdir())  # fmt: skip
            self._help[command] = r.stdout
        return option in self._help[command]

    def recipes(self) -> list[str]:
        if self.code is not None:
            d = self.code / "snnconvert" / "recipes"
        else:
            import snnconvert

            d = Path(snnconvert.__file__).parent / "recipes"
        return sorted(p.stem for p in d.glob("*.yaml"))


def run_case(runner: Runner, d: Path, timesteps: list[int], recipes: list[str], log) -> dict[str, Any]:
    """Every stage of the CLI on one exported case directory."""
    info = json.loads((d / "case.json").read_text())
    row: dict[str, Any] = {
        "case": info["case"],
        "exporter": info["exporter"],
        "what": info.get("what", ""),
        "big": info.get("big", False),
        "needs": info.get("needs", []),
        "export": {k: info.get(k) for k in ("status", "export_seconds", "params", "ort_check", "opset")},
        "onnx_ops": info.get("onnx_ops", {}),
        "stages": {},
        "recipes": {},
    }
    if info["status"] != "ok":
        log(f"{info['status']}")
        return row
    timeout = runner.timeout * (4 if info.get("big") else 1)
    work = CACHE / "runs" / info["case"] / info["exporter"]
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    model, calib, test = d / "model.onnx", d / "calib.npz", d / "test.npz"
    extra: dict[str, list[str]] = {}
    missing = []
    for i in info.get("inputs", []):
        if i["batch_axis"]:
            for c in ("inspect", "calibrate", "convert", "simulate"):
                if runner.has_option(c, "--batch-axis"):
                    extra.setdefault(c, []).extend(["--batch-axis", f"{i['name']}={i['batch_axis']}"])
                elif c == "inspect":
                    missing.append(f"--batch-axis {i['name']}={i['batch_axis']}")
    if missing:
        row["cli_lacks"] = missing
    # real size: 4 samples, one at a time (T = 32 steps of a ViT-Base folded with a batch of 4 would
    # hold GBs per activation)
    sim_samples = ["--samples", "4", "--batch-size", "1"] if info.get("big") else []

    def stage(key: str, *args: str) -> Stage:
        s = runner.cli(*args, timeout=timeout)
        row["stages"][key] = s.json()
        log(f"{key:36s} {s.status:8s} {s.seconds:6.1f} s  {s.message[:100]}")
        return s

    s = stage("inspect", "inspect", model, "--json", work / "inspect.json", *extra.get("inspect", []))
    if s.status == "ok":
        try:
            ins = json.loads((work / "inspect.json").read_text())
            row["inspect"] = {
                "nodes": sum(r["count"] for r in ins["ops"].values()),
                "ir_ops": {k: r["count"] for k, r in ins["ops"].items()},
                "recipes": {
                    k: {"spiking": r["spiking"], "analog": r["analog"]} for k, r in ins["recipes"].items()
                },
            }
        except Exception as e:
            row["inspect"] = {"unreadable": _first_line(e)}
    s = stage("calibrate", "calibrate", model, "--data", calib, "--out", work / "calib.json",
              *extra.get("calibrate", []))  # fmt: skip
    for r in recipes:
        rec: dict[str, Any] = {}
        row["recipes"][r] = rec
        snn = work / f"snn-{r}"
        if s.status != "ok":
            continue
        c = stage(f"convert {r}", "convert", model, "--calibration", work / "calib.json", "--recipe", r,
                  "--out", snn, *extra.get("convert", []))  # fmt: skip
        rec["convert"] = c.json()
        if c.status != "ok":
            continue
        try:
            summ = json.loads((snn / "summary.json").read_text())
            rec["neurons"] = summ.get("neurons")
            rec["spike_values"] = summ.get("spike_values")
            rec["analog_nodes"] = len(summ.get("analog_nodes", []))
            rec["spiking_softmax"] = len(summ.get("spiking_subnetworks", []))
            rec["notes"] = summ.get("notes", [])
        except Exception as e:
            rec["summary_unreadable"] = _first_line(e)
        m = stage(f"simulate {r}", "simulate", snn, "--data", test, "--timesteps", str(max(timesteps)),
                  "--out", work / f"sim-{r}.json", *sim_samples, *extra.get("simulate", []))  # fmt: skip
        rec["simulate"] = m.json()
        if m.status != "ok":
            continue
        try:
            sim = json.loads((work / f"sim-{r}.json").read_text())
            rec["cosine"] = {str(t): sim["cosine"][t - 1] for t in timesteps}
            rec["rel_error"] = {str(t): sim["rel_error"][t - 1] for t in timesteps}
            rec["sim_samples"] = sim["samples"]
            rec["spikes_per_sample"] = sim.get("total_spikes_per_sample")
        except Exception as e:
            rec["simulation_unreadable"] = _first_line(e)
        e = stage(f"energy-report {r}", "energy-report", snn, "--out", work / f"energy-{r}.json")
        rec["energy"] = e.json()
        if e.status == "ok":
            try:
                tot = json.loads((work / f"energy-{r}.json").read_text())["total"]
                rec["energy_ratio"] = tot.get("ratio")
                rec["spike_driven_fraction"] = tot.get("spike_driven_fraction")
            except Exception as ex:
                rec["energy_unreadable"] = _first_line(ex)
        if info.get("big") and snn.exists():  # two copies of the weights per recipe: GBs at real size
            shutil.rmtree(snn)
    return row


def _code_id(code: Path | None) -> dict[str, Any]:
    root = code if code is not None else ROOT
    out: dict[str, Any] = {"dir": str(root)}
    out["commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                                   text=True).stdout.strip()  # fmt: skip
    if code is None:
        st = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "snnconvert"],
                            capture_output=True, text=True).stdout  # fmt: skip
        out["working_tree"] = "modified snnconvert/ files" if st.strip() else "clean"
    else:  # a snapshot (e.g. `git archive COMMIT snnconvert`), with the commit in DIR/.commit
        marker = code / ".commit"
        out["commit"] = marker.read_text().strip() if marker.is_file() else "unknown"
        out["snapshot"] = True
    return out


def cmd_run(args) -> int:
    code = Path(args.code).resolve() if args.code else None
    if code is not None and not (code / "snnconvert" / "cli.py").is_file():
        print(f"--code {code}: no snnconvert package there")
        return 2
    runner = Runner(code, timeout=args.timeout)
    recipes = runner.recipes()
    cases = select(args.only, big=not args.no_big)
    dirs = [
        CACHE / c.id / e
        for c in cases
        for e in (args.exporters or EXPORTERS)
        if (CACHE / c.id / e / "case.json").is_file()
    ]
    if not dirs:
        print(
            f"nothing exported under {CACHE} for {args.only or 'the matrix'}: run `python -m bench.real_models export` first"
        )
        return 2
    print(f"run: {len(dirs)} exports x stages (recipes: {', '.join(recipes)}; T = {args.timesteps}); CLI from "
          f"{code or 'the installed snnconvert'}", flush=True)  # fmt: skip
    t0 = time.perf_counter()

    def one(k: int, d: Path) -> dict[str, Any]:
        tag = f"[{k}/{len(dirs)}] {d.parent.name}/{d.name}"
        if args.jobs == 1:
            print(tag, flush=True)
            log = lambda msg: print(f"    {msg}", flush=True)
        else:  # lines of concurrent rows interleave: each says whose it is
            log = lambda msg: print(f"{tag} {msg}", flush=True)
        t1 = time.perf_counter()
        row = run_case(runner, d, args.timesteps, recipes, log)
        row["seconds"] = round(time.perf_counter() - t1, 1)
        return row

    if args.jobs == 1:
        rows = [one(k, d) for k, d in enumerate(dirs, 1)]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(one, range(1, len(dirs) + 1), dirs))
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "code": _code_id(code),
        "timesteps": args.timesteps,
        "recipes": recipes,
        "samples": N_SAMPLES,
        "stage_timeout_s": args.timeout,
        "run_seconds": round(time.perf_counter() - t0, 1),
        "cache": str(CACHE),
        "versions": _export_versions(dirs),
    }
    previous = RESULTS / "real_models.json"
    for r in rows:
        r["commit"] = meta["code"].get("commit")
    partial = bool(args.only or args.exporters or args.no_big)
    if partial and previous.is_file():  # a partial run updates its rows of the last full one
        old = json.loads(previous.read_text())
        keep = {(r["case"], r["exporter"]) for r in rows}
        for r in old["rows"]:
            r.setdefault("commit", old["meta"].get("code", {}).get("commit"))
        rows = [r for r in old["rows"] if (r["case"], r["exporter"]) not in keep] + rows
        meta["partial_update"] = sorted({f"{c}/{e}" for c, e in keep})
    order = {(c.id, e): i for i, (c, e) in enumerate((c, e) for c in CASES for e in EXPORTERS)}
    rows.sort(key=lambda r: order.get((r["case"], r["exporter"]), 1 << 30))
    result = {"meta": meta, "rows": rows}
    write_all(result, tags=[None] + ([args.tag] if args.tag else []))
    print(f"run finished in {time.perf_counter() - t0:.0f} s; wrote {RESULTS}/real_models*.", flush=True)
    return 0


# -- results -------------------------------------------------------------------------------------------
def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def signature(msg: str) -> str:
    """An error with its case-specific parts (paths, names, numbers) blanked, for grouping."""
    s = re.sub(r"\S*/(?=[\w.-]+(\s|:|$))", "", msg)  # directories
    s = re.sub(r"'[^']*'", "'…'", s)
    s = re.sub(r"\"[^\"]*\"", '"…"', s)
    s = re.sub(r"\b\d+(\.\d+)?(e[-+]?\d+)?\b", "#", s)
    s = re.sub(r"(\S+ \(\w+\), )+\S+ \(\w+\)", "<nodes>", s)  # lists of "node (Op)"
    return s[:220]


def unsupported_ops(msg: str) -> list[str]:
    """The op types of an 'N unsupported node(s): name (Op), ...' refusal."""
    m = re.search(r"unsupported node\(s\): (.*)$", msg)
    return sorted(set(re.findall(r"\(([\w.]+)\)(?:,|$)", m.group(1)))) if m else []


def _stage_summary(row: dict, recipes: list[str]) -> dict[str, Stage | str]:
    """Per column: the Stage (single) or a list of per-recipe Stages."""
    st = row["stages"]
    out: dict[str, Any] = {}
    out["inspect"] = st.get("inspect")
    out["calibrate"] = st.get("calibrate")
    for kind in ("convert", "simulate", "energy"):
        out[kind] = [row["recipes"].get(r, {}).get(kind) for r in recipes]
    return out


def _failures(rows: list[dict]) -> list[tuple[str, str, str, str]]:
    """(row id, stage, status, message) of every failure."""
    out = []
    for r in rows:
        rid = f"{r['case']}/{r['exporter']}"
        if r["export"]["status"] != "ok":
            out.append((rid, "export", "export failed", r["export"]["status"]))
            continue
        for key, s in r["stages"].items():
            if s["status"] != "ok":
                out.append((rid, key, s["status"], s["message"]))
    return out


def error_codes(rows: list[dict]) -> tuple[dict[tuple[str, str], str], list[dict]]:
    """Codes E1.. for distinct (status, signature) failures, in order of how many rows they hit."""
    groups: dict[tuple[str, str], dict] = {}
    for rid, stage, status, msg in _failures(rows):
        key = (status, signature(msg))
        g = groups.setdefault(
            key, {"status": status, "signature": key[1], "example": msg, "rows": [], "stages": set()}
        )
        if rid not in g["rows"]:
            g["rows"].append(rid)
        g["stages"].add(stage.split()[0])
    ordered = sorted(groups.values(), key=lambda g: (-len(g["rows"]), g["signature"]))
    codes = {}
    for k, g in enumerate(ordered, 1):
        g["code"] = ("X" if g["status"] == "export failed" else "E") + str(k)
        g["stages"] = sorted(g["stages"])
        codes[(g["status"], g["signature"])] = g["code"]
    return codes, ordered


def _cell(s: dict | None, codes) -> str:
    if s is None:
        return "-"
    if s["status"] == "ok":
        return "ok"
    return codes[(s["status"], signature(s["message"]))]


def _multi(ss: list[dict | None], codes) -> str:
    if all(s is None for s in ss):
        return "-"
    ok = sum(1 for s in ss if s and s["status"] == "ok")
    bad = sorted({_cell(s, codes) for s in ss if s and s["status"] != "ok"}, key=lambda c: int(c[1:]))
    return f"{ok}/{len(ss)}" + (" " + ",".join(bad) if bad else "")


def _cos(rec: dict, t: int, sit: bool = False, idle: bool = False) -> str:
    c = (rec or {}).get("cosine", {}).get(str(t))
    if c is None:
        return "–"
    s = f"{c:.4f}"
    return s + ("!" if sit and c < SIT_TARGET else "") + ("°" if idle else "")


def _nothing_spikes(row: dict, recipe: str) -> bool:
    """The recipe converts no node of this model (inspect's count): its SNN is the ANN."""
    r = (row.get("inspect") or {}).get("recipes", {}).get(recipe)
    return r is not None and r.get("spiking") == 0


def counts(rows: list[dict], recipes: list[str]) -> list[tuple[str, int, int]]:
    n = len(rows)
    exp_ok = [r for r in rows if r["export"]["status"] == "ok"]

    def ok(s):
        return s is not None and s["status"] == "ok"

    out = [("export", len(exp_ok), n)]
    out.append(("inspect", sum(ok(r["stages"].get("inspect")) for r in rows), n))
    out.append(("calibrate", sum(ok(r["stages"].get("calibrate")) for r in rows), n))
    for kind in ("convert", "simulate", "energy"):
        allok = sum(all(ok(r["recipes"].get(x, {}).get(kind)) for x in recipes) for r in rows)
        anyok = sum(any(ok(r["recipes"].get(x, {}).get(kind)) for x in recipes) for r in rows)
        out.append((f"{kind} (all {len(recipes)} recipes)", allok, n))
        out.append((f"{kind} (at least one recipe)", anyok, n))
    sit = sum(
        1
        for r in rows
        if ((r["recipes"].get("sit2024") or {}).get("cosine") or {}).get("32", 0) >= SIT_TARGET
    )
    out.append((f"sit2024 output cosine >= {SIT_TARGET} at T = 32", sit, n))
    return out


def markdown(result: dict) -> str:
    meta, rows = result["meta"], result["rows"]
    recipes = meta["recipes"]
    ts = meta["timesteps"]
    codes, groups = error_codes(rows)
    v = meta.get("versions", {})
    code = meta.get("code", {})
    lines = [
        "# Real-world exports through the CLI",
        "",
        "`python -m bench.real_models` (bench/real_models.py): each case built small from its config class with "
        "seeded random weights (no hub), exported with TorchScript (opsets 14, 17) and dynamo (opset 18), then "
        "`snnconvert inspect -> calibrate -> convert (each recipe) -> simulate -> energy-report` as subprocesses. "
        f"{meta['samples']} calibration and {meta['samples']} test samples per case; output cosine is the SNN's "
        "decoded output against the ANN's over the test samples (`simulate`'s per-step `cosine`).",
        "",
        (
            f"- partial run: {len(meta['partial_update'])} rows re-run, the others (`‡`) kept\n"
            if meta.get("partial_update")
            else ""
        )
        + f"- run: {meta['date']}, {meta.get('run_seconds')} s; stage timeout {meta['stage_timeout_s']:g} s "
        "(x4 for the big case, which simulates 4 samples one at a time)",
        f"- code: commit {code.get('commit', '?')[:10]}"
        + (" (a snapshot of it, `--code`)" if code.get("snapshot") or "snapshot_of" in code else "")
        + (f" ({code['working_tree']})" if "working_tree" in code else ""),
        "- " + ", ".join(f"{k} {v[k]}" for k in sorted(v)),
        f"- recipes: {', '.join(recipes)}",
        "",
        "## Summary",
        "",
        "| stage | rows through | of |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {k} | {n} |" for name, k, n in counts(rows, recipes)]
    lines += [
        "",
        "## Matrix",
        "",
        "Stage cells: `ok`, an error code (below), `k/5` recipes ok followed by the codes of the others, `-` not "
        f"reached. `cos@T` for {', '.join(f'{a} = {r}' for r, a in TABLE_RECIPES)}; `!` marks sit2024 below "
        f"{SIT_TARGET} at T = 32; `°` a recipe that converts nothing in this model (no ReLU for mueller2021: "
        "its SNN is the ANN, the cosine says nothing). `†` a case whose batch is on axis 1 (needs `--batch-axis`). "
        "`‡` a row kept from an earlier run (another commit: see the JSON's `commit`).",
        "",
    ]
    cos_head = [f"{a}@{t}" for _, a in TABLE_RECIPES for t in ts]
    head = ["case", "exp", "onnx", "insp", "calib", "convert", "simulate", "energy", *cos_head, "s"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * 3 + [":-:"] * 5 + ["---:"] * (len(cos_head) + 1)) + "|")
    for r in rows:
        exp_ok = r["export"]["status"] == "ok"
        xcode = "ok" if exp_ok else codes[("export failed", signature(r["export"]["status"]))]
        cs = _stage_summary(r, recipes)
        cells = [
            r["case"]
            + (" †" if r.get("needs") else "")
            + (" (big)" if r.get("big") else "")
            + (" ‡" if r.get("commit", code.get("commit")) != code.get("commit") else ""),
            r["exporter"],
            xcode,
            _cell(cs["inspect"], codes) if exp_ok else "-",
            _cell(cs["calibrate"], codes) if exp_ok else "-",
            _multi(cs["convert"], codes),
            _multi(cs["simulate"], codes),
            _multi(cs["energy"], codes),
        ]
        for rname, _ in TABLE_RECIPES:
            for t in ts:
                cells.append(
                    _cos(
                        r["recipes"].get(rname), t, rname == "sit2024" and t == 32, _nothing_spikes(r, rname)
                    )
                )
        cells.append(f"{r.get('seconds', 0):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Errors, grouped", ""]
    if not groups:
        lines.append("none")
    for g in groups:
        lines.append(
            f"- **{g['code']}** ({g['status']}, at {', '.join(g['stages'])}; {len(g['rows'])} rows): "
            f"`{_md_escape(g['example'][:400])}`"
        )
        lines.append(f"  - {', '.join(g['rows'])}")
    unsup = unsupported_table(rows)
    if unsup:
        lines += ["", "## ONNX ops reported unsupported", "", "| op | rows | cases |", "|---|---:|---|"]
        for op, rids in unsup.items():
            lines.append(f"| {op} | {len(rids)} | {', '.join(sorted({x.split('/')[0] for x in rids}))} |")
    lines += ["", "## Cases", "", "| case | what | inputs (per sample) | params |", "|---|---|---|---:|"]
    seen = set()
    for r in rows:
        if r["case"] in seen:
            continue
        seen.add(r["case"])
        c = BY_ID.get(r["case"])
        ins = ", ".join(
            f"{i.name} {i.kind} {list(i.shape)}" + (f" (batch axis {i.batch_axis})" if i.batch_axis else "")
            for i in (c.inputs if c else [])
        )
        p = next(
            (x["export"].get("params") for x in rows if x["case"] == r["case"] and x["export"].get("params")),
            None,
        )
        lines.append(
            f"| {r['case']} | {r['what']} | {ins} | {p:,} |"
            if p
            else f"| {r['case']} | {r['what']} | {ins} | – |"
        )
    return "\n".join(lines) + "\n"


def _md_escape(s: str) -> str:
    return s.replace("`", "'").replace("|", "\\|")


def unsupported_table(rows: list[dict]) -> dict[str, list[str]]:
    ops: dict[str, list[str]] = defaultdict(list)
    for rid, _stage, _status, msg in _failures(rows):
        for op in unsupported_ops(msg):
            if rid not in ops[op]:
                ops[op].append(rid)
    return dict(sorted(ops.items()))


def unsupported_txt(result: dict) -> str:
    cur = result["meta"].get("code", {}).get("commit")
    rows = [  # rows kept from an earlier run (a partial update) say which commit they are from
        {**r, "exporter": r["exporter"] + (f"@{r['commit'][:7]}" if r.get("commit", cur) != cur else "")}
        for r in result["rows"]
    ]
    lines = [
        "# ONNX op types the import reported unsupported ('N unsupported node(s): ...'), one per line,",
        "# with the exports (case/exporter) that need them. Written by `python -m bench.real_models run`",
        f"# on {result['meta']['date']}, commit {result['meta'].get('code', {}).get('commit', '?')[:10]}.",
        "# Lines starting with '#' are comments; the refusals of supported ops (a variant, an attribute)",
        "# follow the list, as comments. CASE/EXPORTER@COMMIT: a row kept from an earlier run at that commit.",
    ]
    for op, rids in unsupported_table(rows).items():
        lines.append(f"{op}\t{' '.join(rids)}")
    variants: dict[str, list[str]] = defaultdict(list)
    for rid, _stage, _status, msg in _failures(rows):
        m = re.search(r"node '[^']*' \((\w+)\): (.*)", msg)
        if m and not unsupported_ops(msg):
            key = f"{m.group(1)}: {signature(m.group(2))}"
            if rid not in variants[key]:
                variants[key].append(rid)
    if variants:
        lines.append("#")
        lines.append("# refused variants of supported ops:")
        for k in sorted(variants):
            lines.append(f"#   {k}\t{' '.join(variants[k])}")
    return "\n".join(lines) + "\n"


def write_all(result: dict, tags: list[str | None]) -> None:
    for tag in tags:
        stem = "real_models" + (f"_{tag}" if tag else "")
        _atomic_write(RESULTS / f"{stem}.json", json.dumps(result, indent=1, sort_keys=False) + "\n")
        _atomic_write(RESULTS / f"{stem}.md", markdown(result))
    _atomic_write(RESULTS / "real_models_unsupported.txt", unsupported_txt(result))


def cmd_report(args) -> int:
    p = RESULTS / ("real_models" + (f"_{args.tag}" if args.tag else "") + ".json")
    result = json.loads(p.read_text())
    stem = p.stem
    _atomic_write(RESULTS / f"{stem}.md", markdown(result))
    if not args.tag:
        _atomic_write(RESULTS / "real_models_unsupported.txt", unsupported_txt(result))
    print(f"wrote {RESULTS / stem}.md")
    return 0


# -- main ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_export_one"]:  # the export subprocess: _export_one CASE EXPORTER...
        export_case(BY_ID[argv[1]], argv[2:], CACHE)
        return 0
    ap = argparse.ArgumentParser(
        prog="python -m bench.real_models",
        description="Real-world transformer exports through the whole CLI (issue L, item 7).",
    )
    sub = ap.add_subparsers(dest="cmd")
    for name in ("export", "run", "all"):
        p = sub.add_parser(name)
        p.add_argument("--only", nargs="+", metavar="PATTERN", help="case ids (glob or substring)")
        p.add_argument("--exporters", nargs="+", choices=list(EXPORTERS))
        p.add_argument("--no-big", action="store_true", help="leave out the real-size case(s)")
        if name in ("export", "all"):
            p.add_argument("--no-install", action="store_true", help="do not pip-install timm/torchvision")
        if name in ("run", "all"):
            p.add_argument("--timesteps", nargs="+", type=int, default=[8, 32])
            p.add_argument("--timeout", type=float, default=STAGE_TIMEOUT, help="seconds per CLI stage")
            p.add_argument("--code", help="run the snnconvert package under this directory")
            p.add_argument("--tag", help="also write real_models_TAG.{json,md}")
            p.add_argument(
                "--jobs", type=int, default=1, help="exports run at once (stage times get noisier)"
            )
    p = sub.add_parser("report")
    p.add_argument("--tag")
    args = ap.parse_args(argv or ["all"])
    if args.cmd == "export":
        return cmd_export(args)
    if args.cmd == "run":
        return cmd_run(args)
    if args.cmd == "report":
        return cmd_report(args)
    rc = cmd_export(args)
    return rc or cmd_run(args)


if __name__ == "__main__":
    sys.exit(main())
