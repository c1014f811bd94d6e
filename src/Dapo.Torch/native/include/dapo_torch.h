/*
 * dapo_torch: the policy engine's flat C ABI.
 *
 * Conventions (every export follows them):
 *  - One prefix per area: dapo_model_*, dapo_samples_*, dapo_score_*, dapo_optim_*, dapo_state_*, dapo_buffer_*.
 *  - Handles are opaque; each handle type has its own _free, which accepts NULL.
 *  - No C++ exception crosses this boundary. A function that returns a pointer returns NULL on failure; one that
 *    returns int32_t returns 0 on success and -1 on failure; one that returns int64_t returns -1 on failure.
 *    The failure's message is kept per thread: dapo_take_error() hands it over (and clears it); the caller frees
 *    it with dapo_string_free().
 *  - A model is not safe for concurrent use: calls on one model are serialised by a lock.
 */
#ifndef DAPO_TORCH_H
#define DAPO_TORCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DAPO_API __attribute__((visibility("default")))

typedef struct dapo_model dapo_model;
typedef struct dapo_samples dapo_samples;
typedef struct dapo_score dapo_score;
typedef struct dapo_optim dapo_optim;
typedef struct dapo_buffer dapo_buffer;

/* A Qwen2-style decoder. n_kv_heads divides n_heads; d_model is n_heads * head_dim with an even head_dim. */
typedef struct dapo_model_config {
    int64_t vocab_size;
    int64_t d_model;
    int64_t n_layers;
    int64_t n_heads;
    int64_t n_kv_heads;
    int64_t d_ff;
    int64_t max_seq_len;
    double rope_theta;
    double norm_eps;
    int32_t tie_embeddings; /* 1: the LM head reuses the token embedding */
    int32_t attention_bias; /* 1: q/k/v projections carry a bias, as in Qwen2 */
    uint64_t seed;          /* initialisation seed */
    int32_t device_type;    /* 0: CPU, 1: CUDA (needs a CUDA libtorch) */
    int32_t device_index;
} dapo_model_config;

typedef struct dapo_sample_options {
    int64_t samples_per_prompt;
    int64_t max_new_tokens;
    double temperature; /* 0: greedy, log-probabilities then at temperature 1 */
    double top_p;       /* in (0, 1]; log-probabilities are always under the full temperature-scaled distribution */
    const int32_t* stop_tokens;
    int64_t n_stop_tokens;
    uint64_t seed;
    int32_t use_kv_cache; /* 0: recompute the whole sequence for every new token (reference and benchmark) */
    /* Optional, one per prompt: sample j of prompt p draws from (prompt_seeds[p], j) instead of (seed, k), so a
     * prompt's samples do not depend on which other prompts share the batch. NULL: use seed. */
    const uint64_t* prompt_seeds;
} dapo_sample_options;

typedef struct dapo_adamw_options {
    double beta1;
    double beta2;
    double eps;
    double weight_decay;
    double max_grad_norm; /* <= 0: no clipping */
} dapo_adamw_options;

/* Errors, threads, diagnostics */
DAPO_API char* dapo_take_error(void);
DAPO_API void dapo_string_free(char* message);
DAPO_API int32_t dapo_set_num_threads(int32_t n);
DAPO_API int32_t dapo_get_num_threads(void);
DAPO_API int64_t dapo_live_objects(void); /* handles created and not yet freed, all types */
DAPO_API int32_t dapo_cuda_available(void);
/* The machine's limit for benchmarks: best-of-repeats fp32 GFLOP/s of an n x n x n matmul on the CPU (device_type 0)
 * or the first CUDA device (1). -1 on failure. */
DAPO_API double dapo_matmul_gflops(int64_t n, int32_t repeats, int32_t device_type);
/* Bytes the C heap (glibc malloc, all arenas, mmapped blocks included) has handed out and not taken back, and
 * bytes it holds from the system. What leak tests count: unlike resident memory, freed blocks kept for reuse do not
 * count as in use. 0 on success. */
DAPO_API int32_t dapo_heap_stats(int64_t* in_use, int64_t* held);
/* The BLAS kernel libtorch's matmuls run on: OpenBLAS's core name ("Haswell", "SkylakeX", ...) and its build
 * configuration, written NUL-terminated into the buffers (truncated to their capacity). Returns 1 when the BLAS is
 * OpenBLAS, 0 when it is another library (the buffers then hold ""), -1 on failure. */
DAPO_API int32_t dapo_blas_info(char* core, int64_t core_capacity, char* config, int64_t config_capacity);
/* The clock (GHz) the cores run at under load, measured: n_threads threads at once each time a chain of dependent
 * integer additions (one per cycle on every x86-64 core) against their own CPU time; the mean of their rates.
 * -1 on failure, 0 where not measurable (not x86-64). */
DAPO_API double dapo_measure_clock_ghz(int32_t n_threads);

/* Model */
DAPO_API dapo_model* dapo_model_create(const dapo_model_config* config);
DAPO_API void dapo_model_free(dapo_model* model);
DAPO_API int32_t dapo_model_get_config(dapo_model* model, dapo_model_config* out);
DAPO_API int64_t dapo_model_param_count(dapo_model* model);
/* Writes the parameter's name (NUL-terminated, truncated to name_capacity) and shape (up to shape_capacity dims). */
DAPO_API int32_t dapo_model_param_info(dapo_model* model, int64_t index, char* name, int64_t name_capacity,
                                       int64_t* shape, int32_t shape_capacity, int32_t* ndim);
DAPO_API int32_t dapo_model_param_read(dapo_model* model, int64_t index, float* out, int64_t count);
DAPO_API int32_t dapo_model_param_write(dapo_model* model, int64_t index, const float* values, int64_t count);
/* The accumulated gradient (zeros when none has been accumulated). */
DAPO_API int32_t dapo_model_grad_read(dapo_model* model, int64_t index, float* out, int64_t count);
/* The logits (n_tokens x vocab, row-major) of every position of one sequence, without gradients. */
DAPO_API int32_t dapo_model_logits(dapo_model* model, const int32_t* tokens, int64_t n_tokens, float* out, int64_t count);
DAPO_API int32_t dapo_model_zero_grad(dapo_model* model);
DAPO_API dapo_buffer* dapo_model_export_weights(dapo_model* model);
DAPO_API int32_t dapo_model_import_weights(dapo_model* model, const uint8_t* data, int64_t size);
/* Reads the model configuration stored at the head of exported weights or a training state. */
DAPO_API int32_t dapo_read_config(const uint8_t* data, int64_t size, dapo_model_config* out);

/* Sampling. Prompts are concatenated in prompt_tokens; prompt_lengths[i] is the length of prompt i.
 * Sample k belongs to prompt k / samples_per_prompt. */
DAPO_API dapo_samples* dapo_model_sample(dapo_model* model, const int32_t* prompt_tokens, int64_t n_tokens,
                                         const int64_t* prompt_lengths, int64_t n_prompts,
                                         const dapo_sample_options* options);
DAPO_API int64_t dapo_samples_count(dapo_samples* samples);
DAPO_API int64_t dapo_samples_total_tokens(dapo_samples* samples);
DAPO_API int32_t dapo_samples_copy(dapo_samples* samples, int32_t* tokens, float* logprobs, int64_t n_tokens,
                                   int64_t* lengths, uint8_t* truncated, int64_t n_samples);
DAPO_API void dapo_samples_free(dapo_samples* samples);

/* Scoring. Sequences are concatenated in tokens; response_mask has one byte per token, 1 where the token is
 * scored (never the first token of a sequence). Results come in token order, masked tokens only. */
DAPO_API dapo_score* dapo_model_score(dapo_model* model, const int32_t* tokens, const uint8_t* response_mask,
                                      int64_t n_tokens, const int64_t* seq_lengths, int64_t n_seqs,
                                      double temperature, int32_t requires_grad);
DAPO_API int64_t dapo_score_count(dapo_score* score);
DAPO_API int32_t dapo_score_copy(dapo_score* score, float* logprobs, float* entropies, int64_t count);
/* Accumulates into the model's gradients the gradient of sum_t coefficients[t] * logprob[t]. Once per score. */
DAPO_API int32_t dapo_score_backward(dapo_score* score, const float* coefficients, int64_t count);
DAPO_API void dapo_score_free(dapo_score* score);

/* AdamW with decoupled weight decay and global gradient-norm clipping. A step consumes the accumulated gradient
 * (zeroes it). A non-finite gradient norm skips the update (applied = 0). */
DAPO_API dapo_optim* dapo_optim_adamw_create(dapo_model* model, const dapo_adamw_options* options);
DAPO_API int32_t dapo_optim_step(dapo_optim* optim, double lr, double* grad_norm, int32_t* applied);
DAPO_API int64_t dapo_optim_step_count(dapo_optim* optim);
DAPO_API void dapo_optim_free(dapo_optim* optim);

/* Full training state: weights, optimizer moments and step count, optimizer options. */
DAPO_API dapo_buffer* dapo_state_save(dapo_model* model, dapo_optim* optim);
DAPO_API int32_t dapo_state_load(dapo_model* model, dapo_optim* optim, const uint8_t* data, int64_t size);

/* Byte buffers returned by the engine */
DAPO_API int64_t dapo_buffer_size(dapo_buffer* buffer);
DAPO_API const uint8_t* dapo_buffer_data(dapo_buffer* buffer);
DAPO_API void dapo_buffer_free(dapo_buffer* buffer);

#ifdef __cplusplus
}
#endif

#endif
