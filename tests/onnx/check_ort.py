#!/usr/bin/env python3
"""Runs the ONNX files `cargo test --test onnx` exported (target/tmp/onnx-ort/*)
in ONNX Runtime and compares each output with condenser's for the same input
batch: worst |difference| <= 1e-4 of the output's largest magnitude. Also runs
onnx.checker on each file. Used by .ci/run; exits non-zero on any mismatch."""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

root = sys.argv[1] if len(sys.argv) > 1 else "target/tmp/onnx-ort"
cases = sorted(os.listdir(root))
if not cases:
    sys.exit(f"no exported models under {root}: run `cargo test --release --test onnx` first")
bad = 0
for name in cases:
    d = os.path.join(root, name)
    shapes = json.load(open(os.path.join(d, "shapes.json")))
    x = np.fromfile(os.path.join(d, "input.bin"), dtype="<f4").reshape(shapes["input"])
    want = np.fromfile(os.path.join(d, "output.bin"), dtype="<f4").reshape(shapes["output"])
    model = onnx.load(os.path.join(d, "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(os.path.join(d, "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    scale = max(float(np.abs(want).max()), 1e-6)
    worst = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
    ok = worst <= 1e-4 * scale
    bad += not ok
    print(f"{'ok ' if ok else 'BAD'} {name:36} batch {x.shape[0]}  worst |d| {worst:.3e} (relative {worst / scale:.2e})")
print(f"{len(cases) - bad} of {len(cases)} exported models match in ONNX Runtime {ort.__version__}")
sys.exit(1 if bad else 0)
