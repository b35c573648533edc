"""A second digits ViT, written by nobody on the team: timm's VisionTransformer (fused qkv Linear,
batch-major reshape/permute/unbind attention, GELU MLP, pre-LayerNorm, class token), trained on
the zoo's digits split with the built-in ViT's training settings and exported by TorchScript
(opset 17). Issue M's done-when measures spikezip_count on it (bench/bench_fully_spiking_table.py).

    python -m bench.digits_timm_vit      # writes CACHE/digits_timm_vit/{model.onnx, calib.npz, test.npz, info.json}

timm comes from CACHE/site (bench/real_models.py installs it there, --no-deps); this module puts
it on the path of its own process only. Training: 150 epochs, seeded, one thread, a few minutes.
"""

from __future__ import annotations

import io
import json
import sys
import time
import warnings

import numpy as np

from bench.real_models import CACHE, _site, _stub_torchvision_ops, install_extras

OUT = CACHE / "digits_timm_vit"
SHAPE = {"img_size": 8, "patch_size": 2, "in_chans": 1, "num_classes": 10, "embed_dim": 64, "depth": 4,
         "num_heads": 4, "mlp_ratio": 2.0}  # fmt: skip


def build():
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(**SHAPE)


def main() -> int:
    why = install_extras()
    if why:
        print(f"skipped: {why}")
        return 1
    sys.path.insert(0, str(_site()))
    _stub_torchvision_ops()
    import onnxruntime as ort
    import torch

    from tools.train_zoo import CONFIGS, load_split, train_model

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    split = load_split("digits")
    t = time.perf_counter()
    model = train_model("vit", split, CONFIGS["vit"], build=build)
    took = time.perf_counter() - t
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.zeros(2, 1, 8, 8),), buf, dynamo=False, input_names=["x"], output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
        )  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "model.onnx").write_bytes(buf.getvalue())
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    acc = float((sess.run(None, {"x": split.x_test})[0].argmax(1) == split.y_test).mean())
    np.savez(OUT / "calib.npz", x=split.x_train[split.calib_index], y=split.y_train[split.calib_index])
    np.savez(OUT / "test.npz", x=split.x_test, y=split.y_test)
    import timm

    info = {"timm": timm.__version__, "model": SHAPE, "train_seconds": round(took, 1), "onnxruntime_accuracy": acc,
            "train": "tools/train_zoo.py CONFIGS['vit'] (150 epochs, AdamW, label smoothing 0.1)"}  # fmt: skip
    (OUT / "info.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"{OUT / 'model.onnx'}: test accuracy {acc:.4f} (onnxruntime), trained in {took:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
