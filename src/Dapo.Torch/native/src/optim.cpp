// AdamW (Loshchilov & Hutter) with decoupled weight decay, as torch.optim.AdamW computes it, after clipping the
// global gradient norm.
#include <ATen/Parallel.h>
#include <cmath>

#include "engine.h"

namespace dapo {
namespace {

// The fused CPU path needs plain fp32 tensors it can walk by pointer, and is taken only for large ones (16 MB and
// up: a real vocabulary's embedding, a real model's MLP matrices), where the passes it saves over memory matter. Its
// rounding differs from libtorch's ops in the last bits (the order of the norm's sum; contracted multiply-adds), so
// small tensors keep libtorch's ops: the demo recipe's tiny policy trains bit for bit as it was tuned.
constexpr int64_t kFusedMinElements = int64_t{1} << 22;

bool fusable(const torch::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous() && t.numel() >= kFusedMinElements;
}

// Sum of squares of g in double, as g.to(kFloat64).square().sum() computes it, without the fp64 copy and its
// square (two tensors of twice g's size: 2.2 GB for a 151,936 x 896 embedding, freshly faulted in each step).
double sum_of_squares(const torch::Tensor& g) {
    if (!fusable(g)) return g.to(torch::kFloat64).square().sum().item<double>();
    const float* gp = g.data_ptr<float>();
    return at::parallel_reduce(
        0, g.numel(), at::internal::GRAIN_SIZE, 0.0,
        [&](int64_t begin, int64_t end, double partial) {
            // Four independent sums, so that the loop is not one chain of dependent additions.
            double s[4] = {0.0, 0.0, 0.0, 0.0};
            int64_t i = begin;
            for (; i + 4 <= end; i += 4)
                for (int j = 0; j < 4; ++j) s[j] += static_cast<double>(gp[i + j]) * gp[i + j];
            for (; i < end; ++i) partial += static_cast<double>(gp[i]) * gp[i];
            return partial + (s[0] + s[1]) + (s[2] + s[3]);
        },
        std::plus<double>());
}

}  // namespace

void AdamWOptions::validate() const {
    require(beta1 >= 0.0 && beta1 < 1.0, "adamw.beta1 must be in [0, 1), got ", beta1);
    require(beta2 >= 0.0 && beta2 < 1.0, "adamw.beta2 must be in [0, 1), got ", beta2);
    require(std::isfinite(eps) && eps > 0.0, "adamw.eps must be a finite number > 0, got ", eps);
    require(std::isfinite(weight_decay) && weight_decay >= 0.0, "adamw.weight_decay must be a finite number >= 0, got ",
            weight_decay);
    require(std::isfinite(max_grad_norm), "adamw.max_grad_norm must be finite (<= 0 disables clipping), got ",
            max_grad_norm);
}

AdamW::AdamW(std::shared_ptr<Model> model, const AdamWOptions& options) : model_(std::move(model)), options_(options) {
    options_.validate();
    for (const auto& [name, p] : model_->named_parameters()) {
        m_.push_back(torch::zeros_like(p, torch::TensorOptions().requires_grad(false)));
        v_.push_back(torch::zeros_like(p, torch::TensorOptions().requires_grad(false)));
    }
}

void AdamW::set_state(const AdamWOptions& options, int64_t step, std::vector<torch::Tensor> m,
                      std::vector<torch::Tensor> v) {
    options.validate();
    options_ = options;
    step_ = step;
    m_ = std::move(m);
    v_ = std::move(v);
}

double AdamW::step(double lr, bool& applied) {
    require(std::isfinite(lr) && lr >= 0.0, "lr must be a finite number >= 0, got ", lr);
    torch::NoGradGuard no_grad;
    const auto& params = model_->named_parameters();
    std::vector<bool> consumed(params.size(), false);  // gradients the fused update zeroed
    double squares = 0.0;
    for (const auto& [name, p] : params)
        if (p.grad().defined()) squares += sum_of_squares(p.grad());
    const double norm = std::sqrt(squares);
    applied = std::isfinite(norm);
    if (applied) {
        const double clip = options_.max_grad_norm > 0.0 ? options_.max_grad_norm / (norm + 1e-6) : 1.0;
        ++step_;
        const double b1 = options_.beta1, b2 = options_.beta2;
        const double bias1 = 1.0 - std::pow(b1, static_cast<double>(step_));
        const double bias2 = 1.0 - std::pow(b2, static_cast<double>(step_));
        for (size_t i = 0; i < params.size(); ++i) {
            auto p = params[i].second;
            auto g = p.grad().defined() ? p.grad() : torch::zeros_like(p);
            if (fusable(p) && fusable(g) && fusable(m_[i]) && fusable(v_[i])) {
                // One pass over p, g, m and v instead of about ten (each op below reads and writes whole tensors,
                // 0.5 GB apiece for the embedding of a 150k vocabulary); the same float arithmetic, op by op, with
                // the scalars rounded to float as the ops round them. The gradient is consumed (zeroed) on the way.
                const float fclip = static_cast<float>(clip), decay = static_cast<float>(1.0 - lr * options_.weight_decay);
                const float fb1 = static_cast<float>(b1), fb1c = static_cast<float>(1.0 - b1);
                const float fb2 = static_cast<float>(b2), fb2c = static_cast<float>(1.0 - b2);
                const float sqrt_bias2 = static_cast<float>(std::sqrt(bias2)), eps = static_cast<float>(options_.eps);
                const float step_size = static_cast<float>(-lr / bias1);
                const bool clipping = clip < 1.0;
                float* pp = p.data_ptr<float>();
                float* gp = g.data_ptr<float>();
                float* mp = m_[i].data_ptr<float>();
                float* vp = v_[i].data_ptr<float>();
                at::parallel_for(0, p.numel(), at::internal::GRAIN_SIZE, [&](int64_t begin, int64_t end) {
                    for (int64_t k = begin; k < end; ++k) {
                        const float gk = clipping ? gp[k] * fclip : gp[k];
                        gp[k] = 0.0f;
                        const float pk = pp[k] * decay;
                        const float mk = mp[k] * fb1 + fb1c * gk;
                        const float vk = vp[k] * fb2 + fb2c * gk * gk;
                        mp[k] = mk;
                        vp[k] = vk;
                        pp[k] = pk + step_size * (mk / (std::sqrt(vk) / sqrt_bias2 + eps));
                    }
                });
                torch::autograd::impl::bump_version(p);  // as p.mul_ would: a graph that saved p now fails loudly
                consumed[i] = true;
                continue;
            }
            if (clip < 1.0) g = g * clip;
            p.mul_(1.0 - lr * options_.weight_decay);
            m_[i].mul_(b1).add_(g, 1.0 - b1);
            v_[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
            auto denom = (v_[i].sqrt() / std::sqrt(bias2)).add_(options_.eps);
            p.addcdiv_(m_[i], denom, -lr / bias1);
        }
    }
    // Zero what the fused update did not consume (all of it when the step was skipped).
    for (size_t i = 0; i < params.size(); ++i)
        if (!consumed[i] && params[i].second.grad().defined()) params[i].second.mutable_grad().zero_();
    return norm;
}

}  // namespace dapo
