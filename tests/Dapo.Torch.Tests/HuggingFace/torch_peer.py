"""PyTorch's side of the Hugging Face format tests: writes and reads safetensors files with torch tensors and its own
minimal codec of the format (8-byte little-endian header length, JSON header, raw data), independent of Dapo's.

    torch_peer.py write FILE   writes sample tensors (F32, F16, BF16, an empty one) and prints, as JSON, each
                               tensor's fp32 source values, its stored bits and torch's fp32 reading of them
    torch_peer.py read FILE    prints every tensor of FILE as torch reads it: dtype, shape, fp32 values
    torch_peer.py qwen2 DIR SPEC
                               writes a random Qwen2 model directory (config.json, model.safetensors or two shards with
                               an index) of the shape SPEC (JSON) gives
    torch_peer.py forward DIR REQUEST
                               loads DIR with this file's reader and runs an independent Qwen2 forward pass in fp32:
                               for each sequence of REQUEST (JSON: {"sequences": [[ids]], "greedy": [[prompt]], "new": N})
                               the logits of every position, the log-probability of each token after the first, and N
                               greedy tokens after each prompt
"""
import math
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
    stored = {name: source.to(dtype) for name, (dtype, source) in sources.items()}
    write_file(path, stored)
    report = {}
    for name, (dtype, source) in sources.items():
        t = stored[name]
        bits = list(struct.unpack(f"<{t.numel()}H", raw(t))) if dtype != torch.float32 else None
        report[name] = {"dtype": NAMES[dtype], "shape": list(t.shape), "source": source.flatten().tolist(),
                        "bits": bits, "values": t.float().flatten().tolist()}
    print(json.dumps(report))


def tensors_of(path):
    """The metadata and tensors of a safetensors file, each in its stored dtype."""
    with open(path, "rb") as f:
        content = f.read()
    (length,) = struct.unpack("<Q", content[:8])
    header = json.loads(content[8:8 + length])
    metadata = header.pop("__metadata__", {})
    data = content[8 + length:]
    out = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = DTYPES[entry["dtype"]]
        chunk = bytearray(data[begin:end])
        if not chunk:
            t = torch.zeros(0, dtype=dtype)
        elif dtype == torch.float32:
            t = torch.frombuffer(chunk, dtype=torch.float32)
        else:
            t = torch.frombuffer(chunk, dtype=torch.int16).view(dtype)
        out[name] = t.reshape(entry["shape"])
    return metadata, out


def write_file(path, tensors):
    """Writes tensors, each in its own dtype, as a safetensors file (header padded to 8 bytes)."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        data = raw(t)
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)


def qwen2(directory, spec_json):
    spec = json.loads(spec_json)
    torch.manual_seed(spec.get("seed", 1))
    d, heads, kv, ff, vocab, layers = spec["hidden"], spec["heads"], spec["kv_heads"], spec["ff"], spec["vocab"], spec["layers"]
    hd = d // heads
    tied = spec["tied"]
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[spec["dtype"]]
    w = lambda *shape: torch.randn(*shape) * spec.get("scale", 0.2)
    # Embedding and head at a larger scale: logits spread widely, so greedy decoding has no near-ties.
    head = lambda: torch.randn(vocab, d) * spec.get("head_scale", 1.0)
    t = {"model.embed_tokens.weight": head(), "model.norm.weight": 1 + 0.1 * torch.randn(d)}
    for i in range(layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = 1 + 0.1 * torch.randn(d)
        t[p + "post_attention_layernorm.weight"] = 1 + 0.1 * torch.randn(d)
        t[p + "self_attn.q_proj.weight"], t[p + "self_attn.q_proj.bias"] = w(heads * hd, d), w(heads * hd)
        t[p + "self_attn.k_proj.weight"], t[p + "self_attn.k_proj.bias"] = w(kv * hd, d), w(kv * hd)
        t[p + "self_attn.v_proj.weight"], t[p + "self_attn.v_proj.bias"] = w(kv * hd, d), w(kv * hd)
        t[p + "self_attn.o_proj.weight"] = w(d, heads * hd)
        t[p + "mlp.gate_proj.weight"], t[p + "mlp.up_proj.weight"] = w(ff, d), w(ff, d)
        t[p + "mlp.down_proj.weight"] = w(d, ff)
    if not tied:
        t["lm_head.weight"] = head()
    config = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu", "hidden_size": d,
        "intermediate_size": ff, "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
        "vocab_size": vocab, "rms_norm_eps": 1e-6, "rope_theta": spec.get("rope_theta", 10000.0),
        "max_position_embeddings": spec.get("max_positions", 128), "tie_word_embeddings": tied, "torch_dtype": spec["dtype"],
        "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 21, "rope_scaling": None,
        "attention_dropout": 0.0, "bos_token_id": 0, "eos_token_id": 1,
    }
    with open(f"{directory}/config.json", "w") as f:
        json.dump(config, f, indent=2)
    if spec.get("shards", 1) == 1:
        write_file(f"{directory}/model.safetensors", {n: x.to(dtype) for n, x in t.items()})
        print(json.dumps({"files": ["model.safetensors"]}))
        return
    names = list(t)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    weight_map = {}
    for file, part in shards.items():
        write_file(f"{directory}/{file}", {n: t[n].to(dtype) for n in part})
        weight_map.update({n: file for n in part})
    with open(f"{directory}/model.safetensors.index.json", "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=2)
    print(json.dumps({"files": list(shards)}))


def load(directory):
    import os
    with open(f"{directory}/config.json") as f:
        config = json.load(f)
    weights = {}
    index = f"{directory}/model.safetensors.index.json"
    if os.path.exists(index):
        with open(index) as f:
            for file in sorted(set(json.load(f)["weight_map"].values())):
                weights.update(tensors_of(f"{directory}/{file}")[1])
    else:
        weights = tensors_of(f"{directory}/model.safetensors")[1]
    return config, {name: t.float() for name, t in weights.items()}


def rms_norm(x, weight, eps):
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def logits_of(config, W, ids):
    """Qwen2's decoder as the Hugging Face implementation computes it, written out in plain torch ops (fp32)."""
    d, H, KV = config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]
    hd, eps, T = d // H, config["rms_norm_eps"], len(ids)
    inv_freq = 1.0 / (config["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    angles = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)
    cos, sin = torch.cat([angles.cos()] * 2, -1)[:, None, :], torch.cat([angles.sin()] * 2, -1)[:, None, :]

    def rope(x):
        rotated = torch.cat([-x[..., hd // 2:], x[..., :hd // 2]], -1)
        return x * cos + rotated * sin

    x = W["model.embed_tokens.weight"][torch.tensor(ids)]
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        q = (h @ W[p + "self_attn.q_proj.weight"].T + W[p + "self_attn.q_proj.bias"]).view(T, H, hd)
        k = (h @ W[p + "self_attn.k_proj.weight"].T + W[p + "self_attn.k_proj.bias"]).view(T, KV, hd)
        v = (h @ W[p + "self_attn.v_proj.weight"].T + W[p + "self_attn.v_proj.bias"]).view(T, KV, hd)
        q, k = rope(q), rope(k)
        k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
        scores = torch.einsum("thd,shd->hts", q, k) / math.sqrt(hd)
        attention = scores.masked_fill(causal, float("-inf")).softmax(-1)
        x = x + torch.einsum("hts,shd->thd", attention, v).reshape(T, H * hd) @ W[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        gate, up = h @ W[p + "mlp.gate_proj.weight"].T, h @ W[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ W[p + "mlp.down_proj.weight"].T
    head = W["model.embed_tokens.weight"] if config["tie_word_embeddings"] else W["lm_head.weight"]
    return rms_norm(x, W["model.norm.weight"], eps) @ head.T


def forward(directory, request_json):
    request = json.loads(request_json)
    config, W = load(directory)
    with torch.no_grad():
        scored, logits = [], []
        for ids in request["sequences"]:
            out = logits_of(config, W, ids)
            logits.append(out.flatten().tolist())
            logp = out.log_softmax(-1)
            scored.append([logp[t - 1, ids[t]].item() for t in range(1, len(ids))])
        greedy = []
        for prompt in request["greedy"]:
            ids = list(prompt)
            for _ in range(request["new"]):
                ids.append(int(logits_of(config, W, ids)[-1].argmax()))
            greedy.append(ids[len(prompt):])
    print(json.dumps({"logits": logits, "logprobs": scored, "greedy": greedy}))


def read(path):
    metadata, tensors = tensors_of(path)
    report = {"__metadata__": metadata}
    for name, t in tensors.items():
        report[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "values": t.float().flatten().tolist()}
    print(json.dumps(report))


if __name__ == "__main__":
    {"write": write, "read": read, "qwen2": qwen2, "forward": forward}[sys.argv[1]](*sys.argv[2:])
