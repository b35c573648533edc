"""The floor `simulate` is measured against: an onnxruntime session running the ANN T times over
the same samples, as a whole process (imports and session creation included, as simulate's are).

    python -m bench.ort_forwards MODEL.onnx DATA.npz T BATCH [SAMPLES]

Inputs are read from DATA by the model's input names (a lone input may be stored as 'x'); the
thread count is onnxruntime's default, or OMP_NUM_THREADS when set, like torch's.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnxruntime as ort


def main(argv: list[str]) -> int:
    model, data, T, batch = argv[0], argv[1], int(argv[2]), int(argv[3])
    samples = int(argv[4]) if len(argv) > 4 and int(argv[4]) > 0 else None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "0"))
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    with np.load(data) as z:
        arrays = {k: z[k if k in z.files else "x"] for k in names}
    n = len(next(iter(arrays.values()))) if samples is None else samples
    for _ in range(T):
        for s in range(0, n, batch):
            sess.run(None, {k: v[s : min(n, s + batch)] for k, v in arrays.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
