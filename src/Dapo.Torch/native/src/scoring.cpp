// Scoring for training: per-token log-probabilities (with a graph on request) and entropies of given sequences.
#include <cmath>

#include "engine.h"

namespace dapo {

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
    if (temperature != 1.0) logits = logits / temperature;
    auto logp_all = torch::log_softmax(logits, -1);
    Score out;
    out.logprobs = logp_all.gather(1, targets_t).squeeze(1);
    {
        torch::NoGradGuard no_grad;
        auto lp = logp_all.detach();
        out.entropies = -(lp.exp() * lp).sum(-1);
    }
    return out;
}

}  // namespace dapo
