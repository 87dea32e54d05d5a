#!/usr/bin/env python3
"""Makes the ONNX fixtures under tests/fixtures/onnx/ (committed; the Rust tests
do not need Python). Run with Debian's python3-torch plus PyPI's onnx:

    /usr/bin/python3 -m venv --system-site-packages /tmp/tv
    /tmp/tv/bin/pip install onnx "numpy<2"
    /tmp/tv/bin/python tests/onnx/make_fixtures.py

- node/<case>/: ONNX's own node test cases (onnx.backend.test.case.node) for the
  operators condenser imports: model.onnx, input_<i>.pb, output_<i>.pb, and
  tol.json with the case's rtol/atol.
- models/<name>/: small networks exported from PyTorch (a ResNet-18-style net,
  a MobileNetV2-style net, an encoder-decoder): model.onnx, input.bin and
  output.bin (little-endian f32) and shapes.json.
- teacher_shapes.onnx: a non-condenser CNN for 3x24x24 images and 6 classes
  (the shapes world: 6 classes), for the end-to-end distillation test.

- ../students/<arch>.json: RepDistiller's MobileNetV2 (mobile_half),
  ShuffleNetV2 and VGG8 (vgg8_bn) rebuilt in PyTorch, their state_dict names and
  shapes, parameter counts at 100 classes, and logits for weights and input
  filled by a formula both sides compute (`formula` below), so no weights are
  committed.

- teacher_fmnist.onnx: a teacher trained on Fashion-MNIST here (see
  `fmnist_teacher`), for the README's ONNX example and a CLI test.

`--only NAME` remakes one part: node, models, teacher, students or fmnist.
"""
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "onnx")

# Must match src/onnx/graph.rs SUPPORTED.
SUPPORTED = set("""Add AveragePool BatchNormalization Cast Clip Concat Constant Conv Div Dropout
Flatten Gather Gemm GlobalAveragePool HardSigmoid HardSwish Identity LeakyRelu LogSoftmax
MatMul MaxPool Mul ReduceMean Relu Reshape Resize Shape Sigmoid Slice Softmax Split Squeeze
Sub Transpose Unsqueeze Upsample""".split())

OK_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}


def node_cases():
    from onnx.backend.test.case import node as node_mod

    out = os.path.join(ROOT, "node")
    shutil.rmtree(out, ignore_errors=True)
    kept = 0
    seen = set()
    for case in node_mod.collect_testcases():
        if case.name in seen:
            continue
        seen.add(case.name)
        if True:
            g = case.model.graph
            if any(n.op_type not in SUPPORTED or n.domain not in ("", "ai.onnx") for n in g.node):
                continue
            vis = list(g.input) + list(g.output)
            if any(v.type.tensor_type.elem_type not in OK_TYPES for v in vis):
                continue
            if not case.data_sets:
                continue
            # 3-D pooling cases are large and outside what condenser runs (2-D only).
            if sum(np.asarray(a).nbytes for a in case.data_sets[0][0]) > 64 << 10:
                continue
            d = os.path.join(out, case.name)
            os.makedirs(d)
            with open(os.path.join(d, "model.onnx"), "wb") as f:
                f.write(case.model.SerializeToString())
            inputs, outputs = case.data_sets[0]
            for i, a in enumerate(inputs):
                t = numpy_helper.from_array(np.asarray(a), g.input[i].name)
                open(os.path.join(d, f"input_{i}.pb"), "wb").write(t.SerializeToString())
            for i, a in enumerate(outputs):
                t = numpy_helper.from_array(np.asarray(a), g.output[i].name)
                open(os.path.join(d, f"output_{i}.pb"), "wb").write(t.SerializeToString())
            json.dump({"rtol": case.rtol, "atol": case.atol}, open(os.path.join(d, "tol.json"), "w"))
            kept += 1
    print(f"node cases: {kept}")


def export(model, x, path, dynamic=True, preserve=False):
    import torch

    model.eval()
    kw = {}
    if preserve:
        kw["training"] = torch.onnx.TrainingMode.PRESERVE
        kw["do_constant_folding"] = False
    torch.onnx.export(
        model, x, path, opset_version=13, input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None, **kw,
    )


def gate(c):
    """A hard-sigmoid channel gate (squeeze-and-excitation style) on c channels."""
    import torch.nn as nn

    class Gate(nn.Module):
        def __init__(s):
            super().__init__()
            s.fc = nn.Conv2d(c, c, 1)

        def forward(s, v):
            return v * nn.functional.hardsigmoid(s.fc(v.mean([2, 3], keepdim=True)))

    return Gate()


def fmnist_teacher():
    """A teacher trained here on Fashion-MNIST (Debian's dataset-fashion-mnist),
    not a condenser architecture: conv-BN-ReLU blocks, a hard-sigmoid channel
    gate, LeakyReLU, global pooling. Its input normalisation is stored in the
    file's metadata (input_mean / input_std), which condenser reads."""
    import gzip

    import torch
    import torch.nn as nn

    torch.manual_seed(0)
    torch.set_num_threads(2)
    src = "/usr/share/datasets/fashion-mnist"

    def idx(name, offset):
        with gzip.open(os.path.join(src, name)) as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)

    x = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28).astype(np.float32) / 255
    y = idx("train-labels-idx1-ubyte.gz", 8).astype(np.int64)
    xt = idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28).astype(np.float32) / 255
    yt = idx("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)
    mean, std = float(x.mean()), float(x.std())

    net = nn.Sequential(
        nn.Conv2d(1, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, 1, 1), nn.BatchNorm2d(64), nn.LeakyReLU(0.1), gate(64), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, 1, 1), nn.BatchNorm2d(128), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    xs, xts = torch.from_numpy((x - mean) / std), torch.from_numpy((xt - mean) / std)
    for epoch in range(2):
        net.train()
        perm = torch.randperm(len(xs))
        for i in range(0, len(xs), 128):
            b = perm[i:i + 128]
            loss = nn.functional.cross_entropy(net(xs[b]), torch.from_numpy(y)[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            acc = sum((net(xts[i:i + 1000]).argmax(1).numpy() == yt[i:i + 1000]).sum() for i in range(0, len(xts), 1000))
        print(f"fmnist teacher epoch {epoch + 1}: test accuracy {acc / len(xts):.4f}")
    path = os.path.join(ROOT, "teacher_fmnist.onnx")
    export(net, xs[:2], path)
    m = onnx.load(path)
    for k, v in (("input_mean", f"{mean}"), ("input_std", f"{std}"), ("test_accuracy", f"{acc / len(xts)}")):
        e = m.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(m, path)
    # PyTorch's predictions for the first 500 test images, for the CLI test.
    with torch.no_grad():
        pred = net(xts[:500]).argmax(1).numpy()
    json.dump({"test_pred_first_500": [int(v) for v in pred],
               "test_acc_first_500": float((pred == yt[:500]).mean())},
              open(os.path.join(ROOT, "teacher_fmnist.json"), "w"))


def _randomize_bn(m):
    # Non-trivial running statistics, so folding and eval-mode BN are tested.
    import torch.nn as nn

    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)


def whole_models():
    import torch
    import torch.nn as nn

    torch.manual_seed(0)

    class Basic(nn.Module):
        def __init__(s, cin, cout, stride):
            super().__init__()
            s.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            s.b1 = nn.BatchNorm2d(cout)
            s.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            s.b2 = nn.BatchNorm2d(cout)
            s.short = None
            if stride != 1 or cin != cout:
                s.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(s, x):
            y = torch.relu(s.b1(s.c1(x)))
            y = s.b2(s.c2(y))
            return torch.relu(y + (x if s.short is None else s.short(x)))

    class ResNet18(nn.Module):
        """torchvision's ResNet-18 layout (7x7 stem, max pool, 4 stages of 2 blocks) at width 8."""

        def __init__(s, w=8, classes=10):
            super().__init__()
            s.stem = nn.Sequential(nn.Conv2d(3, w, 7, 2, 3, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                                   nn.MaxPool2d(3, 2, 1))
            layers, cin = [], w
            for i, c in enumerate([w, 2 * w, 4 * w, 8 * w]):
                layers += [Basic(cin, c, 1 if i == 0 else 2), Basic(c, c, 1)]
                cin = c
            s.layers = nn.Sequential(*layers)
            s.pool = nn.AdaptiveAvgPool2d(1)
            s.fc = nn.Linear(cin, classes)

        def forward(s, x):
            return s.fc(torch.flatten(s.pool(s.layers(s.stem(x))), 1))

    class InvRes(nn.Module):
        def __init__(s, cin, cout, stride, t):
            super().__init__()
            h = cin * t
            s.use_res = stride == 1 and cin == cout
            s.body = nn.Sequential(
                nn.Conv2d(cin, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                nn.Conv2d(h, cout, 1, bias=False), nn.BatchNorm2d(cout))

        def forward(s, x):
            return x + s.body(x) if s.use_res else s.body(x)

    class MobileNetV2(nn.Module):
        """MobileNetV2's inverted residuals (depthwise convs, ReLU6), narrow, with a hard-swish head."""

        def __init__(s, classes=10):
            super().__init__()
            s.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
            s.blocks = nn.Sequential(InvRes(8, 8, 1, 1), InvRes(8, 12, 2, 4), InvRes(12, 12, 1, 4),
                                     InvRes(12, 16, 2, 4), InvRes(16, 16, 1, 4))
            s.head = nn.Sequential(nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32), nn.Hardswish())
            s.drop = nn.Dropout(0.2)
            s.fc = nn.Linear(32, classes)

        def forward(s, x):
            x = s.head(s.blocks(s.stem(x)))
            return s.fc(s.drop(x.mean([2, 3])))

    class EncDec(nn.Module):
        """A small U-Net-like encoder-decoder for segmentation (concat skips, bilinear and nearest upsampling)."""

        def __init__(s, classes=4):
            super().__init__()
            cbr = lambda i, o, st=1: nn.Sequential(nn.Conv2d(i, o, 3, st, 1), nn.BatchNorm2d(o), nn.LeakyReLU(0.1))
            s.e1, s.e2, s.e3 = cbr(3, 8), cbr(8, 16, 2), cbr(16, 24, 2)
            s.d2 = cbr(24 + 16, 16)
            s.d1 = cbr(16 + 8, 8)
            s.out = nn.Conv2d(8, classes, 1)

        def forward(s, x):
            a = s.e1(x)
            b = s.e2(a)
            c = s.e3(b)
            u = nn.functional.interpolate(c, scale_factor=2, mode="bilinear", align_corners=False)
            d = s.d2(torch.cat([u, b], 1))
            u = nn.functional.interpolate(d, scale_factor=2, mode="nearest")
            d = s.d1(torch.cat([u, a], 1))
            return s.out(d)

    randomize_bn = _randomize_bn

    class Focus(nn.Module):
        """YOLOv5's Focus stem: four strided slices (steps of 2) stacked on channels."""

        def __init__(s, classes=5):
            super().__init__()
            s.conv = nn.Sequential(nn.Conv2d(12, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.SiLU() if False else nn.ReLU())
            s.fc = nn.Linear(16, classes)

        def forward(s, x):
            x = torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1)
            return s.fc(s.conv(x).mean([2, 3]))

    class ResizeModes(nn.Module):
        """Bilinear with align_corners and bicubic to a fractional size: the
        Resize modes condenser runs as interpolation matrices."""

        def __init__(s, classes=4):
            super().__init__()
            s.c1 = nn.Conv2d(3, 8, 3, 1, 1)
            s.c2 = nn.Conv2d(8, 8, 3, 1, 1)
            s.fc = nn.Linear(8, classes)

        def forward(s, x):
            x = torch.relu(s.c1(x))
            x = nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
            x = torch.relu(s.c2(x))
            x = nn.functional.interpolate(x, size=(7, 9), mode="bicubic", align_corners=False)
            return s.fc(x.mean([2, 3]))

    out = os.path.join(ROOT, "models")
    # ONLY_MODELS=a,b remakes those models and keeps the others.
    only = [m for m in os.environ.get("ONLY_MODELS", "").split(",") if m]
    if not only:
        shutil.rmtree(out, ignore_errors=True)
    for name, model, shape, preserve in [
        ("resnet18_w8", ResNet18(), (2, 3, 32, 32), False),
        ("mobilenetv2_tiny", MobileNetV2(), (2, 3, 32, 32), False),
        ("encdec_seg", EncDec(), (2, 3, 24, 32), False),
        ("mobilenetv2_tiny_bn", MobileNetV2(), (2, 3, 16, 16), True),
        ("focus_slices", Focus(), (2, 3, 16, 20), False),
        ("resize_modes", ResizeModes(), (2, 3, 10, 12), False),
    ]:
        if only and name not in only:
            continue
        randomize_bn(model)
        model.eval()
        d = os.path.join(out, name)
        os.makedirs(d)
        x = torch.randn(*shape)
        with torch.no_grad():
            y = model(x)
        export(model, x, os.path.join(d, "model.onnx"), preserve=preserve)
        x.numpy().astype("<f4").tofile(os.path.join(d, "input.bin"))
        y.numpy().astype("<f4").tofile(os.path.join(d, "output.bin"))
        json.dump({"input": list(shape), "output": list(y.shape)}, open(os.path.join(d, "shapes.json"), "w"))
        print(f"{name}: {os.path.getsize(os.path.join(d, 'model.onnx'))} bytes")



def teacher_model():
    import torch
    import torch.nn as nn

    torch.manual_seed(1)
    randomize_bn = _randomize_bn
    # The end-to-end teacher: not a condenser architecture (a VGG-ish net with a
    # hard-sigmoid gate), for the shapes world's 3x24x24 images and 6 classes.
    teacher = nn.Sequential(
        nn.Conv2d(3, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.ReLU(), gate(32), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, 1, 1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 6))
    randomize_bn(teacher)
    export(teacher, torch.randn(2, 3, 24, 24), os.path.join(ROOT, "teacher_shapes.onnx"))

    # An ONNX student for the same data, batch norm kept (trained as imported):
    # depthwise-separable blocks with ReLU6, as MobileNets.
    student = nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
        nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 6))
    export(student, torch.randn(2, 3, 24, 24), os.path.join(ROOT, "student_shapes.onnx"), preserve=True)


def formula(name, shape):
    """Deterministic values for a tensor `name` (mirrored in tests/students.rs):
    a hash of (name, index) to [0, 1), scaled by what the tensor is."""
    seed = 2166136261
    for b in name.encode():
        seed = ((seed ^ b) * 16777619) & 0xFFFFFFFF
    n = int(np.prod(shape)) if len(shape) else 1
    i = np.arange(1, n + 1, dtype=np.uint64)
    h = (np.uint64(seed) + i * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(2246822519)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(13)
    u = h.astype(np.float64) / 4294967296.0
    last = name.rsplit(".", 1)[-1]
    if last == "running_var":
        v = 0.5 + u
    elif last in ("running_mean", "bias"):
        v = (u - 0.5) * 0.2
    elif last == "weight" and len(shape) == 1:
        v = 0.5 + u
    elif last == "weight":
        fan_in = n // shape[0]
        v = (u * 2 - 1) * np.sqrt(3.0 / fan_in)
    else:
        v = u * 2 - 1
    return v.astype(np.float32).reshape(shape)


def students():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def cbr(i, o, k, s, g=1, relu=True):
        layers = [nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o)]
        return nn.Sequential(*(layers + [nn.ReLU()] if relu else layers))

    class InvRes(nn.Module):
        def __init__(s, i, o, stride, t):
            super().__init__()
            h = i * t
            s.res = stride == 1 and i == o
            s.conv = nn.Sequential(nn.Conv2d(i, h, 1, 1, 0, bias=False), nn.BatchNorm2d(h), nn.ReLU(),
                                   nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU(),
                                   nn.Conv2d(h, o, 1, 1, 0, bias=False), nn.BatchNorm2d(o))

        def forward(s, x):
            return x + s.conv(x) if s.res else s.conv(x)

    class MobileHalf(nn.Module):
        def __init__(s, classes):
            super().__init__()
            setting = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
            c = 16
            s.conv1 = cbr(3, c, 3, 2)
            s.blocks = nn.ModuleList()
            for t, o, n, st in setting:
                o = int(o * 0.5)
                layers = []
                for k in range(n):
                    layers.append(InvRes(c, o, st if k == 0 else 1, t))
                    c = o
                s.blocks.append(nn.Sequential(*layers))
            s.conv2 = cbr(c, 1280, 1, 1)
            s.classifier = nn.Sequential(nn.Linear(1280, classes))

        def forward(s, x):
            x = s.conv1(x)
            for b in s.blocks:
                x = b(x)
            x = s.conv2(x)
            return s.classifier(F.avg_pool2d(x, 2, ceil_mode=True).flatten(1))

    def shuffle(x):
        n, c, h, w = x.shape
        return x.view(n, 2, c // 2, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)

    class SBasic(nn.Module):
        def __init__(s, c):
            super().__init__()
            h = c // 2
            s.conv1, s.bn1 = nn.Conv2d(h, h, 1, bias=False), nn.BatchNorm2d(h)
            s.conv2, s.bn2 = nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False), nn.BatchNorm2d(h)
            s.conv3, s.bn3 = nn.Conv2d(h, h, 1, bias=False), nn.BatchNorm2d(h)

        def forward(s, x):
            c = x.shape[1] // 2
            x1, x2 = x[:, :c], x[:, c:]
            out = F.relu(s.bn1(s.conv1(x2)))
            out = s.bn2(s.conv2(out))
            out = F.relu(s.bn3(s.conv3(out)))
            return shuffle(torch.cat([x1, out], 1))

    class SDown(nn.Module):
        def __init__(s, i, o):
            super().__init__()
            m = o // 2
            s.conv1, s.bn1 = nn.Conv2d(i, i, 3, 2, 1, groups=i, bias=False), nn.BatchNorm2d(i)
            s.conv2, s.bn2 = nn.Conv2d(i, m, 1, bias=False), nn.BatchNorm2d(m)
            s.conv3, s.bn3 = nn.Conv2d(i, m, 1, bias=False), nn.BatchNorm2d(m)
            s.conv4, s.bn4 = nn.Conv2d(m, m, 3, 2, 1, groups=m, bias=False), nn.BatchNorm2d(m)
            s.conv5, s.bn5 = nn.Conv2d(m, m, 1, bias=False), nn.BatchNorm2d(m)

        def forward(s, x):
            a = F.relu(s.bn2(s.conv2(s.bn1(s.conv1(x)))))
            b = F.relu(s.bn3(s.conv3(x)))
            b = F.relu(s.bn5(s.conv5(s.bn4(s.conv4(b)))))
            return shuffle(torch.cat([a, b], 1))

    class ShuffleV2(nn.Module):
        def __init__(s, classes):
            super().__init__()
            s.conv1, s.bn1 = nn.Conv2d(3, 24, 1, bias=False), nn.BatchNorm2d(24)
            c = 24
            for k, (o, n) in enumerate(zip((116, 232, 464), (3, 7, 3))):
                setattr(s, f"layer{k + 1}", nn.Sequential(SDown(c, o), *[SBasic(o) for _ in range(n)]))
                c = o
            s.conv2, s.bn2 = nn.Conv2d(c, 1024, 1, bias=False), nn.BatchNorm2d(1024)
            s.linear = nn.Linear(1024, classes)

        def forward(s, x):
            x = F.relu(s.bn1(s.conv1(x)))
            x = s.layer3(s.layer2(s.layer1(x)))
            x = F.relu(s.bn2(s.conv2(x)))
            return s.linear(F.avg_pool2d(x, 4).flatten(1))

    class Vgg8(nn.Module):
        def __init__(s, classes):
            super().__init__()
            c = 3
            for i, w in enumerate((64, 128, 256, 512, 512)):
                setattr(s, f"block{i}", nn.Sequential(nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w)))
                c = w
            s.classifier = nn.Linear(512, classes)

        def forward(s, x):
            for i in range(5):
                x = F.relu(getattr(s, f"block{i}")(x))
                if i < 3:
                    x = F.max_pool2d(x, 2)
            return s.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))

    out = os.path.join(ROOT, "..", "students")
    os.makedirs(out, exist_ok=True)
    for arch, make in [("mobilenetv2", MobileHalf), ("shufflenetv2", ShuffleV2), ("vgg8", Vgg8)]:
        params_100 = sum(p.numel() for p in make(100).parameters())
        m = make(10)
        sd = m.state_dict()
        with torch.no_grad():
            for k, t in sd.items():
                if k.endswith("num_batches_tracked"):
                    continue
                t.copy_(torch.from_numpy(formula(k, list(t.shape))))
        m.eval()
        x = torch.from_numpy(formula("input", [2, 3, 32, 32]))
        with torch.no_grad():
            y = m(x)
        json.dump({
            "params_100": params_100,
            "names": [[k, list(t.shape)] for k, t in sd.items()],
            "logits": [float(v) for v in y.flatten()],
        }, open(os.path.join(out, f"{arch}.json"), "w"))
        print(f"{arch}: {params_100} parameters at 100 classes")


if __name__ == "__main__":
    os.makedirs(ROOT, exist_ok=True)
    only = sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--only" else None
    for name, make in [("node", node_cases), ("models", whole_models), ("teacher", teacher_model), ("students", students), ("fmnist", fmnist_teacher)]:
        if only in (None, name):
            make()
    sys.exit(0)
