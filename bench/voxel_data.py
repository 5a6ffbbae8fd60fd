#!/usr/bin/python3
"""Writes a synthetic ADNI-like cohort whose image modality is stored as the paper stores it:
ADNI_G.npy-style [scans, 84090] float32 grey-matter voxels plus their ids, and the atlas's
grey-matter mask as a [91, 109, 91] bool .npy (the 84,090 voxels nearest the volume's
centre, in C order); a small clinical CSV besides. Layout A, for configs/voxels.textproto.

Usage: voxel_data.py DIR [SUBJECTS]   (default 2000; 80% have an image, 90% clinical)
"""
import os
import sys

import numpy as np

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
rng = np.random.default_rng(2024)
os.makedirs(out, exist_ok=True)
shape = (91, 109, 91)
grid = np.indices(shape).reshape(3, -1).T - (np.array(shape) - 1) / 2
order = np.argsort((grid ** 2 / (np.array(shape) / 2) ** 2).sum(1), kind="stable")
mask = np.zeros(int(np.prod(shape)), dtype=bool)
mask[order[:84090]] = True
np.save(f"{out}/gm_mask.npy", mask.reshape(shape))

ids = [f"S{i:05d}" for i in range(n)]
labels = rng.integers(0, 2, n)
with open(f"{out}/labels.csv", "w") as f:
    f.write("id,label\n" + "".join(f"{s},{y}\n" for s, y in zip(ids, labels)))
has_image = rng.random(n) < 0.8
has_clinical = (rng.random(n) < 0.9) | ~has_image
image_rows = np.flatnonzero(has_image)
# Written in blocks: the array need not fit in memory at once.
image = np.lib.format.open_memmap(f"{out}/image.npy", mode="w+", dtype=np.float32,
                                  shape=(len(image_rows), 84090))
for start in range(0, len(image_rows), 100):
    rows = image_rows[start:start + 100]
    block = rng.standard_normal((len(rows), 84090), dtype=np.float32)
    block[:, :2000] += 0.3 * labels[rows, None]  # a class signal in part of the region
    image[start:start + len(rows)] = block
image.flush()
with open(f"{out}/image.ids.txt", "w") as f:
    f.write("\n".join(ids[i] for i in image_rows) + "\n")
with open(f"{out}/clinical.csv", "w") as f:
    f.write("id," + ",".join(f"c{j}" for j in range(8)) + "\n")
    for i in np.flatnonzero(has_clinical):
        values = rng.standard_normal(8) + 0.5 * labels[i]
        f.write(ids[i] + "," + ",".join(f"{v:.4f}" for v in values) + "\n")
