// The C ABI. Every export body runs inside guarded(): no exception crosses the boundary; a failure leaves its
// message in a thread-local slot that dapo_take_error() hands over.
#include <dlfcn.h>
#include <malloc.h>
#include <sched.h>
#include <time.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "engine.h"

struct dapo_model {
    std::shared_ptr<dapo::Model> model;
};
struct dapo_samples {
    dapo::Samples samples;
    int64_t total_tokens = 0;
};
// A score keeps its model alive: its graph refers to the model's parameters.
struct dapo_score {
    std::shared_ptr<dapo::Model> model;
    dapo::Score score;
};
struct dapo_optim {
    std::shared_ptr<dapo::Model> model;
    std::unique_ptr<dapo::AdamW> adamw;
};
struct dapo_buffer {
    std::string bytes;
};

namespace {

thread_local std::string last_error;
thread_local bool has_error = false;

void set_error(std::string message) {
    last_error = std::move(message);
    has_error = true;
}

template <typename R, typename F>
R guarded(R failure, F&& body) {
    try {
        return body();
    } catch (const c10::Error& e) {
        set_error(e.what_without_backtrace());
    } catch (const std::exception& e) {
        set_error(e.what());
    } catch (...) {
        set_error("unknown native error");
    }
    return failure;
}

template <typename T>
T* track(T* handle) {
    ++dapo::live_objects;
    return handle;
}

template <typename T>
void release(T* handle) {
    if (handle == nullptr) return;
    delete handle;
    --dapo::live_objects;
}

template <typename T>
T& checked(T* handle, const char* what) {
    dapo::require(handle != nullptr, what, " handle is null");
    return *handle;
}

void require_buffer(const void* p, int64_t count, int64_t expected, const char* what) {
    dapo::require(count == expected, what, " has ", count, " elements, expected ", expected);
    dapo::require(p != nullptr || count == 0, what, " is null");
}

dapo::Model& model_of(dapo_model* m) { return *checked(m, "model").model; }

// Process defaults, set when the library loads:
//  - intra-op threads: libtorch starts with one on some installs; use the CPUs this process may run on, or
//    DAPO_THREADS when it is set;
//  - large allocations from the heap rather than fresh mmap()s: glibc maps every block over 32 MiB anew and the
//    kernel zeroes its pages on first touch, which cost about a quarter of a training step here (attention
//    scores are such blocks). DAPO_MALLOC_TUNING=0 keeps glibc's defaults.
struct ProcessDefaults {
    ProcessDefaults() {
        const char* tuning = std::getenv("DAPO_MALLOC_TUNING");
        if (tuning == nullptr || std::string(tuning) != "0") {
            mallopt(M_MMAP_MAX, 0);
            mallopt(M_TRIM_THRESHOLD, 1 << 30);
        }
        try {
            int n = 0;
            if (const char* env = std::getenv("DAPO_THREADS")) n = std::atoi(env);
            if (n <= 0) {
                cpu_set_t set;
                n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
            }
            torch::set_num_threads(std::max(1, n));
        } catch (...) {
            // An exception must not escape a library's load; dapo_set_num_threads reports any real problem.
        }
    }
} process_defaults;

}  // namespace

extern "C" {

char* dapo_take_error(void) {
    if (!has_error) return nullptr;
    char* out = static_cast<char*>(std::malloc(last_error.size() + 1));
    if (out != nullptr) std::memcpy(out, last_error.c_str(), last_error.size() + 1);
    last_error.clear();
    has_error = false;
    return out;
}

void dapo_string_free(char* message) { std::free(message); }

int32_t dapo_set_num_threads(int32_t n) {
    return guarded<int32_t>(-1, [&] {
        dapo::require(n >= 1, "thread count must be at least 1, got ", n);
        torch::set_num_threads(n);
        return 0;
    });
}

int32_t dapo_get_num_threads(void) {
    return guarded<int32_t>(-1, [] { return static_cast<int32_t>(torch::get_num_threads()); });
}

int64_t dapo_live_objects(void) { return dapo::live_objects.load(); }

int32_t dapo_cuda_available(void) {
    return guarded<int32_t>(-1, [] { return torch::cuda::is_available() ? 1 : 0; });
}

double dapo_matmul_gflops(int64_t n, int32_t repeats, int32_t device_type) {
    return guarded<double>(-1.0, [&] {
        dapo::require(n >= 1 && repeats >= 1, "matmul benchmark needs n >= 1 and repeats >= 1");
        dapo::require(device_type == 0 || device_type == 1, "device_type must be 0 (CPU) or 1 (CUDA), got ", device_type);
        const bool cuda = device_type == 1;
        dapo::require(!cuda || torch::cuda::is_available(), "no CUDA device (the engine was built without CUDA or no GPU is present)");
        torch::NoGradGuard no_grad;
        auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(cuda ? torch::kCUDA : torch::kCPU);
        auto a = torch::rand({n, n}, opts), b = torch::rand({n, n}, opts), c = torch::empty({n, n}, opts);
        // A GPU runs the product asynchronously: wait for it, or the time is only the launch's.
        auto wait = [cuda] { if (cuda) torch::cuda::synchronize(); };
        torch::mm_out(c, a, b);  // warm-up
        wait();
        double best = 0.0;
        for (int32_t i = 0; i < repeats; ++i) {
            auto start = std::chrono::steady_clock::now();
            torch::mm_out(c, a, b);
            wait();
            std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
            best = std::max(best, 2.0 * n * n * n / took.count() / 1e9);
        }
        return best;
    });
}

int32_t dapo_heap_stats(int64_t* in_use, int64_t* held) {
    return guarded<int32_t>(-1, [&] {
        // mallinfo2 sums every arena; hblkhd counts blocks served by mmap (none while M_MMAP_MAX is 0).
        struct mallinfo2 info = mallinfo2();
        checked(in_use, "in_use") = static_cast<int64_t>(info.uordblks + info.hblkhd);
        checked(held, "held") = static_cast<int64_t>(info.arena + info.hblkhd);
        return 0;
    });
}

int32_t dapo_blas_info(char* core, int64_t core_capacity, char* config, int64_t config_capacity) {
    return guarded<int32_t>(-1, [&] {
        auto copy = [](const char* text, char* out, int64_t capacity) {
            if (out == nullptr || capacity <= 0) return;
            std::strncpy(out, text, static_cast<size_t>(capacity - 1));
            out[capacity - 1] = '\0';
        };
        copy("", core, core_capacity);
        copy("", config, config_capacity);
        // libtorch loaded the BLAS with the engine; find it among the loaded libraries without loading anything.
        for (const char* name : {"libopenblas.so.0", "libblas.so.3"}) {
            void* library = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
            if (library == nullptr) continue;
            using text_fn = char* (*)();
            auto corename = reinterpret_cast<text_fn>(dlsym(library, "openblas_get_corename"));
            auto build = reinterpret_cast<text_fn>(dlsym(library, "openblas_get_config"));
            if (corename != nullptr) {
                copy(corename(), core, core_capacity);
                if (build != nullptr) copy(build(), config, config_capacity);
            }
            dlclose(library);  // drops the reference dlopen took; the library stays loaded
            if (corename != nullptr) return 1;
        }
        return 0;
    });
}

double dapo_measure_clock_ghz(int32_t n_threads) {
    return guarded<double>(-1.0, [&] {
        dapo::require(n_threads >= 1, "clock measurement needs at least 1 thread, got ", n_threads);
#if defined(__x86_64__)
        // Each addition depends on the one before, so a core retires exactly one per cycle whatever its width:
        // additions per second are cycles per second. The loop's own instructions run beside the chain. The addend
        // is a register, not an immediate: Intel's cores since Golden Cove fold chains of small immediate additions
        // in the renamer, several a cycle (an Emerald Rapids Xeon measured 15-21 "GHz" that way).
        auto rate = [] {
            auto chain = [](int64_t rounds) {
                uint64_t x = 0;
                const uint64_t one = 1;
                for (int64_t i = 0; i < rounds; ++i) asm volatile(".rept 100\n\taddq %1, %0\n\t.endr" : "+r"(x) : "r"(one));
                return x;
            };
            // The thread's own CPU time, not the wall clock: time the scheduler gives to other processes on the
            // same core does not count.
            auto cpu_seconds = [] {
                timespec t{};
                clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
                return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
            };
            chain(200000);  // let the core reach its clock under load
            const int64_t rounds = 2000000;
            double start = cpu_seconds();
            chain(rounds);
            return 100.0 * rounds / (cpu_seconds() - start) / 1e9;
        };
        std::vector<double> rates(static_cast<size_t>(n_threads));
        std::vector<std::thread> threads;
        for (int32_t t = 0; t < n_threads; ++t) threads.emplace_back([&rates, &rate, t] { rates[t] = rate(); });
        for (auto& thread : threads) thread.join();
        double sum = 0.0;
        for (double r : rates) sum += r;
        return sum / n_threads;
#else
        return 0.0;
#endif
    });
}

dapo_model* dapo_model_create(const dapo_model_config* config) {
    return guarded<dapo_model*>(nullptr, [&] {
        auto cfg = dapo::Config::from_c(checked(config, "config"));
        return track(new dapo_model{std::make_shared<dapo::Model>(cfg)});
    });
}

void dapo_model_free(dapo_model* model) { release(model); }

int32_t dapo_model_get_config(dapo_model* model, dapo_model_config* out) {
    return guarded<int32_t>(-1, [&] {
        checked(out, "config output") = model_of(model).config().to_c();
        return 0;
    });
}

int64_t dapo_model_param_count(dapo_model* model) {
    return guarded<int64_t>(-1, [&] { return static_cast<int64_t>(model_of(model).named_parameters().size()); });
}

namespace {
const torch::Tensor& param_at(dapo::Model& m, int64_t index) {
    const auto& params = m.named_parameters();
    dapo::require(index >= 0 && index < static_cast<int64_t>(params.size()), "parameter index ", index,
                  " is outside [0, ", params.size(), ")");
    return params[index].second;
}
}  // namespace

int32_t dapo_model_param_info(dapo_model* model, int64_t index, char* name, int64_t name_capacity, int64_t* shape,
                              int32_t shape_capacity, int32_t* ndim) {
    return guarded<int32_t>(-1, [&] {
        auto& m = model_of(model);
        std::lock_guard<std::mutex> lock(m.lock());
        const auto& p = param_at(m, index);
        const auto& n = m.named_parameters()[index].first;
        dapo::require(name != nullptr && name_capacity >= 1, "name buffer is null or empty");
        const auto len = std::min<int64_t>(static_cast<int64_t>(n.size()), name_capacity - 1);
        std::memcpy(name, n.data(), len);
        name[len] = '\0';
        dapo::require(shape != nullptr && shape_capacity >= p.dim(), "shape buffer holds ", shape_capacity,
                      " dims, the parameter has ", p.dim());
        for (int64_t d = 0; d < p.dim(); ++d) shape[d] = p.size(d);
        checked(ndim, "ndim output") = static_cast<int32_t>(p.dim());
        return 0;
    });
}

int32_t dapo_model_param_read(dapo_model* model, int64_t index, float* out, int64_t count) {
    return guarded<int32_t>(-1, [&] {
        auto& m = model_of(model);
        std::lock_guard<std::mutex> lock(m.lock());
        auto p = param_at(m, index).detach().to(torch::kCPU).contiguous();
        require_buffer(out, count, p.numel(), "parameter output buffer");
        std::memcpy(out, p.data_ptr<float>(), count * sizeof(float));
        return 0;
    });
}

int32_t dapo_model_logits(dapo_model* model, const int32_t* tokens, int64_t n_tokens, float* out, int64_t count) {
    return guarded<int32_t>(-1, [&] {
        auto& m = model_of(model);
        std::lock_guard<std::mutex> lock(m.lock());
        const auto& c = m.config();
        dapo::require(n_tokens > 0 && n_tokens <= c.max_seq_len, "the sequence has ", n_tokens, " tokens; the model takes 1 to ",
                      c.max_seq_len);
        require_buffer(tokens, n_tokens, n_tokens, "tokens");
        require_buffer(out, count, n_tokens * c.vocab_size, "logits output");
        std::vector<int64_t> ids(tokens, tokens + n_tokens);
        for (int64_t t = 0; t < n_tokens; ++t)
            dapo::require(ids[t] >= 0 && ids[t] < c.vocab_size, "token ", t, ": id ", ids[t], " is outside the vocabulary [0, ",
                          c.vocab_size, ")");
        c10::InferenceMode inference;
        const auto dev = m.device();
        const int64_t T = n_tokens;
        auto ids_t = dapo::int64_tensor(ids, {1, T}, dev);
        auto pos_t = torch::arange(0, T, torch::TensorOptions().dtype(torch::kInt64).device(dev)).view({1, T});
        auto blocked = torch::ones({T, T}, torch::TensorOptions().dtype(torch::kBool).device(dev)).triu(1);
        auto h = m.hidden(ids_t, pos_t, blocked.view({1, 1, 1, T, T}), nullptr);
        auto logits = m.logits(h.view({T, c.d_model})).to(torch::kCPU).contiguous();
        std::memcpy(out, logits.data_ptr<float>(), sizeof(float) * static_cast<size_t>(T * c.vocab_size));
        return 0;
    });
}

int32_t dapo_model_param_write(dapo_model* model, int64_t index, const float* values, int64_t count) {
    return guarded<int32_t>(-1, [&] {
        auto& m = model_of(model);
        std::lock_guard<std::mutex> lock(m.lock());
        auto p = param_at(m, index);
        require_buffer(values, count, p.numel(), "parameter values");
        torch::NoGradGuard no_grad;
        auto src = torch::from_blob(const_cast<float*>(values), p.sizes(), torch::kFloat32);
        p.copy_(src);
        return 0;
    });
}

int32_t dapo_model_grad_read(dapo_model* model, int64_t index, float* out, int64_t count) {
    return guarded<int32_t>(-1, [&] {
        auto& m = model_of(model);
        std::lock_guard<std::mutex> lock(m.lock());
        const auto& p = param_at(m, index);
        require_buffer(out, count, p.numel(), "gradient output buffer");
        if (!p.grad().defined()) {
            std::fill(out, out + count, 0.0f);
        } else {
            auto g = p.grad().to(torch::kCPU).contiguous();
            std::memcpy(out, g.data_ptr<float>(), count * sizeof(float));
        }
        return 0;
    });
}

int32_t dapo_model_zero_grad(dapo_model* model) {
    return guarded<int32_t>(-1, [&] {
        auto& m = model_of(model);
        std::lock_guard<std::mutex> lock(m.lock());
        for (const auto& [name, p] : m.named_parameters())
            if (p.grad().defined()) p.mutable_grad().zero_();
        return 0;
    });
}

dapo_buffer* dapo_model_export_weights(dapo_model* model) {
    return guarded<dapo_buffer*>(nullptr, [&] {
        auto& m = model_of(model);
        std::lock_guard<std::mutex> lock(m.lock());
        return track(new dapo_buffer{dapo::export_weights(m)});
    });
}

int32_t dapo_model_import_weights(dapo_model* model, const uint8_t* data, int64_t size) {
    return guarded<int32_t>(-1, [&] {
        auto& m = model_of(model);
        dapo::require(data != nullptr && size > 0, "weights are empty");
        std::lock_guard<std::mutex> lock(m.lock());
        dapo::import_weights(m, data, size);
        return 0;
    });
}

int32_t dapo_read_config(const uint8_t* data, int64_t size, dapo_model_config* out) {
    return guarded<int32_t>(-1, [&] {
        dapo::require(data != nullptr && size > 0, "engine data is empty");
        checked(out, "config output") = dapo::read_config(data, size).to_c();
        return 0;
    });
}

dapo_samples* dapo_model_sample(dapo_model* model, const int32_t* prompt_tokens, int64_t n_tokens,
                                const int64_t* prompt_lengths, int64_t n_prompts, const dapo_sample_options* options) {
    return guarded<dapo_samples*>(nullptr, [&]() -> dapo_samples* {
        auto& m = model_of(model);
        const auto& o = checked(options, "sample options");
        dapo::require(n_prompts >= 1, "prompts: the batch is empty");
        require_buffer(prompt_lengths, n_prompts, n_prompts, "prompt lengths");
        require_buffer(prompt_tokens, n_tokens, n_tokens, "prompt tokens");
        dapo::SampleRequest r;
        int64_t offset = 0;
        for (int64_t i = 0; i < n_prompts; ++i) {
            dapo::require(prompt_lengths[i] >= 0 && offset + prompt_lengths[i] <= n_tokens, "prompt lengths sum past ",
                          n_tokens, " tokens at prompt ", i);
            r.prompts.emplace_back(prompt_tokens + offset, prompt_tokens + offset + prompt_lengths[i]);
            offset += prompt_lengths[i];
        }
        dapo::require(offset == n_tokens, "prompt lengths sum to ", offset, ", but ", n_tokens, " tokens were given");
        r.samples_per_prompt = o.samples_per_prompt;
        r.max_new_tokens = o.max_new_tokens;
        r.temperature = o.temperature;
        r.top_p = o.top_p;
        dapo::require(o.n_stop_tokens >= 0 && (o.stop_tokens != nullptr || o.n_stop_tokens == 0),
                      "stop tokens are null");
        r.stop_tokens.assign(o.stop_tokens, o.stop_tokens + o.n_stop_tokens);
        r.seed = o.seed;
        if (o.prompt_seeds != nullptr) r.prompt_seeds.assign(o.prompt_seeds, o.prompt_seeds + n_prompts);
        r.use_kv_cache = o.use_kv_cache != 0;
        std::lock_guard<std::mutex> lock(m.lock());
        auto out = std::make_unique<dapo_samples>();
        out->samples = dapo::sample(m, r);
        for (const auto& t : out->samples.tokens) out->total_tokens += static_cast<int64_t>(t.size());
        return track(out.release());
    });
}

int64_t dapo_samples_count(dapo_samples* samples) {
    return guarded<int64_t>(-1, [&] { return static_cast<int64_t>(checked(samples, "samples").samples.tokens.size()); });
}

int64_t dapo_samples_total_tokens(dapo_samples* samples) {
    return guarded<int64_t>(-1, [&] { return checked(samples, "samples").total_tokens; });
}

int32_t dapo_samples_copy(dapo_samples* samples, int32_t* tokens, float* logprobs, int64_t n_tokens, int64_t* lengths,
                          uint8_t* truncated, int64_t n_samples) {
    return guarded<int32_t>(-1, [&] {
        auto& s = checked(samples, "samples");
        const auto count = static_cast<int64_t>(s.samples.tokens.size());
        require_buffer(tokens, n_tokens, s.total_tokens, "token output buffer");
        require_buffer(logprobs, n_tokens, s.total_tokens, "log-probability output buffer");
        require_buffer(lengths, n_samples, count, "length output buffer");
        require_buffer(truncated, n_samples, count, "truncated output buffer");
        int64_t offset = 0;
        for (int64_t i = 0; i < count; ++i) {
            const auto& t = s.samples.tokens[i];
            std::copy(t.begin(), t.end(), tokens + offset);
            std::copy(s.samples.logprobs[i].begin(), s.samples.logprobs[i].end(), logprobs + offset);
            lengths[i] = static_cast<int64_t>(t.size());
            truncated[i] = s.samples.truncated[i];
            offset += static_cast<int64_t>(t.size());
        }
        return 0;
    });
}

void dapo_samples_free(dapo_samples* samples) { release(samples); }

dapo_score* dapo_model_score(dapo_model* model, const int32_t* tokens, const uint8_t* response_mask, int64_t n_tokens,
                             const int64_t* seq_lengths, int64_t n_seqs, double temperature, int32_t requires_grad) {
    return guarded<dapo_score*>(nullptr, [&]() -> dapo_score* {
        auto& holder = checked(model, "model");
        dapo::require(n_seqs >= 1, "sequences: the batch is empty");
        require_buffer(seq_lengths, n_seqs, n_seqs, "sequence lengths");
        require_buffer(tokens, n_tokens, n_tokens, "tokens");
        require_buffer(response_mask, n_tokens, n_tokens, "response mask");
        std::vector<std::vector<int64_t>> seqs;
        std::vector<std::vector<uint8_t>> masks;
        int64_t offset = 0;
        for (int64_t i = 0; i < n_seqs; ++i) {
            dapo::require(seq_lengths[i] >= 0 && offset + seq_lengths[i] <= n_tokens, "sequence lengths sum past ",
                          n_tokens, " tokens at sequence ", i);
            seqs.emplace_back(tokens + offset, tokens + offset + seq_lengths[i]);
            masks.emplace_back(response_mask + offset, response_mask + offset + seq_lengths[i]);
            offset += seq_lengths[i];
        }
        dapo::require(offset == n_tokens, "sequence lengths sum to ", offset, ", but ", n_tokens,
                      " tokens were given");
        std::lock_guard<std::mutex> lock(holder.model->lock());
        auto out = std::make_unique<dapo_score>();
        out->model = holder.model;
        out->score = dapo::score(*holder.model, seqs, masks, temperature, requires_grad != 0);
        return track(out.release());
    });
}

int64_t dapo_score_count(dapo_score* score) {
    return guarded<int64_t>(-1, [&] { return checked(score, "score").score.logprobs.numel(); });
}

int32_t dapo_score_copy(dapo_score* score, float* logprobs, float* entropies, int64_t count) {
    return guarded<int32_t>(-1, [&] {
        auto& s = checked(score, "score").score;
        require_buffer(logprobs, count, s.logprobs.numel(), "log-probability output buffer");
        require_buffer(entropies, count, s.entropies.numel(), "entropy output buffer");
        auto lp = s.logprobs.detach().to(torch::kCPU).contiguous();
        auto en = s.entropies.to(torch::kCPU).contiguous();
        std::memcpy(logprobs, lp.data_ptr<float>(), count * sizeof(float));
        std::memcpy(entropies, en.data_ptr<float>(), count * sizeof(float));
        return 0;
    });
}

int32_t dapo_score_backward(dapo_score* score, const float* coefficients, int64_t count) {
    return guarded<int32_t>(-1, [&] {
        auto& s = checked(score, "score");
        dapo::require(!s.score.backward_done, "backward was already called on this score");
        dapo::require(s.score.logprobs.requires_grad(), "backward needs a score computed with requires_grad");
        require_buffer(coefficients, count, s.score.logprobs.numel(), "coefficients");
        std::lock_guard<std::mutex> lock(s.model->lock());
        auto c = torch::from_blob(const_cast<float*>(coefficients), {count}, torch::kFloat32)
                     .to(s.score.logprobs.device());
        (s.score.logprobs * c).sum().backward();
        s.score.backward_done = true;
        s.score.logprobs = s.score.logprobs.detach();  // the graph is spent; keep only the values
        return 0;
    });
}

void dapo_score_free(dapo_score* score) { release(score); }

dapo_optim* dapo_optim_adamw_create(dapo_model* model, const dapo_adamw_options* options) {
    return guarded<dapo_optim*>(nullptr, [&] {
        auto& holder = checked(model, "model");
        const auto& o = checked(options, "adamw options");
        dapo::AdamWOptions opts{o.beta1, o.beta2, o.eps, o.weight_decay, o.max_grad_norm};
        std::lock_guard<std::mutex> lock(holder.model->lock());
        return track(new dapo_optim{holder.model, std::make_unique<dapo::AdamW>(holder.model, opts)});
    });
}

int32_t dapo_optim_step(dapo_optim* optim, double lr, double* grad_norm, int32_t* applied) {
    return guarded<int32_t>(-1, [&] {
        auto& o = checked(optim, "optimizer");
        std::lock_guard<std::mutex> lock(o.model->lock());
        bool done = false;
        checked(grad_norm, "grad_norm output") = o.adamw->step(lr, done);
        checked(applied, "applied output") = done ? 1 : 0;
        return 0;
    });
}

int64_t dapo_optim_step_count(dapo_optim* optim) {
    return guarded<int64_t>(-1, [&] { return checked(optim, "optimizer").adamw->step_count(); });
}

void dapo_optim_free(dapo_optim* optim) { release(optim); }

dapo_buffer* dapo_state_save(dapo_model* model, dapo_optim* optim) {
    return guarded<dapo_buffer*>(nullptr, [&] {
        auto& m = model_of(model);
        auto& o = checked(optim, "optimizer");
        dapo::require(o.model.get() == &m, "the optimizer was created for another model");
        std::lock_guard<std::mutex> lock(m.lock());
        return track(new dapo_buffer{dapo::save_state(m, *o.adamw)});
    });
}

int32_t dapo_state_load(dapo_model* model, dapo_optim* optim, const uint8_t* data, int64_t size) {
    return guarded<int32_t>(-1, [&] {
        auto& m = model_of(model);
        auto& o = checked(optim, "optimizer");
        dapo::require(data != nullptr && size > 0, "training state is empty");
        std::lock_guard<std::mutex> lock(m.lock());
        dapo::load_state(m, *o.adamw, data, size);
        return 0;
    });
}

int64_t dapo_buffer_size(dapo_buffer* buffer) {
    return guarded<int64_t>(-1, [&] { return static_cast<int64_t>(checked(buffer, "buffer").bytes.size()); });
}

const uint8_t* dapo_buffer_data(dapo_buffer* buffer) {
    return guarded<const uint8_t*>(nullptr, [&] {
        return reinterpret_cast<const uint8_t*>(checked(buffer, "buffer").bytes.data());
    });
}

void dapo_buffer_free(dapo_buffer* buffer) { release(buffer); }

}  // extern "C"
