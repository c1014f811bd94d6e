// Scoring for training: per-token log-probabilities (with a graph on request) and entropies of given sequences.
#include <cmath>

#include "engine.h"

namespace dapo {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows of logits handled at once: about 4 M floats (16 MB). The log-softmax, the entropy and their backward then
// make chunk-sized temporaries instead of five (N, vocab) tensors, 0.6 GB each for 1,020 positions of a
// 151,936-token vocabulary, which made most of a training step's peak memory and page faults.
int64_t chunk_rows(int64_t vocab) { return std::max<int64_t>(1, (int64_t{1} << 22) / vocab); }

// Log-probability of each row's target token and the row's entropy, from logits (N, V) at a temperature; only the
// log-probability has a gradient. The same libtorch ops as log_softmax(logits / t).gather(targets) and
// -(p * log p).sum(), row chunk by row chunk (each row's result is the same bits), with the logits saved instead of
// the (N, V) log-softmax; the backward recomputes each chunk's log-softmax and applies the backward of gather,
// log_softmax and the division op by op.
struct TokenLogProbFn : torch::autograd::Function<TokenLogProbFn> {
    static variable_list forward(AutogradContext* ctx, const torch::Tensor& logits, const torch::Tensor& targets,
                                 double temperature) {
        const int64_t N = logits.size(0), step = chunk_rows(logits.size(1));
        auto logp = torch::empty({N}, logits.options());
        auto entropy = torch::empty({N}, logits.options());
        for (int64_t r = 0; r < N; r += step) {
            const int64_t n = std::min(step, N - r);
            auto lp = log_softmax(logits.narrow(0, r, n), temperature);
            logp.narrow(0, r, n).copy_(lp.gather(1, targets.narrow(0, r, n)).squeeze(1));
            entropy.narrow(0, r, n).copy_(-(lp.exp() * lp).sum(-1));
        }
        ctx->save_for_backward({logits, targets});
        ctx->saved_data["temperature"] = temperature;
        ctx->mark_non_differentiable({entropy});
        return {logp, entropy};
    }

    static variable_list backward(AutogradContext* ctx, variable_list grads) {
        auto saved = ctx->get_saved_variables();
        const auto &logits = saved[0], &targets = saved[1];
        const double temperature = ctx->saved_data["temperature"].toDouble();
        const auto& g = grads[0];  // (N)
        if (!g.defined()) return {torch::Tensor(), torch::Tensor(), torch::Tensor()};
        const int64_t N = logits.size(0), step = chunk_rows(logits.size(1));
        auto grad = torch::empty_like(logits);
        for (int64_t r = 0; r < N; r += step) {
            const int64_t n = std::min(step, N - r);
            auto lp = log_softmax(logits.narrow(0, r, n), temperature);
            // gather's backward: each row's gradient at its target, zero elsewhere.
            auto at_targets = torch::zeros_like(lp).scatter_add_(1, targets.narrow(0, r, n), g.narrow(0, r, n).unsqueeze(1));
            auto gx = torch::_log_softmax_backward_data(at_targets, lp, -1, lp.scalar_type());
            if (temperature != 1.0) gx = gx / temperature;
            grad.narrow(0, r, n).copy_(gx);
        }
        return {grad, torch::Tensor(), torch::Tensor()};
    }

    static torch::Tensor log_softmax(const torch::Tensor& logits, double temperature) {
        return torch::log_softmax(temperature != 1.0 ? logits / temperature : logits, -1);
    }
};

}  // namespace

Score score(Model& model, const std::vector<std::vector<int64_t>>& sequences,
            const std::vector<std::vector<uint8_t>>& masks, double temperature, bool requires_grad) {
    const auto& c = model.config();
    const auto dev = model.device();
    require(!sequences.empty(), "sequences: the batch is empty");
    require(masks.size() == sequences.size(), "response_mask: ", masks.size(), " masks for ", sequences.size(),
            " sequences");
    require(std::isfinite(temperature) && temperature > 0.0, "temperature must be a finite number > 0, got ",
            temperature);
    const int64_t B = static_cast<int64_t>(sequences.size());
    int64_t T = 0;
    std::vector<int64_t> rows, targets;  // flat index of the predicting position, token predicted
    for (int64_t b = 0; b < B; ++b) {
        const auto& s = sequences[b];
        const int64_t len = static_cast<int64_t>(s.size());
        require(len >= 1, "sequence ", b, " is empty");
        require(len <= c.max_seq_len, "sequence ", b, ": length ", len, " exceeds the model's max_seq_len ",
                c.max_seq_len);
        require(masks[b].size() == s.size(), "sequence ", b, ": response_mask has ", masks[b].size(),
                " entries for ", len, " tokens");
        require(masks[b][0] == 0, "sequence ", b,
                ": response_mask is set at position 0, which has no context to score it");
        T = std::max(T, len);
        for (int64_t t = 0; t < len; ++t)
            require(s[t] >= 0 && s[t] < c.vocab_size, "sequence ", b, ", token ", t, ": id ", s[t],
                    " is outside the vocabulary [0, ", c.vocab_size, ")");
    }
    for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 1; t < static_cast<int64_t>(sequences[b].size()); ++t)
            if (masks[b][t]) {
                rows.push_back(b * T + t - 1);
                targets.push_back(sequences[b][t]);
            }
    require(!rows.empty(), "response_mask marks no token to score");

    std::vector<int64_t> ids(B * T, 0);  // right-padded: causal attention keeps padding out of real positions
    for (int64_t b = 0; b < B; ++b) std::copy(sequences[b].begin(), sequences[b].end(), ids.begin() + b * T);

    std::optional<c10::InferenceMode> inference;
    if (!requires_grad) inference.emplace();
    auto i64 = torch::TensorOptions().dtype(torch::kInt64);
    const int64_t N = static_cast<int64_t>(rows.size());
    auto ids_t = int64_tensor(ids, {B, T}, dev);
    auto pos_t = torch::arange(0, T, i64.device(dev)).view({1, T});
    auto blocked = torch::ones({T, T}, torch::TensorOptions().dtype(torch::kBool).device(dev)).triu(1);
    auto rows_t = int64_tensor(rows, {N}, dev);
    auto targets_t = int64_tensor(targets, {N, 1}, dev);

    auto h = model.hidden(ids_t, pos_t, blocked.view({1, 1, 1, T, T}), nullptr);
    // Only the positions that predict a response token go through the norm and LM head.
    auto logits = model.logits(h.view({B * T, c.d_model}).index_select(0, rows_t));
    auto scored = TokenLogProbFn::apply(logits, targets_t, temperature);
    Score out;
    out.logprobs = scored[0];
    out.entropies = scored[1];
    return out;
}

}  // namespace dapo
