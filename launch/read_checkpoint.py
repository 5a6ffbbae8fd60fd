#!/usr/bin/env python3
"""Reads a flexmoe checkpoint from Python (Debian's python3 and numpy only): a training-state
checkpoint (run.dir/checkpoints/step-N/) or the best-parameters export (run.dir/checkpoint/).

A checkpoint directory holds safetensors files (8-byte little-endian header length, a JSON
header, raw little-endian tensor bytes) and manifest.json, which lists every file with its
size, CRC32C and tensors; see docs/checkpoints.md.

    read_checkpoint.py DIR                      # summary, after verifying every file
                                                # (an export: epoch, temperature, tensors)
    read_checkpoint.py DIR --dump-experts OUT   # OUT/layer<L>.<name>.f32: [E, ...] float32
                                                # in global expert order, and OUT/shapes.json
        [--role parameter|exp_avg|exp_avg_sq|best]  # which tensors (default: parameter)
        [--no-verify]                               # skip the CRC32C pass (slow in Python)

As a module: load_manifest(dir), read_safetensors(path), experts(dir, layer, role);
for an export, load_export(dir) -> (manifest, {parameter name: array}); its manifest also
holds "config" and "dataset" (text format) and "temperature".
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32,
           "U8": np.uint8}


def _crc32c_table():
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    """CRC32C (Castagnoli), as flexmoe's manifests record it."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _read_manifest(directory):
    with open(os.path.join(directory, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


def load_manifest(directory):
    manifest = _read_manifest(directory)
    if manifest.get("format") != "flexmoe-train-state":
        raise ValueError(f"{directory}: not a training-state checkpoint")
    return manifest


def load_export(directory, check=True):
    """The best-parameters export: its manifest and every parameter by name ([E, ...] for
    the experts of a sparse layer), after verifying the file's size and CRC32C."""
    manifest = _read_manifest(directory)
    if manifest.get("format") != "flexmoe-checkpoint":
        raise ValueError(f"{directory}: not a best-parameters export")
    if check:
        verify(directory, manifest)
    return manifest, read_safetensors(os.path.join(directory, manifest["files"][0]["name"]))


def read_safetensors(path):
    """All tensors of a safetensors file as numpy arrays, by name."""
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    header.pop("__metadata__", None)
    body = data[8 + length:]
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        array = np.frombuffer(body[begin:end], dtype=_DTYPES[entry["dtype"]])
        tensors[name] = array.reshape(entry["shape"])
    return tensors


def verify(directory, manifest):
    """Raises ValueError naming the first file whose size or CRC32C differs."""
    for entry in manifest["files"]:
        path = os.path.join(directory, entry["name"])
        with open(path, "rb") as f:
            data = f.read()
        if len(data) != entry["bytes"]:
            raise ValueError(f"{path}: {len(data)} bytes, the manifest says {entry['bytes']}")
        if crc32c(data) != entry["crc32c"]:
            raise ValueError(f"{path}: CRC32C mismatch (the file is corrupted)")


def experts(directory, layer, role="parameter", manifest=None):
    """The experts of one sparse layer: {parameter leaf name: array [E, ...]}."""
    manifest = manifest or load_manifest(directory)
    rows = {}
    for entry in manifest["files"]:
        wanted = [t for t in entry["tensors"]
                  if t.get("layer") == layer and t.get("expert", -1) >= 0 and t["role"] == role]
        if not wanted:
            continue
        tensors = read_safetensors(os.path.join(directory, entry["name"]))
        for t in wanted:
            leaf = t["parameter"].rsplit(".", 1)[1]
            rows.setdefault(leaf, {})[t["expert"]] = tensors[t["name"]]
    count = len(next(p["owner"] for p in manifest["placement"]["layers"] if p["layer"] == layer))
    out = {}
    for leaf, by_expert in rows.items():
        if sorted(by_expert) != list(range(count)):
            raise ValueError(f"{directory}: layer {layer} {leaf}: experts missing")
        out[leaf] = np.stack([by_expert[e] for e in range(count)])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir")
    parser.add_argument("--dump-experts", metavar="OUT")
    parser.add_argument("--role", default="parameter",
                        choices=["parameter", "exp_avg", "exp_avg_sq", "best"])
    parser.add_argument("--no-verify", action="store_true")
    args = parser.parse_args()
    try:
        return _report(args)
    except (OSError, ValueError, KeyError) as e:
        print(f"read_checkpoint: {e}", file=sys.stderr)
        return 2


def _report_export(args):
    manifest, tensors = load_export(args.dir, check=not args.no_verify)
    print(f"export: epoch {manifest['epoch'] + 1}, step {manifest['step']}, seed "
          f"{manifest['seed']}, temperature {manifest.get('temperature', 1.0):.4g}"
          + ("" if args.no_verify else "; every file verified"))
    for name, array in tensors.items():
        print(f"{name}: {list(array.shape)}")
    return 0


def _report(args):
    if _read_manifest(args.dir).get("format") == "flexmoe-checkpoint":
        return _report_export(args)
    manifest = load_manifest(args.dir)
    if not args.no_verify:
        verify(args.dir, manifest)
    layers = [p["layer"] for p in manifest["placement"]["layers"]]
    print(f"step {manifest['step']}, world size {manifest['world_size']}, "
          f"sparse layers {layers}" + ("" if args.no_verify else "; every file verified"))
    shapes = {}
    for layer in layers:
        for leaf, array in experts(args.dir, layer, args.role, manifest).items():
            print(f"layer {layer} experts {leaf}: {list(array.shape)}")
            if args.dump_experts:
                os.makedirs(args.dump_experts, exist_ok=True)
                name = f"layer{layer}.{leaf}"
                array.astype("<f4").tofile(os.path.join(args.dump_experts, name + ".f32"))
                shapes[name] = list(array.shape)
    if args.dump_experts:
        with open(os.path.join(args.dump_experts, "shapes.json"), "w", encoding="utf-8") as f:
            json.dump(shapes, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
