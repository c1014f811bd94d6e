// Weights and training state as bytes. Layout (little-endian):
//   "DAPOENG1"  u32 version = 1   u32 kind (1 weights, 2 training state)
//   config: i64 vocab_size, d_model, n_layers, n_heads, n_kv_heads, d_ff, max_seq_len; f64 rope_theta, norm_eps;
//           i32 tie_embeddings, attention_bias; u64 seed
//   u32 parameter count; per parameter: u32 name length, name, u32 ndim, i64 dims[ndim], f32 data[numel]
//   kind 2 adds: f64 beta1, beta2, eps, weight_decay, max_grad_norm; i64 step; per parameter f32 m[numel], v[numel]
// Loading parses and checks everything before it changes anything, so a rejected load leaves the model as it was.
#include <cstring>

#include "engine.h"

namespace dapo {
namespace {

constexpr char kMagic[8] = {'D', 'A', 'P', 'O', 'E', 'N', 'G', '1'};
constexpr uint32_t kVersion = 1, kWeights = 1, kState = 2;

// Writes into `out`, or with `counting` only adds up the size: a real model's state is gigabytes, and a string
// grown by appends would hold up to twice that while it reallocates (the old and the doubled buffer at once), so
// every writer runs twice, counting first, then into a buffer reserved at the exact size (see `serialize`).
struct Writer {
    bool counting = false;
    size_t size = 0;
    std::string out;
    template <typename T>
    void put(T v) {
        bytes(&v, sizeof(T));
    }
    void bytes(const void* p, size_t n) {
        size += n;
        if (!counting) out.append(static_cast<const char*>(p), n);
    }
    void tensor_data(const torch::Tensor& t) {
        if (counting) {
            size += static_cast<size_t>(t.numel()) * sizeof(float);
            return;
        }
        auto cpu = t.detach().to(torch::kCPU).contiguous();
        bytes(cpu.data_ptr<float>(), cpu.numel() * sizeof(float));
    }
};

template <typename Write>
std::string serialize(Write write) {
    Writer count;
    count.counting = true;
    write(count);
    Writer w;
    w.out.reserve(count.size);
    write(w);
    return std::move(w.out);
}

struct Reader {
    const uint8_t* data;
    int64_t size, pos = 0;
    const char* what;
    void need(int64_t n) {
        require(n >= 0 && pos + n <= size, what, " is truncated: needs at least ", pos + n, " bytes, has ", size);
    }
    template <typename T>
    T get() {
        need(sizeof(T));
        T v;
        std::memcpy(&v, data + pos, sizeof(T));
        pos += sizeof(T);
        return v;
    }
    torch::Tensor floats(const std::vector<int64_t>& shape) {
        int64_t numel = 1;
        for (auto d : shape) numel *= d;
        need(numel * static_cast<int64_t>(sizeof(float)));
        auto t = torch::empty(shape, torch::kFloat32);
        std::memcpy(t.data_ptr<float>(), data + pos, numel * sizeof(float));
        pos += numel * sizeof(float);
        return t;
    }
};

void write_header(Writer& w, const Config& c, uint32_t kind) {
    w.bytes(kMagic, sizeof(kMagic));
    w.put(kVersion);
    w.put(kind);
    for (int64_t v : {c.vocab_size, c.d_model, c.n_layers, c.n_heads, c.n_kv_heads, c.d_ff, c.max_seq_len}) w.put(v);
    w.put(c.rope_theta);
    w.put(c.norm_eps);
    w.put<int32_t>(c.tie_embeddings);
    w.put<int32_t>(c.attention_bias);
    w.put(c.seed);
}

Config read_header(Reader& r, uint32_t& kind) {
    r.need(sizeof(kMagic));
    require(std::memcmp(r.data, kMagic, sizeof(kMagic)) == 0, r.what, " does not start with the DAPOENG1 marker");
    r.pos += sizeof(kMagic);
    const auto version = r.get<uint32_t>();
    require(version == kVersion, r.what, " has format version ", version, "; this engine reads version ", kVersion);
    kind = r.get<uint32_t>();
    require(kind == kWeights || kind == kState, r.what, " has unknown kind ", kind);
    Config c;
    c.vocab_size = r.get<int64_t>();
    c.d_model = r.get<int64_t>();
    c.n_layers = r.get<int64_t>();
    c.n_heads = r.get<int64_t>();
    c.n_kv_heads = r.get<int64_t>();
    c.d_ff = r.get<int64_t>();
    c.max_seq_len = r.get<int64_t>();
    c.rope_theta = r.get<double>();
    c.norm_eps = r.get<double>();
    c.tie_embeddings = r.get<int32_t>() != 0;
    c.attention_bias = r.get<int32_t>() != 0;
    c.seed = r.get<uint64_t>();
    return c;
}

void write_parameters(Writer& w, Model& model) {
    const auto& params = model.named_parameters();
    w.put<uint32_t>(static_cast<uint32_t>(params.size()));
    for (const auto& [name, p] : params) {
        w.put<uint32_t>(static_cast<uint32_t>(name.size()));
        w.bytes(name.data(), name.size());
        w.put<uint32_t>(static_cast<uint32_t>(p.dim()));
        for (auto d : p.sizes()) w.put<int64_t>(d);
        w.tensor_data(p);
    }
}

// Reads the configuration and parameters, checking them against the model; returns CPU tensors.
std::vector<torch::Tensor> read_parameters(Reader& r, Model& model, uint32_t expected_kind) {
    uint32_t kind = 0;
    auto saved = read_header(r, kind);
    require(kind == expected_kind, r.what, " holds ", kind == kWeights ? "weights" : "a training state",
            ", not ", expected_kind == kWeights ? "weights" : "a training state");
    auto mismatch = model.config().architecture_mismatch(saved);
    require(mismatch.empty(), r.what, " was saved for another architecture: ", mismatch);
    const auto& params = model.named_parameters();
    const auto count = r.get<uint32_t>();
    require(count == params.size(), r.what, " has ", count, " parameters, this model ", params.size());
    std::vector<torch::Tensor> values;
    for (const auto& [name, p] : params) {
        const auto name_len = r.get<uint32_t>();
        r.need(name_len);
        std::string saved_name(reinterpret_cast<const char*>(r.data + r.pos), name_len);
        r.pos += name_len;
        require(saved_name == name, r.what, ": expected parameter ", name, ", found ", saved_name);
        const auto ndim = r.get<uint32_t>();
        std::vector<int64_t> shape(ndim);
        for (auto& d : shape) d = r.get<int64_t>();
        require(torch::IntArrayRef(shape) == p.sizes(), r.what, ": parameter ", name, " has shape ",
                torch::IntArrayRef(shape), ", this model ", p.sizes());
        values.push_back(r.floats(shape));
    }
    return values;
}

void assign(Model& model, const std::vector<torch::Tensor>& values) {
    torch::NoGradGuard no_grad;
    const auto& params = model.named_parameters();
    for (size_t i = 0; i < params.size(); ++i) params[i].second.copy_(values[i]);
}

}  // namespace

std::string export_weights(Model& model) {
    return serialize([&](Writer& w) {
        write_header(w, model.config(), kWeights);
        write_parameters(w, model);
    });
}

void import_weights(Model& model, const uint8_t* data, int64_t size) {
    Reader r{data, size, 0, "weights"};
    auto values = read_parameters(r, model, kWeights);
    require(r.pos == size, "weights have ", size - r.pos, " unexpected trailing bytes");
    assign(model, values);
}

std::string save_state(Model& model, AdamW& optim) {
    return serialize([&](Writer& w) {
        write_header(w, model.config(), kState);
        write_parameters(w, model);
        const auto& o = optim.options();
        for (double v : {o.beta1, o.beta2, o.eps, o.weight_decay, o.max_grad_norm}) w.put(v);
        w.put<int64_t>(optim.step_count());
        for (size_t i = 0; i < optim.exp_avg().size(); ++i) {
            w.tensor_data(optim.exp_avg()[i]);
            w.tensor_data(optim.exp_avg_sq()[i]);
        }
    });
}

void load_state(Model& model, AdamW& optim, const uint8_t* data, int64_t size) {
    require(&optim.model() == &model, "the optimizer was created for another model");
    Reader r{data, size, 0, "training state"};
    auto values = read_parameters(r, model, kState);
    AdamWOptions o;
    o.beta1 = r.get<double>();
    o.beta2 = r.get<double>();
    o.eps = r.get<double>();
    o.weight_decay = r.get<double>();
    o.max_grad_norm = r.get<double>();
    o.validate();
    const auto step = r.get<int64_t>();
    require(step >= 0, "training state has a negative step count ", step);
    std::vector<torch::Tensor> m, v;
    for (const auto& [name, p] : model.named_parameters()) {
        m.push_back(r.floats(p.sizes().vec()).to(model.device()));
        v.push_back(r.floats(p.sizes().vec()).to(model.device()));
    }
    require(r.pos == size, "training state has ", size - r.pos, " unexpected trailing bytes");
    assign(model, values);
    optim.set_state(o, step, std::move(m), std::move(v));
}

Config read_config(const uint8_t* data, int64_t size) {
    Reader r{data, size, 0, "engine data"};
    uint32_t kind = 0;
    return read_header(r, kind);
}

}  // namespace dapo
