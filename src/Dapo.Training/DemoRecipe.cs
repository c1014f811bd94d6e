using Dapo.Core.Common;
using Dapo.Core.Data;
using Dapo.Core.Data.Synthetic;
using Dapo.Core.Options;
using Dapo.Core.Rewards;
using Dapo.Core.Text;
using Dapo.Torch;
using Dapo.Torch.HuggingFace;

namespace Dapo.Training;

/// <summary>
/// The demo's whole configuration: a tiny Qwen2-style policy, the synthetic math task, the supervised warm-start,
/// the DAPO steps and the held-out evaluation, sized so that warm-start + DAPO steps + evaluations fit in 12 minutes
/// on 2 CPU cores (measured: 7 minutes) and show learning: held-out avg@8 31% after the warm-start, 55–58% after the
/// DAPO steps (3 seeds), 41–47% with naive GRPO instead. Values that differ from the paper
/// (<see href="https://arxiv.org/abs/2503.14476"/>, §4.1) say why; the measurements behind them are in
/// src/Dapo.Training/README.md and come from bench/Dapo.Bench (<c>demo-recipe</c>).
/// </summary>
public sealed record DemoRecipe
{
    /// <summary>The recipe's name ("dapo", "grpo").</summary>
    public string Name { get; init; } = "dapo";

    // ---- Policy ----------------------------------------------------------------------------------------------------

    /// <summary>
    /// A tiny Qwen2-style decoder over the character vocabulary (99 ids), 0.8M parameters. Sized for the 2-core
    /// budget: on one core it trains ~16k tokens/s and samples ~27k new tokens/s (batched), and it learns levels 1–3
    /// (supervised to ~30% in ~1,100 steps, then RL to ~57%).
    /// </summary>
    public ModelConfig Model { get; init; } = new()
    {
        VocabSize = 99, DModel = 128, Layers = 4, Heads = 4, KvHeads = 2, DFf = 384, MaxSeqLen = 96,
        TieEmbeddings = true, Seed = 1,
    };

    /// <summary>
    /// Intra-op threads of the engine. 1, not the machine's 2: the demo model's matrices are too small to split
    /// well, and with 2 OpenMP threads every small op waits on a barrier, so when anything else needs a core the
    /// engine stalls (measured on the 2-core machine with another process busy: one-prompt sampling 0.9–13k tokens/s
    /// on 2 threads vs 11–16k on 1; batched sampling 15–28k vs 19–29k). One thread is as fast and predictable, and
    /// leaves the other core to the rest of the process.
    /// </summary>
    public int Threads { get; init; } = 1;

    // ---- Task ------------------------------------------------------------------------------------------------------

    /// <summary>The synthetic task family (<see cref="SyntheticTasks"/>): "math", multi-step arithmetic with short
    /// worked solutions, or "chain", running sums whose solutions grow with the level (<see cref="Chain"/>).</summary>
    public string Task { get; init; } = SyntheticTasks.Math;

    /// <summary>Synthetic levels in the mix: 1–3 (one to three operations, responses of 15–45 characters). Level 4's
    /// word problems are long prompts for little extra reasoning; level 5 is too hard for a model this size.</summary>
    public IReadOnlyList<int> Levels { get; init; } = [1, 2, 3];

    /// <summary>Train problems per level, in the order of <see cref="Levels"/> (level 1 has only 593 distinct train
    /// problems).</summary>
    public IReadOnlyList<int> TrainProblemsPerLevel { get; init; } = [500, 3000, 3000];

    /// <summary>Held-out problems per level, in the order of <see cref="Levels"/> (level 1 has 79).</summary>
    public IReadOnlyList<int> HeldOutProblemsPerLevel { get; init; } = [64, 64, 64];

    /// <summary>Seed of the generated problems.</summary>
    public ulong DataSeed { get; init; } = 1;

    /// <summary>Prompt template: "Q: {problem}\n", short enough for a character-level model.</summary>
    public string PromptTemplate { get; init; } = PromptTemplates.Short;

    // ---- Warm-start ------------------------------------------------------------------------------------------------

    /// <summary>
    /// Supervised warm-start on the worked solutions of the train problems, stopped early so RL has room to improve
    /// (issue 6's band: 15–40%). Held-out accuracy sits near 5% for hundreds of steps, then jumps within ~200 steps
    /// (here around step 900–1,100, depending on float rounding: 1 or 2 threads); stopping at the first check
    /// (every 50 steps) at or above 20% lands inside the band (measured: 31.1% at step 1,100 on 1 thread, 27.5% at
    /// step 900 on 2). MaxSteps is a budget, not the expected stop. Stopped before the jump (7.6% at step 600), RL did
    /// not improve it in 150 steps.
    /// </summary>
    public WarmStartSettings WarmStart { get; init; } = new()
    {
        MaxSteps = 2000, BatchSize = 32, LearningRate = 2e-3, WarmupSteps = 30, WeightDecay = 0.01, EvaluateEvery = 50,
        StopAtAccuracy = 0.2, Seed = 3,
    };

    // ---- DAPO ------------------------------------------------------------------------------------------------------

    /// <summary>
    /// The DAPO options of the demo: the paper's algorithm (clip-higher 0.2/0.28, token-mean, dynamic sampling,
    /// soft overlong punishment, no KL) at the demo's scale.
    /// </summary>
    public DapoOptions Dapo { get; init; } = new()
    {
        // G 8, 32 informative prompts per step in 2 mini-batches of 16: the paper's 16 × 512 in 16 mini-batches
        // would take hours per step here. 32 rather than 16 prompts: at equal learning rate the larger batch learned
        // faster per step (less gradient noise); 4 mini-batches instead of 2 did not help.
        GroupSize = 8,
        PromptBatchSize = 32,
        MiniBatchesPerStep = 2,
        MaxPromptLength = 32,
        // L_max 64 with a 16-token cache: correct level-3 solutions end by ~45 tokens, so the punishment only
        // touches rambling responses (the paper's 20480/4096 scaled to the task).
        MaxResponseLength = 64,
        OverlongCacheLength = 16,
        RewardFunction = RewardFunctions.ExactInteger,
        // 3e-4, not the paper's 1e-6: that rate is for a 32B model moving from a strong base; a 0.8M-parameter model
        // does not move at 1e-6 within hundreds of steps. Measured from the same warm-start: 3e-4 best; 5e-4 a little
        // worse; 1e-3 halved held-out accuracy within 20 steps and 3e-3 destroyed the policy (0%).
        LearningRate = 3e-4,
        WarmupSteps = 5,
        // About half the groups are all right or all wrong, so drawing 2 prompts per needed group fills a step in
        // 1.4 generation rounds on average (verl's 3 would waste samples); the cap of 4 rounds bounds a bad step.
        OverSamplingFactor = 2.0,
        MaxGenerationRounds = 4,
        // A demo must not die on a hard step: train on what was accepted at the cap.
        AtGenerationCap = GenerationCapBehavior.TrainOnAccepted,
        // avg@8 on 192 held-out problems (1,536 samples, ~2 s): issue 6 asks for k >= 8.
        EvalSamplesPerPrompt = 8,
        Seed = 42,
    };

    /// <summary>
    /// Most tokens (prompt + response) the learner scores with gradients in one engine call; a larger mini-batch runs
    /// as several calls that accumulate gradients (<see cref="PolicyUpdater"/>). It bounds the learner's activations:
    /// the demo's 16,384 tokens of a 64-character vocabulary take a few hundred MB, but a real model's logits alone
    /// take tokens × vocabulary × 4 bytes (Qwen2.5: 0.6 MB a token), so <see cref="ForModel"/> lowers it.
    /// </summary>
    public int MaxTokensPerMicroBatch { get; init; } = 16_384;

    /// <summary>DAPO (rollout) steps after the warm-start: about 1.4 s each on one core, and enough to raise held-out
    /// avg@8 by 20+ points from the warm-start (seed 42: +19.7 after 150 steps, +26.5 after 200).</summary>
    public int Steps { get; init; } = 200;

    /// <summary>Held-out evaluation every this many steps (and after the warm-start and the last step); one costs
    /// about 2 s.</summary>
    public int EvaluateEvery { get; init; } = 25;

    /// <summary>Base seed of the evaluation draws (the same for every evaluation of a run).</summary>
    public ulong EvaluationSeed { get; init; } = 7;

    /// <summary>
    /// A JSONL dataset (the DAPO-Math-17K schema or {"prompt", "answer"}) to draw RL prompts from instead of the
    /// synthetic task; every 20th problem (by a hash of its text) is held out for evaluation. Such data has no worked
    /// solutions, so it needs <see cref="InitialWeights"/> instead of the warm-start.
    /// </summary>
    public string? Dataset { get; init; }

    /// <summary>
    /// Policy weights to start from instead of the warm-start (a file of the engine's exported weights, such as a
    /// run's <c>policy/00000000</c> blob); null warm-starts. Ablations share one warm-start this way.
    /// </summary>
    public string? InitialWeights { get; init; }

    /// <summary>
    /// A Hugging Face Qwen2-family model directory (config.json, model.safetensors or shards, tokenizer.json,
    /// tokenizer_config.json) to train instead of the tiny policy: its weights are the start (no warm-start), its
    /// tokenizer and chat turns make the prompts, and the trained policy is written back in the same format when the
    /// run completes. Every silo reads it at this path. <see cref="ForModel"/> builds the recipe around one.
    /// </summary>
    public string? ModelDirectory { get; init; }

    /// <summary>Held-out evaluation settings (derived, so not serialised): k = <see cref="DapoOptions.EvalSamplesPerPrompt"/> samples at the
    /// paper's temperature 1.0 and top-p 0.7.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public EvaluationSettings Evaluation => EvaluationSettings.FromOptions(Dapo, EvaluationSeed);

    // ---- Variants --------------------------------------------------------------------------------------------------

    /// <summary>The demo recipe.</summary>
    public static DemoRecipe Default { get; } = new();

    /// <summary>
    /// The same recipe as naive GRPO (<see cref="DapoOptions.NaiveGrpo"/>: symmetric clip, sample-level loss, no
    /// dynamic sampling, no overlong shaping or filtering, no KL) with everything else equal — the ablation baseline.
    /// </summary>
    public DemoRecipe AsNaiveGrpo()
    {
        var naive = DapoOptions.NaiveGrpo();
        return this with
        {
            Name = "grpo",
            Dapo = Dapo with
            {
                ClipRatioLow = naive.ClipRatioLow,
                ClipRatioHigh = naive.ClipRatioHigh,
                LossAggregation = naive.LossAggregation,
                DynamicSampling = naive.DynamicSampling,
                OverlongPunishment = naive.OverlongPunishment,
                OverlongFiltering = naive.OverlongFiltering,
                KlCoefficient = naive.KlCoefficient,
            },
        };
    }

    /// <summary>
    /// The recipe with <paramref name="json"/> merged in, object by object (e.g.
    /// <c>{"Steps": 20, "Dapo": {"LearningRate": 5e-4}}</c>); an unknown key is an error naming it.
    /// </summary>
    /// <exception cref="FormatException">Malformed JSON, an unknown key, or a value of the wrong type.</exception>
    public DemoRecipe WithOverrides(string json)
    {
        var node = System.Text.Json.JsonSerializer.SerializeToNode(this)!.AsObject();
        System.Text.Json.Nodes.JsonNode? patch;
        try
        {
            patch = System.Text.Json.Nodes.JsonNode.Parse(json);
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new FormatException($"not valid JSON: {JsonErrors.Describe(e)}", e);
        }
        if (patch is not System.Text.Json.Nodes.JsonObject patchObject) throw new FormatException("expected a JSON object {...} of recipe fields.");
        Overlay(node, patchObject, "");
        try
        {
            return System.Text.Json.JsonSerializer.Deserialize<DemoRecipe>(node) ?? throw new FormatException("Recipe overrides gave no recipe.");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new FormatException(JsonErrors.Describe(e), e);
        }
    }

    private static void Overlay(System.Text.Json.Nodes.JsonObject target, System.Text.Json.Nodes.JsonObject patch, string path)
    {
        foreach (var (key, value) in patch.ToArray())
        {
            if (!target.ContainsKey(key))
                throw new FormatException($"unknown key '{path}{key}'; known: {string.Join(", ", target.Select(kv => kv.Key))}.");
            if (value is System.Text.Json.Nodes.JsonObject inner && target[key] is System.Text.Json.Nodes.JsonObject existing)
                Overlay(existing, inner, $"{path}{key}.");
            else target[key] = value?.DeepClone();
        }
    }

    /// <summary>
    /// The real-model recipe for the Hugging Face model in <paramref name="directory"/>: the paper's DAPO options as
    /// <see cref="DapoOptions"/> defaults them (G 16, 512 prompts per step in 16 mini-batches, prompts up to 2,048 and
    /// responses up to 20,480 tokens of the model's tokenizer with a 4,096-token overlong cache, learning rate 1e-6
    /// after 20 warm-up steps, the DAPO-Math reward, avg@32), the DAPO-Math-17K prompt in the model's chat turns, the
    /// model's own shape, and every core for the engine. A machine without a GPU needs far smaller batches and lengths:
    /// the README shows a CPU command with <c>--override</c>.
    /// </summary>
    /// <exception cref="FileNotFoundException">The directory has no config.json.</exception>
    /// <exception cref="InvalidDataException">config.json is not a Qwen2 config the engine supports (the message names the field).</exception>
    public static DemoRecipe ForModel(string directory)
    {
        directory = Path.GetFullPath(directory);
        var options = new DapoOptions();
        var config = Qwen2Config.Read(directory);
        return new DemoRecipe
        {
            Name = "dapo",
            ModelDirectory = directory,
            Model = config.ToModelConfig(Math.Min(config.MaxPositionEmbeddings, options.MaxPromptLength + options.MaxResponseLength)),
            PromptTemplate = PromptTemplates.Dapo,
            Dapo = options,
            // Real models' matrices are large enough to split across every core.
            Threads = Environment.ProcessorCount,
            // Qwen2.5-0.5B's learner peaks at 13.4 GB with 1,024 tokens a call (weights, gradients and AdamW moments
            // 7.9 GB; activations and logits over the 151,936-token vocabulary the rest; bench real-model): a 24 GB
            // machine still has room for a rollout copy. A GPU with memory to spare trains faster with more.
            MaxTokensPerMicroBatch = 1024,
            Steps = 100,
            EvaluateEvery = 10,
        };
    }

    /// <summary>
    /// The long-solution recipe: the demo's policy and DAPO options on the chain task (<see cref="SyntheticTasks.Chain"/>),
    /// sized so that the hard levels' responses reach the length limit: the regime of the paper's overlong filtering,
    /// soft punishment, clip-higher and token-level loss (docs/results.md, second section). Measured on the 2-core
    /// machine (one seed, 2026-12-03):
    /// <list type="bullet">
    /// <item>Levels 3–9 with a 64-token limit: worked solutions run from 24 characters (level 3) to 64–74 (level 9,
    /// past the limit), so level 8 is partly and level 9 wholly cut off, and 14–17 % of sampled responses are
    /// truncated early in a run.</item>
    /// <item>A 4-token overlong cache (the soft punishment from 60 tokens), not the paper's fifth of the limit: with 16
    /// (from 48) the punishment reached the correct solutions of levels 7 and 8, and the soft-punishment rung learned to
    /// stop by 48 tokens (truncated share 0 %, held-out 55 → 24 % in 80 steps); with 4 it still ends truncation (0–1 %
    /// by step 40) without that collapse (held-out 46 / 56 / 50 / 45 % at steps 20–80, against 55 / 44 / 49 / 55 %
    /// without it: one seed, within its noise).</item>
    /// <item>The warm-start runs to 40 % held-out, not the math task's 20 %: from the 25 % policy of the first check
    /// past 20 %, RL at the math recipe's learning rate lost held-out accuracy (16.6 → 9.4 % in 20 steps) and at 1e-4
    /// gained slowly (→ 24.9 % in 60 steps); from 48 % it gained at once (→ 52.7 % in 20 steps).</item>
    /// <item>Two mini-batches a step, as on the math task. Four (further off-policy, so the upper clip bound binds on
    /// 0.10–0.16 % of tokens rather than 0.03–0.05 %) lost held-out accuracy from the 48 % warm-start (→ 19 % by step
    /// 40, with or without clip-higher), as did eight at 1e-4 from the 25 % one.</item>
    /// </list>
    /// </summary>
    public static DemoRecipe Chain { get; } = CreateChain();

    private static DemoRecipe CreateChain()
    {
        var d = new DemoRecipe();
        return d with
        {
            Task = SyntheticTasks.Chain,
            Levels = [3, 4, 5, 6, 7, 8, 9],
            TrainProblemsPerLevel = [1500, 3000, 3000, 3000, 3000, 3000, 3000],
            HeldOutProblemsPerLevel = [32, 32, 32, 32, 32, 32, 32],
            Model = d.Model with { MaxSeqLen = 128 },
            WarmStart = d.WarmStart with { StopAtAccuracy = 0.4 },
            Dapo = d.Dapo with { MaxResponseLength = 64, OverlongCacheLength = 4 },
            // 150 steps, not the math task's 200: the ladder's 18 runs then take about two hours on 2 cores.
            Steps = 150,
        };
    }

    /// <summary>
    /// The chain recipe on the mixed-line task (<see cref="SyntheticTasks.ChainMixed"/>), one level longer: levels 3–10
    /// with the same 64-token limit. Written out line by line, 27 % of level-8, 86 % of level-9 and nearly all level-10
    /// solutions are cut off at 64 tokens; in the warm-start's mix (half the lines take two operations) under 1 %, 6 %
    /// and about a quarter; in two-operation lines none. So whether a long chain is cut off depends on how the policy
    /// chooses to write it, and the form of each line is a choice among right continuations.
    /// </summary>
    public static DemoRecipe ChainMixed { get; } = Chain with
    {
        Task = SyntheticTasks.ChainMixed,
        Levels = [3, 4, 5, 6, 7, 8, 9, 10],
        TrainProblemsPerLevel = [1500, 3000, 3000, 3000, 3000, 3000, 3000, 3000],
        HeldOutProblemsPerLevel = [32, 32, 32, 32, 32, 32, 32, 32],
        // A 16-token cache: the punishment starts at 48 tokens, below nearly every level-9 and level-10 solution in the
        // warm-start's mix, so among a hard group's right answers the shorter ones are favoured. With the chain
        // recipe's 4 tokens the policy drifted to the long form and stayed there (seed 42, 100 steps: a quarter of
        // held-out samples cut off, levels 9 and 10 at 0 %), as it does without the punishment (docs/results.md).
        Dapo = Chain.Dapo with { OverlongCacheLength = 16 },
    };

    /// <summary>
    /// The chain recipe on the any-order sums (<see cref="SyntheticTasks.Sum"/>), levels 3–9, with room for every
    /// solution: 96 response tokens, the punishment from 80, past the longest level-9 solution (73 characters),
    /// so what the policy learns is which order to write, not how to fit. Level 3 has about 650 distinct train problems.
    /// Entropy starts at 0.15 and collapses to about 0.08 in 150 steps, with or without clip-higher (docs/results.md).
    /// </summary>
    public static DemoRecipe Sum { get; } = Chain with
    {
        Task = SyntheticTasks.Sum,
        Levels = [3, 4, 5, 6, 7, 8, 9],
        TrainProblemsPerLevel = [600, 3000, 3000, 3000, 3000, 3000, 3000],
        Dapo = Chain.Dapo with { MaxResponseLength = 96, OverlongCacheLength = 16 },
    };

    /// <summary>The base recipe of a synthetic task: <see cref="Default"/> for "math", <see cref="Chain"/> for "chain",
    /// <see cref="ChainMixed"/> for "chain-mixed", <see cref="Sum"/> for "sum".</summary>
    /// <exception cref="KeyNotFoundException">Unknown task; the message lists the known ones.</exception>
    public static DemoRecipe ForTask(string task) => task switch
    {
        SyntheticTasks.Math => Default,
        SyntheticTasks.Chain => Chain,
        SyntheticTasks.ChainMixed => ChainMixed,
        SyntheticTasks.Sum => Sum,
        _ => throw new KeyNotFoundException($"Unknown task '{task}'; known: {string.Join(", ", SyntheticTasks.Names)}."),
    };

    /// <summary>The recipe names <see cref="Named"/> knows.</summary>
    public static IReadOnlyList<string> Names { get; } = ["dapo", "grpo"];

    /// <summary>The recipe named <paramref name="name"/> on <paramref name="task"/>: "dapo" (the default) or "grpo"
    /// (its naive-GRPO ablation).</summary>
    /// <exception cref="KeyNotFoundException">Unknown name or task; the message lists the known ones.</exception>
    public static DemoRecipe Named(string name, string task = SyntheticTasks.Math) => name switch
    {
        "dapo" => ForTask(task),
        "grpo" => ForTask(task).AsNaiveGrpo(),
        _ => throw new KeyNotFoundException($"Unknown demo recipe '{name}'; known: {string.Join(", ", Names)}."),
    };

    /// <summary>One message per bad field (empty when valid), the DAPO options' included.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>(Dapo.Validate());
        errors.AddRange(WarmStart.Validate());
        if (Levels.Count == 0) errors.Add("Levels is empty.");
        if (!SyntheticTasks.Names.Contains(Task)) errors.Add($"Task '{Task}' is not a synthetic task; known: {string.Join(", ", SyntheticTasks.Names)}.");
        else if (Dataset is null)
        {
            var (min, max) = SyntheticTasks.Levels(Task);
            errors.AddRange(Levels.Where(l => l < min || l > max).Select(l => $"Levels: {l} is not a level of task '{Task}' ({min}-{max})."));
        }
        if (TrainProblemsPerLevel.Count != Levels.Count || HeldOutProblemsPerLevel.Count != Levels.Count)
            errors.Add($"TrainProblemsPerLevel and HeldOutProblemsPerLevel need one count per level ({Levels.Count}).");
        if (ModelDirectory is null && Model.VocabSize != new CharTokenizer().VocabSize)
            errors.Add($"Model.VocabSize must be the character tokenizer's {new CharTokenizer().VocabSize}; got {Model.VocabSize}.");
        if (ModelDirectory is not null) errors.AddRange(ValidateModelDirectory(ModelDirectory));
        if (Dapo.MaxPromptLength + Dapo.MaxResponseLength > Model.MaxSeqLen)
            errors.Add($"MaxPromptLength + MaxResponseLength ({Dapo.MaxPromptLength + Dapo.MaxResponseLength}) exceeds Model.MaxSeqLen ({Model.MaxSeqLen}).");
        if (Threads < 1) errors.Add($"Threads must be at least 1; got {Threads}.");
        if (MaxTokensPerMicroBatch < 1) errors.Add($"MaxTokensPerMicroBatch must be at least 1; got {MaxTokensPerMicroBatch}.");
        if (Steps < 1) errors.Add($"Steps must be at least 1; got {Steps}.");
        if (InitialWeights is not null && !File.Exists(InitialWeights))
            errors.Add($"InitialWeights: there is no file {InitialWeights}.");
        else if (InitialWeights is not null && ValidateInitialWeights(InitialWeights) is { } weightsError)
            errors.Add($"InitialWeights: {weightsError}");
        if (Dataset is not null && !File.Exists(Dataset))
            errors.Add($"Dataset: there is no file {Dataset}.");
        else if (Dataset is not null && InitialWeights is null && ModelDirectory is null)
            errors.Add("Dataset: a JSONL dataset has no worked solutions to warm-start on; give InitialWeights (--init-weights) or a model (--model) too.");
        if (ModelDirectory is not null && InitialWeights is not null)
            errors.Add("ModelDirectory and InitialWeights both give the starting weights; give one.");
        if (EvaluateEvery < 0) errors.Add($"EvaluateEvery must be non-negative; got {EvaluateEvery}.");
        return errors;
    }

    /// <summary>The model directory's problems: a missing directory or config.json, a config the engine does not
    /// support, or a <see cref="Model"/> of another shape than config.json's.</summary>
    private IEnumerable<string> ValidateModelDirectory(string directory)
    {
        if (!Directory.Exists(directory)) return [$"ModelDirectory: there is no directory {directory}."];
        Qwen2Config config;
        try
        {
            config = Qwen2Config.Read(directory);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            return [$"ModelDirectory: {e.Message}"];
        }
        if (Model.MaxSeqLen > config.MaxPositionEmbeddings)
            return [$"Model.MaxSeqLen {Model.MaxSeqLen} exceeds the model's max_position_embeddings {config.MaxPositionEmbeddings}."];
        var expected = config.ToModelConfig(Model.MaxSeqLen) with { Seed = Model.Seed, Device = Model.Device, DeviceIndex = Model.DeviceIndex };
        return Model == expected ? [] : [$"Model ({Model}) is not the shape of {directory}/config.json ({expected})."];
    }

    /// <summary>What is wrong with the weights file at <paramref name="path"/>, read from its header only (the
    /// engine's marker, format and model shape), or null: a wrong file is refused before the run starts.</summary>
    private string? ValidateInitialWeights(string path)
    {
        ModelConfig config;
        try
        {
            using var file = File.OpenRead(path);
            var head = new byte[Math.Min(file.Length, 4096)];
            file.ReadExactly(head);
            config = TorchEngine.ReadConfig(head);
        }
        catch (Exception e) when (e is TorchException or IOException or UnauthorizedAccessException)
        {
            return $"{path} is not a file of policy weights: {e.Message}.";
        }
        // The seed and the device are the recipe's: the file records neither.
        return config with { Seed = Model.Seed, Device = Model.Device, DeviceIndex = Model.DeviceIndex } == Model
            ? null
            : $"{path} holds weights of another model ({config}), not the recipe's ({Model}).";
    }

    /// <summary>Returns this recipe, or throws listing every bad field.</summary>
    public DemoRecipe EnsureValid()
    {
        var errors = Validate();
        return errors.Count == 0 ? this : throw new OptionsValidationException(errors);
    }
}
