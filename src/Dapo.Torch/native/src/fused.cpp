// Fused CPU kernels with their own autograd: RMSNorm, rotary embedding with the q/k/v split, and SwiGLU.
// Each replaces a chain of small elementwise libtorch ops (and their backward) by one pass over memory, which is
// what bounds these ops on a CPU. On other devices the same functions fall back to plain libtorch ops.
#include <ATen/Parallel.h>
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
// Out: q (B, KV, G*T, hd) rotated and scaled, query head h = kv*G + g at rows g*T..; k (B, KV, T, hd) rotated;
// v (B, KV, T, hd).
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
        auto q = torch::empty({s.B, s.KV, s.G * s.T, s.hd}, qkv.options());
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
                    float* out = qp + (((b * s.KV + kv) * s.G + g) * s.T + t) * s.hd;
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
        auto gq = grads[0].defined() ? grads[0].contiguous() : torch::zeros({B, s.KV, s.G * T, s.hd}, opts);
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
                    rotate(gqp + (((b * s.KV + kv) * s.G + g) * T + t) * s.hd, row + h * s.hd, c, sn, s.half, -1.0f, sc);
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

bool fusable(const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat32; }

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
    q = q.view({B, T, kv_heads, G, hd}).permute({0, 2, 3, 1, 4}).reshape({B, kv_heads, G * T, hd});
    return {q, k.permute({0, 2, 1, 3}).contiguous(), v.permute({0, 2, 1, 3}).contiguous()};
}

torch::Tensor fused_swiglu(const torch::Tensor& gate_up) {
    if (!fusable(gate_up)) {
        auto parts = gate_up.chunk(2, -1);
        return torch::silu(parts[0]) * parts[1];
    }
    return SwiGluFn::apply(gate_up);
}

}  // namespace dapo
