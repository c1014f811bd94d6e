// The Qwen2-style decoder: token embedding, pre-norm RMSNorm, rotary position embedding, grouped-query
// attention with an optional key/value cache, SwiGLU MLP, final norm, LM head (optionally tied).
#include <cmath>

#include "engine.h"

namespace dapo {

std::atomic<int64_t> live_objects{0};

void Config::validate() const {
    require(vocab_size >= 2, "config.vocab_size must be at least 2, got ", vocab_size);
    require(d_model >= 2, "config.d_model must be at least 2, got ", d_model);
    require(n_layers >= 1, "config.n_layers must be at least 1, got ", n_layers);
    require(n_heads >= 1, "config.n_heads must be at least 1, got ", n_heads);
    require(n_kv_heads >= 1 && n_kv_heads <= n_heads, "config.n_kv_heads must be in [1, n_heads=", n_heads,
            "], got ", n_kv_heads);
    require(n_heads % n_kv_heads == 0, "config.n_heads (", n_heads, ") must be a multiple of n_kv_heads (",
            n_kv_heads, ")");
    require(d_model % n_heads == 0, "config.d_model (", d_model, ") must be a multiple of n_heads (", n_heads, ")");
    require(head_dim() % 2 == 0, "config: head_dim = d_model / n_heads = ", head_dim(),
            " must be even for rotary embedding");
    require(d_ff >= 1, "config.d_ff must be at least 1, got ", d_ff);
    require(max_seq_len >= 2, "config.max_seq_len must be at least 2, got ", max_seq_len);
    require(std::isfinite(rope_theta) && rope_theta > 1.0, "config.rope_theta must be a finite number > 1, got ",
            rope_theta);
    require(std::isfinite(norm_eps) && norm_eps > 0.0, "config.norm_eps must be a finite number > 0, got ", norm_eps);
    require(device_type == 0 || device_type == 1, "config.device_type must be 0 (CPU) or 1 (CUDA), got ",
            device_type);
    require(device_index >= 0, "config.device_index must be >= 0, got ", device_index);
}

Config Config::from_c(const dapo_model_config& c) {
    Config k;
    k.vocab_size = c.vocab_size;
    k.d_model = c.d_model;
    k.n_layers = c.n_layers;
    k.n_heads = c.n_heads;
    k.n_kv_heads = c.n_kv_heads;
    k.d_ff = c.d_ff;
    k.max_seq_len = c.max_seq_len;
    k.rope_theta = c.rope_theta;
    k.norm_eps = c.norm_eps;
    k.tie_embeddings = c.tie_embeddings != 0;
    k.attention_bias = c.attention_bias != 0;
    k.seed = c.seed;
    k.device_type = c.device_type;
    k.device_index = c.device_index;
    return k;
}

dapo_model_config Config::to_c() const {
    dapo_model_config c{};
    c.vocab_size = vocab_size;
    c.d_model = d_model;
    c.n_layers = n_layers;
    c.n_heads = n_heads;
    c.n_kv_heads = n_kv_heads;
    c.d_ff = d_ff;
    c.max_seq_len = max_seq_len;
    c.rope_theta = rope_theta;
    c.norm_eps = norm_eps;
    c.tie_embeddings = tie_embeddings ? 1 : 0;
    c.attention_bias = attention_bias ? 1 : 0;
    c.seed = seed;
    c.device_type = device_type;
    c.device_index = device_index;
    return c;
}

std::string Config::architecture_mismatch(const Config& o) const {
    auto diff = [](const char* name, auto saved, auto mine) {
        return concat(name, ": saved ", saved, ", this model ", mine);
    };
    if (vocab_size != o.vocab_size) return diff("vocab_size", o.vocab_size, vocab_size);
    if (d_model != o.d_model) return diff("d_model", o.d_model, d_model);
    if (n_layers != o.n_layers) return diff("n_layers", o.n_layers, n_layers);
    if (n_heads != o.n_heads) return diff("n_heads", o.n_heads, n_heads);
    if (n_kv_heads != o.n_kv_heads) return diff("n_kv_heads", o.n_kv_heads, n_kv_heads);
    if (d_ff != o.d_ff) return diff("d_ff", o.d_ff, d_ff);
    if (max_seq_len != o.max_seq_len) return diff("max_seq_len", o.max_seq_len, max_seq_len);
    if (rope_theta != o.rope_theta) return diff("rope_theta", o.rope_theta, rope_theta);
    if (norm_eps != o.norm_eps) return diff("norm_eps", o.norm_eps, norm_eps);
    if (tie_embeddings != o.tie_embeddings) return diff("tie_embeddings", o.tie_embeddings, tie_embeddings);
    if (attention_bias != o.attention_bias) return diff("attention_bias", o.attention_bias, attention_bias);
    return {};
}

namespace {
torch::Device device_of(const Config& c) {
    if (c.device_type != 1) return torch::Device(torch::kCPU);
    // Said here rather than by libtorch's first allocation ("Could not run 'aten::empty_strided' with arguments from
    // the 'CUDA' backend...").
    require(torch::cuda::is_available(), "config.device_type is 1 (CUDA), but this engine has no CUDA device: its ",
            "libtorch was built without CUDA (build the engine against a CUDA libtorch, see the README) or no GPU is visible");
    const auto count = static_cast<int64_t>(torch::cuda::device_count());
    require(c.device_index < count, "config.device_index is ", c.device_index, ", but there are ", count, " CUDA devices");
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(c.device_index));
}
}  // namespace

Model::Model(const Config& config) : config_(config), device_(device_of(config)) {
    config_.validate();
    const auto& c = config_;
    // Initialise on the CPU from one seeded generator, in the fixed parameter order, so that the same seed gives
    // the same weights on any device. Matrices ~ N(0, 0.02) as in Qwen2; norms 1; biases 0.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(c.seed);
    auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
    auto add = [&](const std::string& name, torch::Tensor t) {
        t = t.to(device_).set_requires_grad(true);
        params_.emplace_back(name, t);
        return t;
    };
    auto normal = [&](const std::string& name, std::vector<int64_t> shape) {
        auto t = torch::empty(shape, f32);
        t.normal_(0.0, 0.02, gen);
        return add(name, t);
    };
    auto ones = [&](const std::string& name, int64_t n) { return add(name, torch::ones({n}, f32)); };
    auto zeros = [&](const std::string& name, int64_t n) { return add(name, torch::zeros({n}, f32)); };

    const int64_t d = c.d_model, qkv = c.d_model + 2 * c.kv_dim();
    embed_ = normal("embed", {c.vocab_size, d});
    for (int64_t i = 0; i < c.n_layers; ++i) {
        const std::string p = "layers." + std::to_string(i) + ".";
        Layer l;
        l.attn_norm = ones(p + "attn_norm", d);
        l.w_qkv = normal(p + "w_qkv", {qkv, d});
        if (c.attention_bias) l.b_qkv = zeros(p + "b_qkv", qkv);
        l.w_o = normal(p + "w_o", {d, d});
        l.mlp_norm = ones(p + "mlp_norm", d);
        l.w_gate_up = normal(p + "w_gate_up", {2 * c.d_ff, d});
        l.w_down = normal(p + "w_down", {d, c.d_ff});
        layers_.push_back(l);
    }
    final_norm_ = ones("final_norm", d);
    lm_head_ = c.tie_embeddings ? embed_ : normal("lm_head", {c.vocab_size, d});

    // Rotary tables in double, then float: angle(pos, i) = pos / theta^(2i / head_dim).
    const int64_t half = c.head_dim() / 2;
    auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
    auto inv_freq = torch::pow(c.rope_theta, torch::arange(0, half, f64) * (-2.0 / c.head_dim()));
    auto angles = torch::outer(torch::arange(0, c.max_seq_len, f64), inv_freq);
    rope_cos_ = angles.cos().to(torch::kFloat32).to(device_);
    rope_sin_ = angles.sin().to(torch::kFloat32).to(device_);
}

torch::Tensor Model::rms_norm(const torch::Tensor& x, const torch::Tensor& weight) const {
    return fused_rms_norm(x, weight, config_.norm_eps);
}

torch::Tensor Model::attention(const Layer& layer, const torch::Tensor& x, const torch::Tensor& positions,
                               const torch::Tensor& mask_bias, KvCache* cache, size_t index) const {
    const auto& c = config_;
    const int64_t B = x.size(0), T = x.size(1), KV = c.n_kv_heads, G = c.n_heads / KV, hd = c.head_dim();
    auto qkv = torch::linear(x, layer.w_qkv, layer.b_qkv);  // (B, T, d + 2 kv_dim)
    // Query head h uses key/value head h / G. The G query heads of one kv head are interleaved along the row axis,
    // q: (B, KV, T*G, hd), so one matmul serves the group without repeating keys and values, and a tile of
    // positions is a block of rows. q comes scaled by 1/sqrt(hd) (cheaper than scaling the scores).
    auto qkv_heads = fused_rope_split(qkv, positions, rope_cos_, rope_sin_, c.n_heads, KV,
                                      1.0 / std::sqrt(static_cast<double>(hd)));
    auto q = qkv_heads[0], k = qkv_heads[1], v = qkv_heads[2];  // k, v: (B, KV, T, hd)
    if (cache != nullptr) {
        cache->k[index].narrow(2, cache->length, T).copy_(k);
        cache->v[index].narrow(2, cache->length, T).copy_(v);
        k = cache->k[index].narrow(2, 0, cache->length + T);
        v = cache->v[index].narrow(2, 0, cache->length + T);
    }
    auto out = fused_attention(q, k, v, mask_bias);  // (B, KV, T*G, hd)
    out = out.view({B, KV, T, G, hd}).permute({0, 2, 1, 3, 4}).reshape({B, T, c.d_model});
    return torch::linear(out, layer.w_o);
}

torch::Tensor Model::hidden(const torch::Tensor& ids, const torch::Tensor& positions, const torch::Tensor& blocked,
                            KvCache* cache) const {
    const int64_t B = ids.size(0), T = ids.size(1);
    auto x = embed_.index_select(0, ids.reshape({-1})).view({B, T, config_.d_model});
    // Added to the scores: 0 where a query sees a key, -inf where it does not (measured faster than masked_fill).
    auto mask_bias = torch::zeros(blocked.sizes(), x.options().requires_grad(false))
                         .masked_fill_(blocked, -std::numeric_limits<float>::infinity());
    for (size_t i = 0; i < layers_.size(); ++i) {
        const auto& l = layers_[i];
        x = x + attention(l, rms_norm(x, l.attn_norm), positions, mask_bias, cache, i);
        x = x + torch::linear(fused_swiglu(torch::linear(rms_norm(x, l.mlp_norm), l.w_gate_up)), l.w_down);
    }
    if (cache != nullptr) cache->length += T;
    return x;
}

torch::Tensor Model::logits(const torch::Tensor& hidden) const {
    return torch::linear(rms_norm(hidden, final_norm_), lm_head_);
}

}  // namespace dapo
