// Fused CPU kernels with their own autograd: RMSNorm, rotary embedding with the q/k/v split, and SwiGLU.
// Each replaces a chain of small elementwise libtorch ops (and their backward) by one pass over memory, which is
// what bounds these ops on a CPU. On other devices the same functions fall back to plain libtorch ops.
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <cmath>

#include "engine.h"

namespace dapo {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows per parallel chunk: about libtorch's grain of 32768 elements, so that small inputs (one decoding step)
// stay on the calling thread instead of waking the thread pool for microseconds of work.
int64_t grain(int64_t row_elements) { return std::max<int64_t>(1, at::internal::GRAIN_SIZE / row_elements); }

// ---------------------------------------------------------------------------------------------------------------
// RMSNorm: y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps), over the last dimension.
struct RmsNormFn : torch::autograd::Function<RmsNormFn> {
    static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in, const torch::Tensor& w, double eps) {
        auto x = x_in.contiguous();
        const int64_t D = x.size(-1), N = x.numel() / D;
        auto y = torch::empty_like(x);
        auto rstd = torch::empty({N}, x.options());
        const float* xp = x.data_ptr<float>();
        const float* wp = w.data_ptr<float>();
        float* yp = y.data_ptr<float>();
        float* rp = rstd.data_ptr<float>();
        at::parallel_for(0, N, grain(D), [&](int64_t begin, int64_t end) {
            for (int64_t n = begin; n < end; ++n) {
                const float* xr = xp + n * D;
                float* yr = yp + n * D;
                float sum = 0.0f;
                for (int64_t i = 0; i < D; ++i) sum += xr[i] * xr[i];
                const float r = 1.0f / std::sqrt(sum / static_cast<float>(D) + static_cast<float>(eps));
                rp[n] = r;
                for (int64_t i = 0; i < D; ++i) yr[i] = xr[i] * r * wp[i];
            }
        });
        ctx->save_for_backward({x, w, rstd});
        return y;
    }

    static variable_list backward(AutogradContext* ctx, variable_list grads) {
        auto saved = ctx->get_saved_variables();
        const auto &x = saved[0], &w = saved[1], &rstd = saved[2];
        auto gy = grads[0].contiguous();
        const int64_t D = x.size(-1), N = x.numel() / D;
        auto gx = torch::empty_like(x);
        const float* xp = x.data_ptr<float>();
        const float* wp = w.data_ptr<float>();
        const float* rp = rstd.data_ptr<float>();
        const float* gp = gy.data_ptr<float>();
        float* gxp = gx.data_ptr<float>();
        // gx = rstd * (gy*w - n * mean(gy*w*n)) with n = x * rstd.
        at::parallel_for(0, N, grain(D), [&](int64_t begin, int64_t end) {
            for (int64_t row = begin; row < end; ++row) {
                const float* xr = xp + row * D;
                const float* gr = gp + row * D;
                float* out = gxp + row * D;
                const float r = rp[row];
                float dot = 0.0f;
                for (int64_t i = 0; i < D; ++i) dot += gr[i] * wp[i] * xr[i];
                const float c = dot * r * r / static_cast<float>(D);
                for (int64_t i = 0; i < D; ++i) out[i] = r * (gr[i] * wp[i] - xr[i] * c);
            }
        });
        // gw = sum over rows of gy * x * rstd; columns are split between threads so that no sum is shared.
        auto gw = torch::zeros_like(w);
        float* gwp = gw.data_ptr<float>();
        at::parallel_for(0, D, std::max<int64_t>(8, grain(N)), [&](int64_t begin, int64_t end) {
            for (int64_t row = 0; row < N; ++row) {
                const float* xr = xp + row * D;
                const float* gr = gp + row * D;
                const float r = rp[row];
                for (int64_t i = begin; i < end; ++i) gwp[i] += gr[i] * xr[i] * r;
            }
        });
        return {gx, gw, torch::Tensor()};
    }
};

// ---------------------------------------------------------------------------------------------------------------
// Rotary embedding fused with the split of the q/k/v projection into attention layouts.
// In: qkv (B, T, d + 2 kv_dim), positions (P, T) with P = B or 1, tables cos/sin (max_seq_len, hd/2).
// Out: q (B, KV, T*G, hd) rotated and scaled, query head h = kv*G + g of position t at row t*G + g;
// k (B, KV, T, hd) rotated; v (B, KV, T, hd).
struct RopeSplitFn : torch::autograd::Function<RopeSplitFn> {
    struct Shape {
        int64_t B, T, H, KV, G, hd, half, C;
    };

    static Shape shape_of(const torch::Tensor& qkv, int64_t heads, int64_t kv_heads) {
        Shape s{};
        s.B = qkv.size(0);
        s.T = qkv.size(1);
        s.H = heads;
        s.KV = kv_heads;
        s.G = heads / kv_heads;
        s.C = qkv.size(2);
        s.hd = s.C / (heads + 2 * kv_heads);
        s.half = s.hd / 2;
        return s;
    }

    // Rotates (or, with sign = -1, rotates back) one head vector: out = R(angle) x, scaled.
    static inline void rotate(const float* x, float* out, const float* cos, const float* sin, int64_t half,
                              float sign, float scale) {
        for (int64_t i = 0; i < half; ++i) {
            const float x1 = x[i], x2 = x[i + half], c = cos[i], s = sign * sin[i];
            out[i] = (x1 * c - x2 * s) * scale;
            out[i + half] = (x2 * c + x1 * s) * scale;
        }
    }

    static variable_list forward(AutogradContext* ctx, const torch::Tensor& qkv_in, const torch::Tensor& positions,
                                 const torch::Tensor& cos_table, const torch::Tensor& sin_table, int64_t heads,
                                 int64_t kv_heads, double scale) {
        auto qkv = qkv_in.contiguous();
        const auto s = shape_of(qkv, heads, kv_heads);
        auto pos = positions.contiguous();
        auto q = torch::empty({s.B, s.KV, s.T * s.G, s.hd}, qkv.options());
        auto k = torch::empty({s.B, s.KV, s.T, s.hd}, qkv.options());
        auto v = torch::empty({s.B, s.KV, s.T, s.hd}, qkv.options());
        const float* in = qkv.data_ptr<float>();
        const int64_t* pp = pos.data_ptr<int64_t>();
        const bool per_row = pos.size(0) == s.B && s.B > 1;
        const float* ct = cos_table.data_ptr<float>();
        const float* st = sin_table.data_ptr<float>();
        float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
        const float sc = static_cast<float>(scale);
        at::parallel_for(0, s.B * s.T, grain(s.C), [&](int64_t begin, int64_t end) {
            for (int64_t bt = begin; bt < end; ++bt) {
                const int64_t b = bt / s.T, t = bt % s.T;
                const int64_t p = pp[per_row ? bt : t];
                const float* c = ct + p * s.half;
                const float* sn = st + p * s.half;
                const float* row = in + bt * s.C;
                for (int64_t h = 0; h < s.H; ++h) {
                    const int64_t kv = h / s.G, g = h % s.G;
                    float* out = qp + (((b * s.KV + kv) * s.T + t) * s.G + g) * s.hd;
                    rotate(row + h * s.hd, out, c, sn, s.half, 1.0f, sc);
                }
                for (int64_t kv = 0; kv < s.KV; ++kv) {
                    const int64_t o = ((b * s.KV + kv) * s.T + t) * s.hd;
                    rotate(row + (s.H + kv) * s.hd, kp + o, c, sn, s.half, 1.0f, 1.0f);
                    std::copy(row + (s.H + s.KV + kv) * s.hd, row + (s.H + s.KV + kv + 1) * s.hd, vp + o);
                }
            }
        });
        ctx->save_for_backward({pos, cos_table, sin_table});
        ctx->saved_data["B"] = s.B;
        ctx->saved_data["T"] = s.T;
        ctx->saved_data["C"] = s.C;
        ctx->saved_data["heads"] = heads;
        ctx->saved_data["kv_heads"] = kv_heads;
        ctx->saved_data["scale"] = scale;
        return {q, k, v};
    }

    static variable_list backward(AutogradContext* ctx, variable_list grads) {
        auto saved = ctx->get_saved_variables();
        const auto &pos = saved[0], &cos_table = saved[1], &sin_table = saved[2];
        const int64_t B = ctx->saved_data["B"].toInt(), T = ctx->saved_data["T"].toInt(),
                      C = ctx->saved_data["C"].toInt();
        const int64_t heads = ctx->saved_data["heads"].toInt(), kv_heads = ctx->saved_data["kv_heads"].toInt();
        const float sc = static_cast<float>(ctx->saved_data["scale"].toDouble());
        auto opts = cos_table.options();
        auto gqkv = torch::empty({B, T, C}, opts);
        const auto s = shape_of(gqkv, heads, kv_heads);
        auto gq = grads[0].defined() ? grads[0].contiguous() : torch::zeros({B, s.KV, T * s.G, s.hd}, opts);
        auto gk = grads[1].defined() ? grads[1].contiguous() : torch::zeros({B, s.KV, T, s.hd}, opts);
        auto gv = grads[2].defined() ? grads[2].contiguous() : torch::zeros({B, s.KV, T, s.hd}, opts);
        const int64_t* pp = pos.data_ptr<int64_t>();
        const bool per_row = pos.size(0) == B && B > 1;
        const float* ct = cos_table.data_ptr<float>();
        const float* st = sin_table.data_ptr<float>();
        const float *gqp = gq.data_ptr<float>(), *gkp = gk.data_ptr<float>(), *gvp = gv.data_ptr<float>();
        float* out = gqkv.data_ptr<float>();
        at::parallel_for(0, B * T, grain(C), [&](int64_t begin, int64_t end) {
            for (int64_t bt = begin; bt < end; ++bt) {
                const int64_t b = bt / T, t = bt % T;
                const int64_t p = pp[per_row ? bt : t];
                const float* c = ct + p * s.half;
                const float* sn = st + p * s.half;
                float* row = out + bt * C;
                for (int64_t h = 0; h < s.H; ++h) {
                    const int64_t kv = h / s.G, g = h % s.G;
                    rotate(gqp + (((b * s.KV + kv) * T + t) * s.G + g) * s.hd, row + h * s.hd, c, sn, s.half, -1.0f, sc);
                }
                for (int64_t kv = 0; kv < s.KV; ++kv) {
                    const int64_t o = ((b * s.KV + kv) * T + t) * s.hd;
                    rotate(gkp + o, row + (s.H + kv) * s.hd, c, sn, s.half, -1.0f, 1.0f);
                    std::copy(gvp + o, gvp + o + s.hd, row + (s.H + s.KV + kv) * s.hd);
                }
            }
        });
        return {gqkv, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
                torch::Tensor()};
    }
};

// ---------------------------------------------------------------------------------------------------------------
// SwiGLU on the fused gate/up projection: (N, 2F) -> silu(gate) * up, (N, F).

// One row of the backward pass: gate g, up u (= g + F), output gradient o, sigmoid(g) s; writes d gate, d up.
// silu'(g) = s (1 + g (1 - s)).
void swiglu_backward_row(const float* __restrict__ g, const float* __restrict__ o, const float* __restrict__ s,
                         float* __restrict__ d, int64_t F) {
    const float* __restrict__ u = g + F;
    float* __restrict__ du = d + F;
    for (int64_t j = 0; j < F; ++j) {
        const float sj = s[j], gj = g[j], oj = o[j];
        du[j] = oj * gj * sj;
        d[j] = oj * u[j] * sj * (1.0f + gj * (1.0f - sj));
    }
}

struct SwiGluFn : torch::autograd::Function<SwiGluFn> {
    static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& gate_up) {
        const int64_t F = gate_up.size(-1) / 2;
        auto gate = gate_up.narrow(-1, 0, F), up = gate_up.narrow(-1, F, F);
        ctx->save_for_backward({gate_up});
        return torch::silu(gate) * up;
    }

    static variable_list backward(AutogradContext* ctx, variable_list grads) {
        auto gate_up = ctx->get_saved_variables()[0].contiguous();
        auto gout = grads[0].contiguous();
        const int64_t F = gate_up.size(-1) / 2, N = gate_up.numel() / (2 * F);
        // The exponential goes through libtorch's vectorised sigmoid; the rest is one pass.
        auto sig = torch::sigmoid(gate_up.narrow(-1, 0, F)).contiguous();
        auto grad = torch::empty_like(gate_up);
        const float *gu = gate_up.data_ptr<float>(), *go = gout.data_ptr<float>(), *sp = sig.data_ptr<float>();
        float* out = grad.data_ptr<float>();
        at::parallel_for(0, N, grain(3 * F), [&](int64_t begin, int64_t end) {
            for (int64_t n = begin; n < end; ++n) {
                swiglu_backward_row(gu + n * 2 * F, go + n * F, sp + n * F, out + n * 2 * F, F);
            }
        });
        return {grad};
    }
};

// ---------------------------------------------------------------------------------------------------------------
// Attention over grouped query heads: softmax(q k^T + mask_bias) v, per (batch, kv head) pair.
// In: q (B, KV, T*G, hd) with query t of head g at row t*G + g, k and v (B, KV, S, hd), mask_bias (M, 1, 1, T, S)
// with M = B or 1. Out: (B, KV, T*G, hd), rows as q's.
// The same libtorch ops as batched matmuls and a softmax, but each pair's scores are made, used and, in the
// backward, differentiated while they sit in the core's cache: the batched ops wrote each intermediate,
// (B, KV, T*G, S), out to memory and read it back, which made attention run at a third of the matmul rate.
// Queries go in tiles of consecutive positions, each against the keys up to the last one a query of the tile sees:
// under a causal mask that skips most of the blocked half of the square. The keys left out carry exactly zero
// probability, so each row's softmax is the same. Only the probabilities are kept for the backward, as the softmax
// kept them.
struct AttentionFn : torch::autograd::Function<AttentionFn> {
    // Positions per query tile: tiles of 256 rows (64 positions of 4 heads), which keeps the matmuls large enough
    // for the BLAS while a causal mask still skips 3/8 of the square.
    static int64_t tile_positions(int64_t G) { return std::max<int64_t>(1, 256 / G); }

    // For each mask row m and tile, the number of keys up to the last one that some query of the tile may see
    // (at least 1: a row that sees nothing keeps its NaN softmax, as the full row gave).
    static std::vector<int64_t> key_limits(const torch::Tensor& mask, int64_t tile) {
        const int64_t M = mask.size(0), T = mask.size(1), S = mask.size(2), tiles = (T + tile - 1) / tile;
        auto m = mask.contiguous();
        const float* mp = m.data_ptr<float>();
        std::vector<int64_t> limits(M * tiles, 1);
        for (int64_t r = 0; r < M * T; ++r) {
            const float* row = mp + r * S;
            int64_t seen = S;
            while (seen > 0 && row[seen - 1] == -std::numeric_limits<float>::infinity()) --seen;
            auto& limit = limits[(r / T) * tiles + (r % T) / tile];
            limit = std::max(limit, seen);
        }
        return limits;
    }

    static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                                 const torch::Tensor& v, const torch::Tensor& mask_bias) {
        const int64_t B = q.size(0), KV = q.size(1), TG = q.size(2), hd = q.size(3), S = k.size(2);
        const int64_t M = mask_bias.size(0), T = mask_bias.size(-2), G = TG / T, tile = tile_positions(G);
        const int64_t tiles = (T + tile - 1) / tile;
        auto mask = mask_bias.view({M, T, S});
        const auto limits = key_limits(mask, tile);
        auto probs = torch::empty({B, KV, TG, S}, q.options());
        auto out = torch::empty({B, KV, TG, hd}, q.options());
        // The worker threads take this thread's autograd and inference modes, so that their ops record nothing
        // and may write into tensors made here.
        const at::ThreadLocalState state;
        at::parallel_for(0, B * KV, 1, [&](int64_t begin, int64_t end) {
            const at::ThreadLocalStateGuard guard(state);
            auto buffer = torch::empty({tile * G * S}, q.options());
            for (int64_t i = begin; i < end; ++i) {
                const int64_t b = i / KV, kv = i % KV, m = M == 1 ? 0 : b;
                auto qi = q[b][kv], ki = k[b][kv], vi = v[b][kv], pi = probs[b][kv].view({-1}), oi = out[b][kv];
                for (int64_t j = 0; j < tiles; ++j) {
                    const int64_t t0 = j * tile, n = std::min(tile, T - t0), L = limits[m * tiles + j];
                    // The tile's probabilities, (n*G, L), packed at the start of its rows of the pair's block.
                    auto scores = buffer.narrow(0, 0, n * G * L).view({n * G, L});
                    auto p = pi.narrow(0, t0 * G * S, n * G * L).view({n * G, L});
                    auto o = oi.narrow(0, t0 * G, n * G);
                    at::mm_out(scores, qi.narrow(0, t0 * G, n * G), ki.narrow(0, 0, L).t());
                    scores.view({n, G, L}).add_(mask[m].narrow(0, t0, n).narrow(1, 0, L).unsqueeze(1));
                    at::_softmax_out(p, scores, -1, false);
                    at::mm_out(o, p, vi.narrow(0, 0, L));
                }
            }
        });
        ctx->save_for_backward({q, k, v, probs});
        ctx->saved_data["T"] = T;
        ctx->saved_data["M"] = M;
        ctx->saved_data["limits"] = limits;
        return out;
    }

    static variable_list backward(AutogradContext* ctx, variable_list grads) {
        auto saved = ctx->get_saved_variables();
        const auto &q = saved[0], &k = saved[1], &v = saved[2], &probs = saved[3];
        const int64_t T = ctx->saved_data["T"].toInt(), M = ctx->saved_data["M"].toInt();
        const auto limits = ctx->saved_data["limits"].toIntVector();
        auto gout = grads[0].contiguous();
        const int64_t B = q.size(0), KV = q.size(1), TG = q.size(2), S = k.size(2);
        const int64_t G = TG / T, tile = tile_positions(G), tiles = (T + tile - 1) / tile;
        // Keys and values gather their gradients over the tiles.
        auto gq = torch::empty_like(q), gk = torch::zeros_like(k), gv = torch::zeros_like(v);
        const at::ThreadLocalState state;
        at::parallel_for(0, B * KV, 1, [&](int64_t begin, int64_t end) {
            const at::ThreadLocalStateGuard guard(state);
            auto buffers = torch::empty({2, tile * G * S}, q.options());
            for (int64_t i = begin; i < end; ++i) {
                const int64_t b = i / KV, kv = i % KV, m = M == 1 ? 0 : b;
                auto qi = q[b][kv], ki = k[b][kv], vi = v[b][kv], pi = probs[b][kv].view({-1}), goi = gout[b][kv];
                auto gqi = gq[b][kv], gki = gk[b][kv], gvi = gv[b][kv];
                for (int64_t j = 0; j < tiles; ++j) {
                    const int64_t t0 = j * tile, n = std::min(tile, T - t0), L = limits[m * tiles + j];
                    auto p = pi.narrow(0, t0 * G * S, n * G * L).view({n * G, L});
                    auto gp = buffers[0].narrow(0, 0, n * G * L).view({n * G, L});
                    auto gs = buffers[1].narrow(0, 0, n * G * L).view({n * G, L});
                    auto go = goi.narrow(0, t0 * G, n * G), gqt = gqi.narrow(0, t0 * G, n * G);
                    at::mm_out(gp, go, vi.narrow(0, 0, L).t());
                    gvi.narrow(0, 0, L).addmm_(p.t(), go);
                    at::_softmax_backward_data_out(gs, gp, p, -1, torch::kFloat32);
                    at::mm_out(gqt, gs, ki.narrow(0, 0, L));
                    gki.narrow(0, 0, L).addmm_(gs.t(), qi.narrow(0, t0 * G, n * G));
                }
            }
        });
        return {gq, gk, gv, torch::Tensor()};
    }
};

bool fusable(const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat32; }

// Scores per (batch, kv head) pair from which attention takes the fused kernel: 64 K, a 128-token sequence's
// 4 query heads against its 128 keys.
constexpr int64_t kFusedAttentionMinScores = int64_t{1} << 16;

}  // namespace

torch::Tensor fused_rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
    if (!fusable(x)) return x * torch::rsqrt(x.square().mean(-1, true) + eps) * weight;
    return RmsNormFn::apply(x, weight, eps);
}

std::vector<torch::Tensor> fused_rope_split(const torch::Tensor& qkv, const torch::Tensor& positions,
                                            const torch::Tensor& cos, const torch::Tensor& sin, int64_t heads,
                                            int64_t kv_heads, double scale) {
    if (fusable(qkv)) return RopeSplitFn::apply(qkv, positions, cos, sin, heads, kv_heads, scale);
    // Reference path (other devices): the same layout from plain ops.
    const int64_t B = qkv.size(0), T = qkv.size(1), hd = qkv.size(2) / (heads + 2 * kv_heads), half = hd / 2;
    const int64_t G = heads / kv_heads;
    auto c = cos.index_select(0, positions.reshape({-1})).view({positions.size(0), T, 1, half});
    auto s = sin.index_select(0, positions.reshape({-1})).view({positions.size(0), T, 1, half});
    auto rope = [&](const torch::Tensor& x) {
        auto halves = x.chunk(2, -1);
        return torch::cat({halves[0] * c - halves[1] * s, halves[1] * c + halves[0] * s}, -1);
    };
    auto q = rope(qkv.narrow(-1, 0, heads * hd).view({B, T, heads, hd})) * scale;
    auto k = rope(qkv.narrow(-1, heads * hd, kv_heads * hd).view({B, T, kv_heads, hd}));
    auto v = qkv.narrow(-1, (heads + kv_heads) * hd, kv_heads * hd).view({B, T, kv_heads, hd});
    q = q.view({B, T, kv_heads, G, hd}).permute({0, 2, 1, 3, 4}).reshape({B, kv_heads, T * G, hd});
    return {q, k.permute({0, 2, 1, 3}).contiguous(), v.permute({0, 2, 1, 3}).contiguous()};
}

torch::Tensor fused_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& mask_bias) {
    // The fused kernel runs a dozen small ops per (batch, kv head) pair: worth it for a pair's scores of training
    // size, but over a decoding step's few scores those ops' own overhead outweighs the batched ops' memory traffic.
    const int64_t pair_scores = q.size(2) * k.size(2);
    if (fusable(q) && pair_scores >= kFusedAttentionMinScores) return AttentionFn::apply(q, k, v, mask_bias);
    const int64_t B = q.size(0), KV = q.size(1), TG = q.size(2), T = mask_bias.size(-2), S = k.size(2);
    auto scores = torch::matmul(q, k.transpose(-1, -2)).view({B, KV, T, TG / T, S});
    return torch::matmul(torch::softmax(scores + mask_bias.transpose(2, 3), -1).view({B, KV, TG, S}), v);
}

torch::Tensor fused_swiglu(const torch::Tensor& gate_up) {
    if (!fusable(gate_up)) {
        auto parts = gate_up.chunk(2, -1);
        return torch::silu(parts[0]) * parts[1];
    }
    return SwiGluFn::apply(gate_up);
}

}  // namespace dapo
