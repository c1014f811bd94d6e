// AdamW (Loshchilov & Hutter) with decoupled weight decay, as torch.optim.AdamW computes it, after clipping the
// global gradient norm.
#include <cmath>

#include "engine.h"

namespace dapo {

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
    double squares = 0.0;
    for (const auto& [name, p] : params)
        if (p.grad().defined()) squares += p.grad().to(torch::kFloat64).square().sum().item<double>();
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
            if (clip < 1.0) g = g * clip;
            p.mul_(1.0 - lr * options_.weight_decay);
            m_[i].mul_(b1).add_(g, 1.0 - b1);
            v_[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
            auto denom = (v_[i].sqrt() / std::sqrt(bias2)).add_(options_.eps);
            p.addcdiv_(m_[i], denom, -lr / bias1);
        }
    }
    for (const auto& [name, p] : params)
        if (p.grad().defined()) p.mutable_grad().zero_();
    return norm;
}

}  // namespace dapo
