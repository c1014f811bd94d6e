using Dapo.Core.Common;
using System.Text.Json;
using System.Text.Json.Serialization;
using Dapo.Core.Advantages;
using Dapo.Core.Loss;
using Dapo.Core.Rewards;

namespace Dapo.Core.Options;

/// <summary>
/// Every knob of a DAPO run in one plain record, with the paper's defaults
/// (<see href="https://arxiv.org/abs/2503.14476"/>, §4.1 "Training Details") and, where the paper is silent, verl's
/// DAPO recipe (<c>recipe/dapo/run_dapo_qwen2.5_32b.sh</c>). Where the two differ both are supported and the default
/// follows the paper. <see cref="Validate"/> reports one message per bad field; <see cref="FromJson"/> rejects unknown
/// keys. Names of pluggable pieces (aggregation, reward, advantage, KL estimator) are looked up in their registries.
/// </summary>
public sealed record DapoOptions
{
    // ---- Rollout shape -------------------------------------------------------------------------------------------

    /// <summary>Responses sampled per prompt, G (paper: 16).</summary>
    public int GroupSize { get; init; } = 16;

    /// <summary>Informative prompt groups trained on per rollout step (paper: 512).</summary>
    public int PromptBatchSize { get; init; } = 512;

    /// <summary>Gradient updates per rollout step; the prompt batch is split into this many mini-batches
    /// (paper: 16, i.e. mini-batches of 32 prompts × 16 responses).</summary>
    public int MiniBatchesPerStep { get; init; } = 16;

    /// <summary>Passes over the step's mini-batches (verl: <c>actor.ppo_epochs</c>, 1 in its DAPO recipe; the paper
    /// does not reuse data). Above 1, later passes train again on tokens the earlier ones already moved, so their
    /// ratios drift the most and the clip bounds bind the most.</summary>
    public int PpoEpochs { get; init; } = 1;

    /// <summary>
    /// Whether a prompt group's responses are spread over the step's mini-batches (each mini-batch takes an equal
    /// share of every group's responses) instead of kept together in one. verl's trainer spreads them: it reorders
    /// the batch response by response to balance tokens over data-parallel ranks (<c>trainer.balance_batch</c>, on in
    /// its DAPO recipe), so the paper's mini-batches hold parts of many groups. Spread, a group's later responses are
    /// trained after its earlier ones have moved the policy on the same prompt (the tokens they share, such as a
    /// solution's first choices, have drifted by then); kept together, every group's first update starts at ratio 1.
    /// On the sum task the bounds bind no more often either way (docs/results.md). Off by default: the demo recipes'
    /// measurements keep groups whole.
    /// </summary>
    public bool SpreadGroupsOverMiniBatches { get; init; }

    /// <summary>Longest prompt in tokens (verl recipe: 2048).</summary>
    public int MaxPromptLength { get; init; } = 2048;

    /// <summary>L_max of eq. 13: the most tokens a response may have (paper: 20480 = 16384 expected + 4096 cache).</summary>
    public int MaxResponseLength { get; init; } = 20480;

    /// <summary>Sampling temperature for training rollouts (paper: 1.0).</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>Nucleus mass for training rollouts (paper: 1.0, i.e. off).</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Sampling temperature for evaluation (paper: 1.0).</summary>
    public double EvalTemperature { get; init; } = 1.0;

    /// <summary>Nucleus mass for evaluation (paper: 0.7).</summary>
    public double EvalTopP { get; init; } = 0.7;

    /// <summary>Samples per evaluation problem (paper: AIME repeated 32 times, avg@32).</summary>
    public int EvalSamplesPerPrompt { get; init; } = 32;

    // ---- Reward and advantage ------------------------------------------------------------------------------------

    /// <summary>Rule-based reward, by name in <see cref="RewardFunctions"/> (paper eq. 7: "dapo-math").</summary>
    public string RewardFunction { get; init; } = RewardFunctions.DapoMath;

    /// <summary>Advantage estimator, by name in <see cref="AdvantageEstimators"/> (paper eq. 9: "grpo").</summary>
    public string AdvantageEstimator { get; init; } = AdvantageEstimators.Grpo;

    /// <summary>ε in (R − mean) / (std + ε) (verl: 1e-6).</summary>
    public double AdvantageEpsilon { get; init; } = 1e-6;

    // ---- Loss (eq. 8, 10, 12) -------------------------------------------------------------------------------------

    /// <summary>ε_low: the ratio is clipped below at 1 − ε_low (paper: 0.2).</summary>
    public double ClipRatioLow { get; init; } = 0.2;

    /// <summary>ε_high: the ratio is clipped above at 1 + ε_high (Clip-Higher, paper: 0.28).</summary>
    public double ClipRatioHigh { get; init; } = 0.28;

    /// <summary>Dual-clip constant c (Ye et al. 2019): for negative advantages the loss is capped at −A·c. Off
    /// (null) by default because the paper does not use it; verl's recipe uses 10 (verl's generic default is 3).
    /// Must exceed 1.</summary>
    public double? DualClipRatio { get; init; }

    /// <summary>How per-token losses become one number, by name in <see cref="LossAggregations"/>
    /// (paper eq. 12: "token-mean"; "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm", "dr-grpo"
    /// for ablations).</summary>
    public string LossAggregation { get; init; } = LossAggregations.TokenMean;

    /// <summary>Divisor of "seq-mean-token-sum-norm" and "dr-grpo" (verl <c>loss_scale_factor</c>); null means
    /// <see cref="MaxResponseLength"/>, verl's default horizon.</summary>
    public double? LossScaleFactor { get; init; }

    /// <summary>β of the KL-to-reference term. DAPO removes it (paper §2.3), so 0; set it only for the GRPO
    /// baseline (verl's GRPO example uses 0.001).</summary>
    public double KlCoefficient { get; init; }

    /// <summary>KL estimator, by name in <see cref="KlEstimators"/> (verl <c>kl_loss_type</c>, default
    /// "low_var_kl", Schulman's k3).</summary>
    public string KlEstimator { get; init; } = KlEstimators.LowVarKl;

    // ---- Dynamic sampling (eq. 11) --------------------------------------------------------------------------------

    /// <summary>Over-sample and drop groups whose responses are all right or all wrong (paper: on).</summary>
    public bool DynamicSampling { get; init; } = true;

    /// <summary>What "all equal" compares (verl recipe: accuracy).</summary>
    public FilterMetric FilterMetric { get; init; } = FilterMetric.Accuracy;

    /// <summary>Prompts drawn per needed group; one generation round draws
    /// ceil(PromptBatchSize × OverSamplingFactor) prompts (verl recipe: gen batch 3 × train batch).</summary>
    public double OverSamplingFactor { get; init; } = 3.0;

    /// <summary>Most generation rounds per step (verl <c>max_num_gen_batches</c>: 10). Must be at least 1 so that a
    /// step always ends (verl's 0 means "forever").</summary>
    public int MaxGenerationRounds { get; init; } = 10;

    /// <summary>What to do at the generation cap (verl: fail).</summary>
    public GenerationCapBehavior AtGenerationCap { get; init; } = GenerationCapBehavior.Fail;

    /// <summary>What to do with accepted groups beyond the target (verl: discard).</summary>
    public SurplusGroupBehavior SurplusGroups { get; init; } = SurplusGroupBehavior.Discard;

    /// <summary>With <see cref="SurplusGroupBehavior.Carry"/>: the most policy versions a carried group's sampling
    /// policy may lag the policy that trains on it.</summary>
    public int MaxCarryStaleness { get; init; } = 1;

    // ---- Overlong (eq. 13) -----------------------------------------------------------------------------------------

    /// <summary>Soft overlong punishment, eq. 13 (paper: on).</summary>
    public bool OverlongPunishment { get; init; } = true;

    /// <summary>L_cache of eq. 13: the punishment interval before <see cref="MaxResponseLength"/> (paper: 4096).</summary>
    public int OverlongCacheLength { get; init; } = 4096;

    /// <summary>Scale of the punishment (verl <c>overlong_buffer.penalty_factor</c>: 1.0, the paper's eq. 13).</summary>
    public double OverlongPenaltyFactor { get; init; } = 1.0;

    /// <summary>Overlong filtering: truncated responses carry no loss (paper §3.4, studied separately from the soft
    /// punishment; off by default).</summary>
    public bool OverlongFiltering { get; init; }

    // ---- Optimizer -----------------------------------------------------------------------------------------------

    /// <summary>AdamW learning rate (paper: 1e-6).</summary>
    public double LearningRate { get; init; } = 1e-6;

    /// <summary>Rollout steps of linear warm-up (paper: 20).</summary>
    public int WarmupSteps { get; init; } = 20;

    /// <summary>AdamW decoupled weight decay (paper: 0.1).</summary>
    public double WeightDecay { get; init; } = 0.1;

    /// <summary>Global gradient-norm clip (paper: 1.0).</summary>
    public double GradClip { get; init; } = 1.0;

    /// <summary>AdamW β1 (verl/PyTorch default 0.9).</summary>
    public double AdamBeta1 { get; init; } = 0.9;

    /// <summary>AdamW β2 (verl/PyTorch default 0.999).</summary>
    public double AdamBeta2 { get; init; } = 0.999;

    /// <summary>AdamW ε (PyTorch default 1e-8).</summary>
    public double AdamEpsilon { get; init; } = 1e-8;

    // ---- Data ----------------------------------------------------------------------------------------------------

    /// <summary>Seed of the dataset shuffle and of anything else random in the run.</summary>
    public ulong Seed { get; init; } = 42;

    /// <summary>Shuffle the training set each epoch (verl: on).</summary>
    public bool ShuffleData { get; init; } = true;

    // ---- Presets -------------------------------------------------------------------------------------------------

    /// <summary>The paper's DAPO configuration (the defaults).</summary>
    public static DapoOptions Dapo => new();

    /// <summary>
    /// Naive GRPO, the paper's starting point (Table 1, 30 points on AIME): symmetric clip 0.2, sample-level loss
    /// (seq-mean-token-mean), no dynamic sampling, no overlong shaping or filtering. The KL-to-reference term is
    /// off unless <paramref name="klCoefficient"/> is given (verl's GRPO example uses 0.001 with low_var_kl).
    /// </summary>
    public static DapoOptions NaiveGrpo(double klCoefficient = 0) => new()
    {
        ClipRatioLow = 0.2,
        ClipRatioHigh = 0.2,
        LossAggregation = LossAggregations.SeqMeanTokenMean,
        DynamicSampling = false,
        OverlongPunishment = false,
        OverlongFiltering = false,
        KlCoefficient = klCoefficient,
    };

    /// <summary>The divisor actually used by "seq-mean-token-sum-norm" and "dr-grpo".</summary>
    [JsonIgnore]
    public double EffectiveLossScaleFactor => LossScaleFactor ?? MaxResponseLength;

    /// <summary>Prompt groups per mini-batch (PromptBatchSize / MiniBatchesPerStep).</summary>
    [JsonIgnore]
    public int PromptsPerMiniBatch => MiniBatchesPerStep > 0 ? PromptBatchSize / MiniBatchesPerStep : 0;

    // ---- Validation and JSON -------------------------------------------------------------------------------------

    /// <summary>One message per bad field (empty when the options are valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        void Require(bool ok, string message)
        {
            if (!ok) errors.Add(message);
        }

        Require(GroupSize >= 1, $"GroupSize must be at least 1; got {GroupSize}.");
        Require(!DynamicSampling || GroupSize >= 2,
            $"GroupSize must be at least 2 with DynamicSampling on (a group of one is never informative); got {GroupSize}.");
        Require(PromptBatchSize >= 1, $"PromptBatchSize must be at least 1; got {PromptBatchSize}.");
        Require(MiniBatchesPerStep >= 1, $"MiniBatchesPerStep must be at least 1; got {MiniBatchesPerStep}.");
        if (PromptBatchSize >= 1 && MiniBatchesPerStep >= 1)
            Require(PromptBatchSize % MiniBatchesPerStep == 0,
                $"MiniBatchesPerStep must divide PromptBatchSize ({PromptBatchSize}); got {MiniBatchesPerStep}.");
        Require(PpoEpochs >= 1, $"PpoEpochs must be at least 1; got {PpoEpochs}.");
        Require(MaxPromptLength >= 1, $"MaxPromptLength must be at least 1 token; got {MaxPromptLength}.");
        Require(MaxResponseLength >= 1, $"MaxResponseLength must be at least 1 token; got {MaxResponseLength}.");
        Require(Temperature > 0 && double.IsFinite(Temperature), $"Temperature must be positive and finite; got {Temperature}.");
        Require(TopP > 0 && TopP <= 1, $"TopP must be in (0, 1]; got {TopP}.");
        Require(EvalTemperature >= 0 && double.IsFinite(EvalTemperature),
            $"EvalTemperature must be non-negative and finite (0 is greedy); got {EvalTemperature}.");
        Require(EvalTopP > 0 && EvalTopP <= 1, $"EvalTopP must be in (0, 1]; got {EvalTopP}.");
        Require(EvalSamplesPerPrompt >= 1, $"EvalSamplesPerPrompt must be at least 1; got {EvalSamplesPerPrompt}.");

        Require(RewardFunctions.Registry.Contains(RewardFunction), $"RewardFunction: {RewardFunctions.Registry.UnknownMessage(RewardFunction)}");
        Require(AdvantageEstimators.Registry.Contains(AdvantageEstimator),
            $"AdvantageEstimator: {AdvantageEstimators.Registry.UnknownMessage(AdvantageEstimator)}");
        Require(AdvantageEpsilon > 0 && double.IsFinite(AdvantageEpsilon),
            $"AdvantageEpsilon must be positive and finite; got {AdvantageEpsilon}.");

        Require(ClipRatioLow > 0 && ClipRatioLow < 1, $"ClipRatioLow must be in (0, 1); got {ClipRatioLow}.");
        Require(ClipRatioHigh > 0 && double.IsFinite(ClipRatioHigh), $"ClipRatioHigh must be positive and finite; got {ClipRatioHigh}.");
        Require(DualClipRatio is null || (DualClipRatio > 1 && double.IsFinite(DualClipRatio.Value)),
            $"DualClipRatio must be greater than 1 (or null for off); got {DualClipRatio}.");
        Require(LossAggregations.Registry.Contains(LossAggregation),
            $"LossAggregation: {LossAggregations.Registry.UnknownMessage(LossAggregation)}");
        Require(LossScaleFactor is null || (LossScaleFactor > 0 && double.IsFinite(LossScaleFactor.Value)),
            $"LossScaleFactor must be positive and finite (or null for MaxResponseLength); got {LossScaleFactor}.");
        Require(KlCoefficient >= 0 && double.IsFinite(KlCoefficient), $"KlCoefficient must be non-negative and finite; got {KlCoefficient}.");
        Require(KlEstimators.Registry.Contains(KlEstimator), $"KlEstimator: {KlEstimators.Registry.UnknownMessage(KlEstimator)}");

        Require(Enum.IsDefined(FilterMetric), $"FilterMetric must be one of {string.Join(", ", Enum.GetNames<FilterMetric>())}; got {FilterMetric}.");
        Require(OverSamplingFactor >= 1 && double.IsFinite(OverSamplingFactor),
            $"OverSamplingFactor must be at least 1 and finite; got {OverSamplingFactor}.");
        Require(MaxGenerationRounds >= 1,
            $"MaxGenerationRounds must be at least 1 (a cap guarantees every step ends); got {MaxGenerationRounds}.");
        Require(Enum.IsDefined(AtGenerationCap),
            $"AtGenerationCap must be one of {string.Join(", ", Enum.GetNames<GenerationCapBehavior>())}; got {AtGenerationCap}.");
        Require(Enum.IsDefined(SurplusGroups),
            $"SurplusGroups must be one of {string.Join(", ", Enum.GetNames<SurplusGroupBehavior>())}; got {SurplusGroups}.");
        Require(MaxCarryStaleness >= 0, $"MaxCarryStaleness must be non-negative; got {MaxCarryStaleness}.");

        if (OverlongPunishment)
        {
            Require(OverlongCacheLength >= 1, $"OverlongCacheLength must be at least 1 token; got {OverlongCacheLength}.");
            Require(OverlongCacheLength <= MaxResponseLength,
                $"OverlongCacheLength must not exceed MaxResponseLength ({MaxResponseLength}); got {OverlongCacheLength}.");
        }
        Require(OverlongPenaltyFactor >= 0 && double.IsFinite(OverlongPenaltyFactor),
            $"OverlongPenaltyFactor must be non-negative and finite; got {OverlongPenaltyFactor}.");

        Require(LearningRate > 0 && double.IsFinite(LearningRate), $"LearningRate must be positive and finite; got {LearningRate}.");
        Require(WarmupSteps >= 0, $"WarmupSteps must be non-negative; got {WarmupSteps}.");
        Require(WeightDecay >= 0 && double.IsFinite(WeightDecay), $"WeightDecay must be non-negative and finite; got {WeightDecay}.");
        Require(GradClip > 0 && double.IsFinite(GradClip), $"GradClip must be positive and finite; got {GradClip}.");
        Require(AdamBeta1 >= 0 && AdamBeta1 < 1, $"AdamBeta1 must be in [0, 1); got {AdamBeta1}.");
        Require(AdamBeta2 >= 0 && AdamBeta2 < 1, $"AdamBeta2 must be in [0, 1); got {AdamBeta2}.");
        Require(AdamEpsilon > 0 && double.IsFinite(AdamEpsilon), $"AdamEpsilon must be positive and finite; got {AdamEpsilon}.");
        return errors;
    }

    /// <summary>Returns these options, or throws <see cref="OptionsValidationException"/> listing every bad field.</summary>
    public DapoOptions EnsureValid()
    {
        var errors = Validate();
        if (errors.Count > 0) throw new OptionsValidationException(errors);
        return this;
    }

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>
    /// Options from JSON (property names as in this record, enums as strings, missing keys keep their defaults).
    /// Unknown keys and invalid values are errors.
    /// </summary>
    /// <exception cref="OptionsValidationException">The JSON is malformed, has an unknown key, or a field is invalid.</exception>
    public static DapoOptions FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        DapoOptions? options;
        try
        {
            options = JsonSerializer.Deserialize<DapoOptions>(json, Json);
        }
        catch (JsonException e)
        {
            throw new OptionsValidationException([$"Options JSON: {JsonErrors.Describe(e)}"]);
        }
        return (options ?? throw new OptionsValidationException(["Options JSON: the document is null."])).EnsureValid();
    }

    /// <summary>These options as indented JSON, readable by <see cref="FromJson"/>.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);
}
