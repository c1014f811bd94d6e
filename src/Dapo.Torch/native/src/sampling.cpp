// Batched sampling with a key/value cache, temperature and top-p.
//
// Prompts of different lengths are left-padded to one length; padded keys are masked out and each row's rotary
// positions start at its first real token, so a row computes what it would compute alone. Each prompt is
// prefilled once and its cache copied to its samples. Random draws come from a counter-based generator keyed by
// (seed, sample index, step), so a sample's tokens do not depend on which other samples share the batch or when
// they finish; finished rows are dropped from the batch once enough of them have finished.
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine.h"

namespace dapo {
namespace {

uint64_t splitmix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// Uniform in [0, 1) for (seed, sample, step).
double uniform(uint64_t seed, int64_t sample, int64_t step) {
    uint64_t h = splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(sample)) ^ static_cast<uint64_t>(step));
    return static_cast<double>(h >> 11) * 0x1.0p-53;
}

// The uniform draw of sample k at a step: keyed by the request seed and k, or by its prompt's seed and its index
// within the prompt's samples.
double draw(const SampleRequest& r, int64_t sample, int64_t step) {
    if (r.prompt_seeds.empty()) return uniform(r.seed, sample, step);
    return uniform(r.prompt_seeds[sample / r.samples_per_prompt], sample % r.samples_per_prompt, step);
}

struct Choice {
    int64_t token;
    float logprob;
};

// Picks one token per row of logits (A, V). The log-probability is always the full temperature-scaled
// distribution's; top-p only restricts which tokens can be drawn.
std::vector<Choice> choose(const torch::Tensor& logits, const SampleRequest& r, const std::vector<int64_t>& samples,
                           int64_t step) {
    const bool greedy = r.temperature == 0.0;
    auto logp = torch::log_softmax(greedy ? logits : logits / r.temperature, -1).to(torch::kCPU).contiguous();
    const int64_t A = logp.size(0), V = logp.size(1);
    const float* lp = logp.data_ptr<float>();
    std::vector<Choice> out(A);
    // Rows are independent and each is walked by one thread in the same order as alone, so the draws do not depend
    // on the thread count. A real vocabulary makes this walk (exp over every token, in double) a large share of a
    // decoding step; small vocabularies stay on this thread (a chunk is at least ~32k tokens of work).
    const int64_t rows_per_chunk = std::max<int64_t>(1, (int64_t{1} << 15) / V);
    at::parallel_for(0, A, rows_per_chunk, [&](int64_t first, int64_t last) {
        std::vector<std::pair<double, int64_t>> order;
        for (int64_t a = first; a < last; ++a) {
            const float* row = lp + a * V;
            int64_t token = 0;
            if (greedy) {
                token = std::max_element(row, row + V) - row;  // first maximum on ties
            } else if (r.top_p >= 1.0) {
                double total = 0.0;
                for (int64_t i = 0; i < V; ++i) total += std::exp(static_cast<double>(row[i]));
                const double target = draw(r, samples[a], step) * total;
                double cumulative = 0.0;
                token = -1;
                for (int64_t i = 0; i < V; ++i) {
                    const double p = std::exp(static_cast<double>(row[i]));
                    cumulative += p;
                    if (p > 0.0) token = i;  // rounding can leave target just above the last sum: take the last
                    if (cumulative > target && p > 0.0) break;
                }
            } else {
                // Nucleus: the most probable tokens, in order, until their mass reaches top_p.
                order.resize(V);
                for (int64_t i = 0; i < V; ++i) order[i] = {std::exp(static_cast<double>(row[i])), i};
                std::stable_sort(order.begin(), order.end(),
                                 [](const auto& x, const auto& y) { return x.first > y.first; });
                double mass = 0.0;
                int64_t kept = 0;
                while (kept < V && (kept == 0 || mass < r.top_p)) mass += order[kept++].first;
                const double target = draw(r, samples[a], step) * mass;
                double cumulative = 0.0;
                token = order[kept - 1].second;
                for (int64_t i = 0; i < kept; ++i) {
                    cumulative += order[i].first;
                    if (cumulative > target) {
                        token = order[i].second;
                        break;
                    }
                }
            }
            out[a] = {token, row[token]};
        }
    });
    return out;
}

void validate(const Model& model, const SampleRequest& r) {
    const auto& c = model.config();
    require(!r.prompts.empty(), "prompts: the batch is empty");
    require(r.samples_per_prompt >= 1, "samples_per_prompt must be at least 1, got ", r.samples_per_prompt);
    require(r.max_new_tokens >= 1, "max_new_tokens must be at least 1, got ", r.max_new_tokens);
    require(std::isfinite(r.temperature) && r.temperature >= 0.0,
            "temperature must be a finite number >= 0 (0 is greedy), got ", r.temperature);
    require(r.top_p > 0.0 && r.top_p <= 1.0, "top_p must be in (0, 1], got ", r.top_p);
    for (size_t i = 0; i < r.prompts.size(); ++i) {
        const auto& p = r.prompts[i];
        require(!p.empty(), "prompt ", i, " is empty");
        require(static_cast<int64_t>(p.size()) + r.max_new_tokens <= c.max_seq_len, "prompt ", i, ": length ",
                p.size(), " plus max_new_tokens ", r.max_new_tokens, " exceeds the model's max_seq_len ",
                c.max_seq_len);
        for (size_t t = 0; t < p.size(); ++t)
            require(p[t] >= 0 && p[t] < c.vocab_size, "prompt ", i, ", token ", t, ": id ", p[t],
                    " is outside the vocabulary [0, ", c.vocab_size, ")");
    }
    for (auto s : r.stop_tokens)
        require(s >= 0 && s < c.vocab_size, "stop token id ", s, " is outside the vocabulary [0, ", c.vocab_size, ")");
    require(r.prompt_seeds.empty() || r.prompt_seeds.size() == r.prompts.size(), "prompt_seeds has ",
            r.prompt_seeds.size(), " seeds for ", r.prompts.size(), " prompts");
}

// The batch being decoded: one row per unfinished (or not yet dropped) sample.
struct Rows {
    std::vector<int64_t> sample;      // row -> sample index
    std::vector<int64_t> prompt_len;  // row -> its prompt's real length
    std::vector<int64_t> last;        // row -> last token
    std::vector<bool> done;
};

}  // namespace

Samples sample(Model& model, const SampleRequest& r) {
    validate(model, r);
    c10::InferenceMode inference;
    const auto& c = model.config();
    const auto dev = model.device();
    const int64_t P = static_cast<int64_t>(r.prompts.size()), n = r.samples_per_prompt, N = P * n;
    int64_t Lp = 0;
    for (const auto& p : r.prompts) Lp = std::max<int64_t>(Lp, static_cast<int64_t>(p.size()));
    const int64_t capacity = Lp + r.max_new_tokens;

    // Left-padded tokens, with keys valid from each row's first real token on, for every sample row.
    std::vector<int64_t> ids(N * capacity, 0), positions(N * capacity, 0);
    std::vector<uint8_t> valid(N * capacity, 1);
    Rows rows;
    for (int64_t s = 0; s < N; ++s) {
        const auto& p = r.prompts[s / n];
        const int64_t pad = Lp - static_cast<int64_t>(p.size());
        for (int64_t t = 0; t < capacity; ++t) {
            valid[s * capacity + t] = t >= pad;
            positions[s * capacity + t] = std::max<int64_t>(0, t - pad);
            if (t >= pad && t < Lp) ids[s * capacity + t] = p[t - pad];
        }
        rows.sample.push_back(s);
        rows.prompt_len.push_back(static_cast<int64_t>(p.size()));
        rows.last.push_back(p.back());
        rows.done.push_back(false);
    }
    auto i64 = torch::TensorOptions().dtype(torch::kInt64);
    auto ids_t = int64_tensor(ids, {N, capacity}, dev);
    auto pos_t = int64_tensor(positions, {N, capacity}, dev);
    auto valid_t = torch::from_blob(valid.data(), {N, capacity}, torch::kUInt8).to(torch::kBool).to(dev);
    // Queries see earlier valid keys; a padded query also sees itself, so that no softmax row is empty.
    auto prefix_blocked = [&](const torch::Tensor& rows_valid, int64_t len) {
        auto b = torch::TensorOptions().dtype(torch::kBool).device(dev);
        auto v = rows_valid.narrow(1, 0, len).view({-1, 1, 1, 1, len});
        return (torch::ones({len, len}, b).tril() & (v | torch::eye(len, b))).logical_not();
    };

    Samples out;
    out.tokens.resize(N);
    out.logprobs.resize(N);
    out.truncated.assign(N, 0);
    std::vector<bool> stop(c.vocab_size, false);
    for (auto s : r.stop_tokens) stop[s] = true;

    KvCache cache;
    torch::Tensor logits;  // (rows, vocab) for the next token
    if (r.use_kv_cache) {
        // Prefill each prompt once (its first sample row), then copy the cache to the prompt's samples.
        auto first_rows = torch::arange(0, N, n, i64).to(dev);
        auto p_ids = ids_t.index_select(0, first_rows).narrow(1, 0, Lp);
        auto p_pos = pos_t.index_select(0, first_rows).narrow(1, 0, Lp);
        auto p_valid = valid_t.index_select(0, first_rows);
        auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(dev);
        for (int64_t l = 0; l < c.n_layers; ++l) {
            cache.k.push_back(torch::zeros({P, c.n_kv_heads, capacity, c.head_dim()}, opts));
            cache.v.push_back(torch::zeros({P, c.n_kv_heads, capacity, c.head_dim()}, opts));
        }
        auto h = model.hidden(p_ids, p_pos, prefix_blocked(p_valid, Lp), &cache);
        logits = model.logits(h.select(1, Lp - 1));
        if (n > 1) {
            auto expand = torch::arange(0, P, i64).repeat_interleave(n).to(dev);
            for (int64_t l = 0; l < c.n_layers; ++l) {
                cache.k[l] = cache.k[l].index_select(0, expand);
                cache.v[l] = cache.v[l].index_select(0, expand);
            }
            logits = logits.index_select(0, expand);
        }
    }

    auto keep_rows = [&](const std::vector<int64_t>& keep) {
        auto idx = int64_tensor(keep, {static_cast<int64_t>(keep.size())}, dev);
        for (int64_t l = 0; l < static_cast<int64_t>(cache.k.size()); ++l) {
            cache.k[l] = cache.k[l].index_select(0, idx);
            cache.v[l] = cache.v[l].index_select(0, idx);
        }
        ids_t = ids_t.index_select(0, idx);
        pos_t = pos_t.index_select(0, idx);
        valid_t = valid_t.index_select(0, idx);
        if (logits.defined()) logits = logits.index_select(0, idx);
        Rows next;
        for (auto k : keep) {
            next.sample.push_back(rows.sample[k]);
            next.prompt_len.push_back(rows.prompt_len[k]);
            next.last.push_back(rows.last[k]);
            next.done.push_back(rows.done[k]);
        }
        rows = std::move(next);
    };

    for (int64_t t = 0; t < r.max_new_tokens; ++t) {
        const int64_t len = Lp + t;  // tokens already in each row, padding included
        if (!r.use_kv_cache) {
            auto h = model.hidden(ids_t.narrow(1, 0, len), pos_t.narrow(1, 0, len), prefix_blocked(valid_t, len), nullptr);
            logits = model.logits(h.select(1, len - 1));
        }
        auto choices = choose(logits, r, rows.sample, t);
        int64_t active = 0;
        std::vector<int64_t> new_ids(rows.sample.size());
        for (size_t a = 0; a < rows.sample.size(); ++a) {
            new_ids[a] = rows.last[a];
            if (rows.done[a]) continue;
            const int64_t s = rows.sample[a];
            out.tokens[s].push_back(static_cast<int32_t>(choices[a].token));
            out.logprobs[s].push_back(choices[a].logprob);
            rows.last[a] = new_ids[a] = choices[a].token;
            if (stop[choices[a].token]) {
                rows.done[a] = true;
            } else if (t + 1 == r.max_new_tokens) {
                out.truncated[s] = 1;
                rows.done[a] = true;
            } else {
                ++active;
            }
        }
        if (active == 0) break;
        auto new_t = int64_tensor(new_ids, {static_cast<int64_t>(new_ids.size())}, dev);
        ids_t.select(1, len).copy_(new_t);
        // Drop finished rows once they are a quarter of the batch: copying the cache costs about one step.
        if (active * 4 <= static_cast<int64_t>(rows.sample.size()) * 3) {
            std::vector<int64_t> keep;
            for (size_t a = 0; a < rows.done.size(); ++a)
                if (!rows.done[a]) keep.push_back(static_cast<int64_t>(a));
            keep_rows(keep);
        }
        if (r.use_kv_cache) {
            auto step_ids = ids_t.narrow(1, len, 1);
            auto step_pos = pos_t.narrow(1, len, 1);
            auto blocked = valid_t.narrow(1, 0, len + 1).logical_not().view({-1, 1, 1, 1, len + 1});
            auto h = model.hidden(step_ids, step_pos, blocked, &cache);
            logits = model.logits(h.select(1, 0));
        }
    }
    return out;
}

}  // namespace dapo
