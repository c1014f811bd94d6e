// Internal declarations of the policy engine: the model, its forward passes, sampling, scoring, AdamW and
// serialisation. The C ABI in api.cpp is the only way in from outside.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <memory>
#include <cstdint>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "dapo_torch.h"

namespace dapo {

// A bad argument from the caller; its message names the argument and what is wrong.
struct ArgumentError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

inline std::string to_text(const std::string& s) { return s; }
inline std::string to_text(const char* s) { return s; }
template <typename T>
std::string to_text(const T& v) {
    std::ostringstream out;
    out << v;
    return out.str();
}

template <typename... Parts>
std::string concat(const Parts&... parts) {
    std::string out;
    ((out += to_text(parts)), ...);
    return out;
}

template <typename... Parts>
void require(bool condition, const Parts&... parts) {
    if (!condition) throw ArgumentError(concat(parts...));
}

// An int64 tensor on dev holding a copy of values (torch::from_blob alone would alias memory that is freed while
// autograd still holds the tensor).
inline torch::Tensor int64_tensor(const std::vector<int64_t>& values, torch::IntArrayRef shape, torch::Device dev) {
    return torch::from_blob(const_cast<int64_t*>(values.data()), shape, torch::kInt64).clone().to(dev);
}

// Counts handles alive across all types, for leak tests.
extern std::atomic<int64_t> live_objects;

struct Config {
    int64_t vocab_size = 0, d_model = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, d_ff = 0, max_seq_len = 0;
    double rope_theta = 10000.0, norm_eps = 1e-6;
    bool tie_embeddings = false, attention_bias = true;
    uint64_t seed = 0;
    int32_t device_type = 0, device_index = 0;

    int64_t head_dim() const { return d_model / n_heads; }
    int64_t kv_dim() const { return n_kv_heads * head_dim(); }
    void validate() const;
    static Config from_c(const dapo_model_config& c);
    dapo_model_config to_c() const;
    // Fields that must agree for weights to be loadable (everything but seed and device).
    std::string architecture_mismatch(const Config& other) const;
};

struct Layer {
    torch::Tensor attn_norm;  // (d)
    torch::Tensor w_qkv;      // (d + 2 kv_dim, d): q, k and v projections fused
    torch::Tensor b_qkv;      // (d + 2 kv_dim) or undefined
    torch::Tensor w_o;        // (d, d)
    torch::Tensor mlp_norm;   // (d)
    torch::Tensor w_gate_up;  // (2 d_ff, d): SwiGLU gate and up projections fused
    torch::Tensor w_down;     // (d, d_ff)
};

// Per-layer key/value cache for incremental decoding: (B, n_kv, capacity, head_dim) each.
struct KvCache {
    std::vector<torch::Tensor> k, v;
    int64_t length = 0;
};

class Model {
public:
    explicit Model(const Config& config);

    const Config& config() const { return config_; }
    torch::Device device() const { return device_; }
    // Parameters in a fixed order, with stable names; this order defines the serialised layout.
    const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters() const { return params_; }

    // Hidden states before the final norm, (B, T, d). ids (B, T) int64; positions (B or 1, T) int64 rotary
    // positions; blocked (B or 1, 1, 1, T, S) bool, true where a query may not see a key, S = cached length + T.
    torch::Tensor hidden(const torch::Tensor& ids, const torch::Tensor& positions, const torch::Tensor& blocked,
                         KvCache* cache) const;
    // Final norm and LM head on (N, d) hidden states: logits (N, vocab).
    torch::Tensor logits(const torch::Tensor& hidden) const;

    std::mutex& lock() { return lock_; }

private:
    torch::Tensor attention(const Layer& layer, const torch::Tensor& x, const torch::Tensor& positions,
                            const torch::Tensor& mask_bias, KvCache* cache, size_t index) const;
    torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight) const;

    Config config_;
    torch::Device device_;
    std::vector<Layer> layers_;
    torch::Tensor embed_, final_norm_, lm_head_;
    torch::Tensor rope_cos_, rope_sin_;  // (max_seq_len, head_dim / 2)
    std::vector<std::pair<std::string, torch::Tensor>> params_;
    std::mutex lock_;
};

// Fused kernels (fused.cpp), with autograd; plain libtorch ops off the CPU.
torch::Tensor fused_rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);
// qkv (B, T, d + 2 kv_dim) -> q (B, KV, T*G, hd) rotated and scaled (head kv*G + g of position t at row t*G + g),
// k (B, KV, T, hd) rotated, v (B, KV, T, hd).
std::vector<torch::Tensor> fused_rope_split(const torch::Tensor& qkv, const torch::Tensor& positions,
                                            const torch::Tensor& cos, const torch::Tensor& sin, int64_t heads,
                                            int64_t kv_heads, double scale);
// q (B, KV, T*G, hd), k and v (B, KV, S, hd), mask_bias (B or 1, 1, 1, T, S) -> softmax(q k^T + mask_bias) v,
// (B, KV, T*G, hd).
torch::Tensor fused_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& mask_bias);
// (N, 2F) gate and up projections -> silu(gate) * up, (N, F).
torch::Tensor fused_swiglu(const torch::Tensor& gate_up);

struct Samples {
    std::vector<std::vector<int32_t>> tokens;
    std::vector<std::vector<float>> logprobs;
    std::vector<uint8_t> truncated;
};

struct SampleRequest {
    std::vector<std::vector<int64_t>> prompts;
    int64_t samples_per_prompt = 1, max_new_tokens = 0;
    double temperature = 1.0, top_p = 1.0;
    std::vector<int64_t> stop_tokens;
    uint64_t seed = 0;
    std::vector<uint64_t> prompt_seeds;  // empty, or one per prompt
    bool use_kv_cache = true;
};

Samples sample(Model& model, const SampleRequest& request);

struct Score {
    torch::Tensor logprobs;   // (N), with a graph when requires_grad
    torch::Tensor entropies;  // (N), no graph
    bool backward_done = false;
};

Score score(Model& model, const std::vector<std::vector<int64_t>>& sequences,
            const std::vector<std::vector<uint8_t>>& masks, double temperature, bool requires_grad);

struct AdamWOptions {
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01, max_grad_norm = 1.0;
    void validate() const;
};

class AdamW {
public:
    AdamW(std::shared_ptr<Model> model, const AdamWOptions& options);
    // Returns the pre-clip global gradient norm; applied is false when the norm was not finite.
    double step(double lr, bool& applied);
    int64_t step_count() const { return step_; }
    const AdamWOptions& options() const { return options_; }
    Model& model() { return *model_; }

    std::vector<torch::Tensor>& exp_avg() { return m_; }
    std::vector<torch::Tensor>& exp_avg_sq() { return v_; }
    void set_state(const AdamWOptions& options, int64_t step, std::vector<torch::Tensor> m,
                   std::vector<torch::Tensor> v);

private:
    std::shared_ptr<Model> model_;
    AdamWOptions options_;
    int64_t step_ = 0;
    std::vector<torch::Tensor> m_, v_;
};

std::string export_weights(Model& model);
void import_weights(Model& model, const uint8_t* data, int64_t size);
std::string save_state(Model& model, AdamW& optim);
void load_state(Model& model, AdamW& optim, const uint8_t* data, int64_t size);
Config read_config(const uint8_t* data, int64_t size);

}  // namespace dapo
