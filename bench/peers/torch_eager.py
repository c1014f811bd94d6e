"""PyTorch eager peer of the Dapo engine benchmark: the same Qwen2-style model, batch and thread count on the
same libtorch (Debian's python3-torch), written the way one would in eager PyTorch.

Prints one JSON object: sampling new tokens/s with a preallocated key/value cache, then training tokens/s (forward,
token log-probabilities, backward, AdamW), and the process's peak resident memory after each (sampling first, so
that the first is what a rollout process holds: no gradients, no optimizer state). Exit code 3 when torch is not
installed.
"""
import argparse
import json
import math
import resource
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit(3)


class Model(torch.nn.Module):
    """Token embedding, pre-norm blocks (RMSNorm, rotary GQA attention with q/k/v bias, SwiGLU), norm, LM head."""

    def __init__(self, vocab, d, layers, heads, kv_heads, d_ff, max_len, theta=10000.0, eps=1e-6, tied=False):
        super().__init__()
        self.d, self.h, self.kv, self.hd, self.eps = d, heads, kv_heads, d // heads, eps
        p = lambda *shape: torch.nn.Parameter(torch.randn(*shape) * 0.02)
        self.embed = p(vocab, d)
        self.blocks = torch.nn.ModuleList()
        for _ in range(layers):
            b = torch.nn.Module()
            b.attn_norm = torch.nn.Parameter(torch.ones(d))
            b.w_qkv = p(d + 2 * kv_heads * self.hd, d)
            b.b_qkv = torch.nn.Parameter(torch.zeros(d + 2 * kv_heads * self.hd))
            b.w_o = p(d, d)
            b.mlp_norm = torch.nn.Parameter(torch.ones(d))
            b.w_gate_up = p(2 * d_ff, d)
            b.w_down = p(d, d_ff)
            self.blocks.append(b)
        self.final_norm = torch.nn.Parameter(torch.ones(d))
        self.lm_head = self.embed if tied else p(vocab, d)  # tied: one parameter, counted once by parameters()
        inv = theta ** (-torch.arange(0, self.hd // 2, dtype=torch.float64) * 2 / self.hd)
        ang = torch.outer(torch.arange(max_len, dtype=torch.float64), inv)
        self.register_buffer("cos", ang.cos().float())
        self.register_buffer("sin", ang.sin().float())

    def norm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    @staticmethod
    def rope(x, cos, sin):
        x1, x2 = x.chunk(2, -1)
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)

    def forward(self, ids, pos, mask, cache=None, length=0):
        B, T = ids.shape
        x = F.embedding(ids, self.embed)
        cos, sin = self.cos[pos].unsqueeze(2), self.sin[pos].unsqueeze(2)
        g = self.h // self.kv
        for i, b in enumerate(self.blocks):
            qkv = F.linear(self.norm(x, b.attn_norm), b.w_qkv, b.b_qkv)
            q, k, v = qkv.split([self.d, self.kv * self.hd, self.kv * self.hd], -1)
            q = self.rope(q.view(B, T, self.h, self.hd), cos, sin).transpose(1, 2)
            k = self.rope(k.view(B, T, self.kv, self.hd), cos, sin).transpose(1, 2)
            v = v.view(B, T, self.kv, self.hd).transpose(1, 2)
            if cache is not None:
                cache[i][0][:, :, length:length + T] = k
                cache[i][1][:, :, length:length + T] = v
                k, v = cache[i][0][:, :, :length + T], cache[i][1][:, :, :length + T]
            k = k.repeat_interleave(g, 1)  # grouped-query attention: each kv head serves g query heads
            v = v.repeat_interleave(g, 1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask
            o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, self.d)
            x = x + F.linear(o, b.w_o)
            gate, up = F.linear(self.norm(x, b.mlp_norm), b.w_gate_up).chunk(2, -1)
            x = x + F.linear(F.silu(gate) * up, b.w_down)
        return x

    def logits(self, h):
        return F.linear(self.norm(h, self.final_norm), self.lm_head)


def train_step(model, opt, ids):
    B, T = ids.shape
    pos = torch.arange(T).expand(B, T)
    mask = torch.full((T, T), float("-inf")).triu(1)
    h = model(ids, pos, mask)
    logp = model.logits(h[:, :-1]).log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    loss = -logp.mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


@torch.inference_mode()
def sample(model, prompts, new_tokens, kv, hd, layers):
    B, P = prompts.shape
    cap = P + new_tokens
    cache = [(torch.zeros(B, kv, cap, hd), torch.zeros(B, kv, cap, hd)) for _ in range(layers)]
    mask = torch.full((P, P), float("-inf")).triu(1)
    h = model(prompts, torch.arange(P).expand(B, P), mask, cache, 0)
    logits = model.logits(h[:, -1])
    out = []
    for t in range(new_tokens):
        tok = torch.multinomial(torch.softmax(logits, -1), 1)
        out.append(tok)
        if t + 1 == new_tokens:
            break
        h = model(tok, torch.full((B, 1), P + t), torch.zeros(1), cache, P + t)
        logits = model.logits(h[:, -1])
    return torch.cat(out, 1)


def peak_rss_bytes():
    """This process's peak resident set: VmHWM where /proc has it. ru_maxrss is not enough for a child: Linux keeps
    the larger of the parent's peak at fork and the child's across execve, so a peer started by a benchmark that
    already holds 12 GB would report 12 GB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def synchronize():
    """Waits for the GPU's queued work, which a timer would otherwise not see (nothing to wait for on the CPU)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def matmul_gflops(n=2048, repeats=3):
    """fp32 matmul rate at the peer's start, to tell a busier machine from a slower implementation."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize()
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / sorted(times)[len(times) // 2] / 1e9


def main():
    a = argparse.ArgumentParser()
    for name in ["threads", "vocab", "d-model", "layers", "heads", "kv-heads", "d-ff", "batch", "seq", "prompt",
                 "new-tokens", "repeats"]:
        a.add_argument("--" + name, type=int, required=True)
    a.add_argument("--sample-batch", type=int, help="prompts sampled at once (default: --batch)")
    a.add_argument("--train-repeats", type=int, help="timed training steps (default: max(2, --repeats + 1))")
    a.add_argument("--sample-warmup-tokens", type=int,
                   help="new tokens of the untimed warm-up sampling run (default: --new-tokens)")
    a.add_argument("--rope-theta", type=float, default=10000.0)
    a.add_argument("--norm-eps", type=float, default=1e-6)
    a.add_argument("--tied", action="store_true", help="the LM head is the token embedding")
    a.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda (torch 2.0 or later)")
    args = a.parse_args()
    torch.set_num_threads(args.threads)
    if args.device != "cpu":
        torch.set_default_device(args.device)
    torch.manual_seed(0)
    matmul = matmul_gflops()
    model = Model(args.vocab, args.d_model, args.layers, args.heads, args.kv_heads, args.d_ff,
                  args.prompt + args.new_tokens + args.seq, args.rope_theta, args.norm_eps, args.tied)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    sample_batch = args.sample_batch or args.batch

    def median(fn, repeats, warmup=None):
        (warmup or fn)()
        synchronize()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            synchronize()
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]

    prompts = torch.randint(args.vocab, (sample_batch, args.prompt))
    hd = args.d_model // args.heads
    warmup_tokens = args.sample_warmup_tokens or args.new_tokens
    sample_s = median(lambda: sample(model, prompts, args.new_tokens, args.kv_heads, hd, args.layers), args.repeats,
                      lambda: sample(model, prompts, warmup_tokens, args.kv_heads, hd, args.layers))
    sample_rss = peak_rss_bytes()
    ids = torch.randint(args.vocab, (args.batch, args.seq))
    train_repeats = args.train_repeats or max(2, args.repeats + 1)
    train_s = median(lambda: train_step(model, opt, ids), train_repeats)
    print(json.dumps({
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "matmul_gflops": matmul,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds_per_step": train_s,
        "train_tokens_per_s": args.batch * args.seq / train_s,
        "sample_seconds": sample_s,
        "sample_tokens_per_s": sample_batch * args.new_tokens / sample_s,
        "peak_rss_after_sampling_bytes": sample_rss,
        "peak_rss_bytes": peak_rss_bytes(),
        "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main()
