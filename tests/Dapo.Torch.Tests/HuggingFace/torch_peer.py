"""PyTorch's side of the Hugging Face format tests: writes and reads safetensors files with torch tensors and its own
minimal codec of the format (8-byte little-endian header length, JSON header, raw data), independent of Dapo's.

    torch_peer.py write FILE   writes sample tensors (F32, F16, BF16, an empty one) and prints, as JSON, each
                               tensor's fp32 source values, its stored bits and torch's fp32 reading of them
    torch_peer.py read FILE    prints every tensor of FILE as torch reads it: dtype, shape, fp32 values
"""
import json
import struct
import sys

import torch

NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
DTYPES = {v: k for k, v in NAMES.items()}


def raw(t):
    t = t.contiguous()
    if t.dtype == torch.float32:
        return t.numpy().tobytes()
    return t.view(torch.int16).numpy().tobytes()


def write(path):
    torch.manual_seed(20261202)
    # Values that test rounding: ties to even in bf16 and fp16, the fp16 maximum, tiny and large magnitudes.
    special = torch.tensor([1.00390625, 1.01171875, -3.0000001, 65504.0, 1e-8, -2.5e-30, 3.0e38, 0.0, -0.0, 0.33333334])
    sources = {
        "model.embed_tokens.weight": (torch.float32, torch.randn(3, 5)),
        "model.layers.0.self_attn.q_proj.weight": (torch.float16, torch.randn(4, 2)),
        "model.layers.0.self_attn.q_proj.bias": (torch.bfloat16, torch.randn(2, 3, 4)),
        "special.bf16": (torch.bfloat16, special),
        "special.f16": (torch.float16, special.clamp(-65504, 65504)),
        "empty": (torch.float32, torch.zeros(0, 3)),
    }
    header, blobs, offset, report = {"__metadata__": {"format": "pt"}}, [], 0, {}
    for name, (dtype, source) in sources.items():
        stored = source.to(dtype)
        data = raw(stored)
        header[name] = {"dtype": NAMES[dtype], "shape": list(stored.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
        bits = list(struct.unpack(f"<{stored.numel()}H", data)) if dtype != torch.float32 else None
        report[name] = {"dtype": NAMES[dtype], "shape": list(stored.shape), "source": source.flatten().tolist(),
                        "bits": bits, "values": stored.float().flatten().tolist()}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)
    print(json.dumps(report))


def read(path):
    with open(path, "rb") as f:
        content = f.read()
    (length,) = struct.unpack("<Q", content[:8])
    header = json.loads(content[8:8 + length])
    data = content[8 + length:]
    report = {"__metadata__": header.pop("__metadata__", {})}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = DTYPES[entry["dtype"]]
        chunk = bytearray(data[begin:end])
        if dtype == torch.float32:
            t = torch.frombuffer(chunk, dtype=torch.float32) if chunk else torch.zeros(0)
        else:
            t = (torch.frombuffer(chunk, dtype=torch.int16) if chunk else torch.zeros(0, dtype=torch.int16)).view(dtype)
        t = t.reshape(entry["shape"])
        report[name] = {"dtype": entry["dtype"], "shape": list(t.shape), "values": t.float().flatten().tolist()}
    print(json.dumps(report))


if __name__ == "__main__":
    {"write": write, "read": read}[sys.argv[1]](sys.argv[2])
