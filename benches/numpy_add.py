#!/usr/bin/env python3
# The bandwidth yardstick: numpy's a + b on this machine (pip install numpy).
# numpy's a + b at 16M floats, GB/s as condenser counts it (2 reads + 1 write), median of 7.
import time, statistics, numpy as np
a = np.random.rand(1 << 24).astype(np.float32); b = np.random.rand(1 << 24).astype(np.float32)
for label, f in [("a + b", lambda: a + b), ("np.add(a, b, out=c)", None)]:
    c = np.empty_like(a)
    g = (lambda: np.add(a, b, out=c)) if f is None else f
    g(); ts = []
    for _ in range(7):
        t = time.perf_counter(); g(); ts.append(time.perf_counter() - t)
    print(f"{label}: {3 * 4 * (1 << 24) / statistics.median(ts) / 1e9:.1f} GB/s")
