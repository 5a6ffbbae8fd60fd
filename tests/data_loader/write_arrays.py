#!/usr/bin/python3
"""Writes the array-modality fixtures of array_input_test.cc into DIR, as users write them.

The same 6 subjects (s0..s5, labels 0,1,0,1,0,1) in layout A, each modality three ways:
  csv/    labels.csv, img.csv (s0..s3), gen.csv (s1..s5): the CSV reference
  npy/    labels.csv, img.npy (float32) + img.ids.txt, gen.npy (float64) + gen.ids.txt
  h5ad/   labels.csv, img.npy as above, gen.h5ad (AnnData, CSR sparse X)
  dense/  labels.csv, img.npy as above, gen.h5 (plain HDF5: /matrix dense, /ids), and
          gen_chunked.h5 (the same, gzip-compressed in chunks of 2 rows), big_chunks.h5
          (400 x 500 zeros in one gzip chunk larger than HDF5's default chunk cache)
  bad/    broken files, one per case (huge.npy: a header whose byte count overflows 64 bits)
  npy/mask.npy: a CNN3D volume mask (24x24x24, 5 voxels); bad/mask4.npy: 4 voxels
Usage: write_arrays.py DIR
"""
import os
import sys

import anndata
import h5py
import numpy as np
import scipy.sparse

out = sys.argv[1]
labels = "id,label\n" + "".join(f"s{i},{i % 2}\n" for i in range(6))
img_ids = ["s0", "s1", "s2", "s3"]
img = np.arange(4 * 5, dtype=np.float32).reshape(4, 5) / 4.0
gen_ids = ["s1", "s2", "s3", "s4", "s5"]
gen = np.array([[0, 1, 2], [2, 0, 0], [1, 1, 0], [0, 0, 0], [2, 2, 1]], dtype=np.float64)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def csv(ids, matrix, prefix):
    head = "id," + ",".join(f"{prefix}[{j}]" for j in range(matrix.shape[1])) + "\n"
    return head + "".join(i + "," + ",".join(repr(float(v)) for v in row) + "\n"
                          for i, row in zip(ids, matrix))


def npy(dir, name, ids, matrix):
    np.save(os.path.join(dir, name + ".npy"), matrix)
    write(os.path.join(dir, name + ".ids.txt"), "\n".join(ids) + "\n")


for d in ["csv", "npy", "h5ad", "dense", "bad"]:
    write(f"{out}/{d}/labels.csv", labels)
write(f"{out}/csv/img.csv", csv(img_ids, img, "img"))
write(f"{out}/csv/gen.csv", csv(gen_ids, gen, "gen"))
for d in ["npy", "h5ad", "dense"]:
    npy(f"{out}/{d}", "img", img_ids, img)
npy(f"{out}/npy", "gen", gen_ids, gen)

adata = anndata.AnnData(X=scipy.sparse.csr_matrix(gen.astype(np.float32)))
adata.obs_names = gen_ids
adata.var_names = [f"gen[{j}]" for j in range(3)]
adata.write_h5ad(f"{out}/h5ad/gen.h5ad")

with h5py.File(f"{out}/dense/gen.h5", "w") as f:
    f["matrix"] = gen
    f["ids"] = np.array(gen_ids, dtype="S")
with h5py.File(f"{out}/dense/gen_chunked.h5", "w") as f:
    f.create_dataset("matrix", data=gen, chunks=(2, 3), compression="gzip")
    f["ids"] = np.array(gen_ids, dtype="S")
# Chunks of 1.6 MB read as doubles: more than HDF5's default 1 MB chunk cache holds.
with h5py.File(f"{out}/dense/big_chunks.h5", "w") as f:
    f.create_dataset("matrix", data=np.zeros((400, 500), np.float32), chunks=(400, 500),
                     compression="gzip")
    f["ids"] = np.array([f"b{i}" for i in range(400)], dtype="S")

bad = f"{out}/bad"
np.save(f"{bad}/int.npy", gen.astype(np.int64))
np.save(f"{bad}/flat.npy", gen.reshape(-1))
np.save(f"{bad}/fortran.npy", np.asfortranarray(gen))
np.save(f"{bad}/short.npy", gen)
with open(f"{bad}/short.npy", "r+b") as f:
    f.truncate(os.path.getsize(f"{bad}/short.npy") - 9)
for name in ["int", "flat", "fortran", "short"]:
    write(f"{bad}/{name}.ids.txt", "\n".join(gen_ids) + "\n")
np.save(f"{bad}/dup.npy", gen)
write(f"{bad}/dup.ids.txt", "s1\ns2\ns3\ns2\ns5\n")
# (2^62 rows x 4) float32 = 2^66 bytes: 0 when multiplied in 64 bits.
header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }"
header += " " * (63 - (10 + len(header)) % 64) + "\n"
with open(f"{bad}/huge.npy", "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
    f.write(bytes(64))
write(f"{bad}/huge.ids.txt", "\n".join(gen_ids) + "\n")
np.save(f"{bad}/few.npy", gen)
write(f"{bad}/few.ids.txt", "s1\ns2\ns3\n")
adata.write_h5ad(f"{bad}/cut.h5ad")
with open(f"{bad}/cut.h5ad", "r+b") as f:
    f.truncate(600)
csc = anndata.AnnData(X=scipy.sparse.csc_matrix(gen.astype(np.float32)))
csc.obs_names = gen_ids
csc.write_h5ad(f"{bad}/csc.h5ad")
dup = anndata.AnnData(X=gen.astype(np.float32))
dup.obs_names = ["s1", "s2", "s2", "s4", "s5"]
dup.write_h5ad(f"{bad}/dup.h5ad")
# CNN3D masks of a 24x24x24 volume: 5 voxels (img's 5 features), and 4.
mask = np.zeros((24, 24, 24), dtype=bool)
mask.reshape(-1)[[3, 100, 2000, 5000, 13000]] = True
np.save(f"{out}/npy/mask.npy", mask)
mask.reshape(-1)[13000] = False
np.save(f"{bad}/mask4.npy", mask)
with h5py.File(f"{bad}/text.h5", "w") as f:
    f["matrix"] = np.array([["a", "b"]] * 5, dtype="S")
    f["ids"] = np.array(gen_ids, dtype="S")
