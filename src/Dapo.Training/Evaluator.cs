using System.Diagnostics;
using Dapo.Core.Evaluation;
using Dapo.Core.Options;
using Dapo.Core.Rewards;
using Dapo.Torch;

namespace Dapo.Training;

/// <summary>How held-out evaluation samples (the paper's: temperature 1.0, top-p 0.7, avg@32 on AIME).</summary>
/// <param name="SamplesPerProblem">k, samples per problem.</param>
/// <param name="Temperature">Sampling temperature.</param>
/// <param name="TopP">Nucleus mass.</param>
/// <param name="MaxNewTokens">Most tokens per response.</param>
/// <param name="Seed">Base seed. The same seed for every evaluation of a run means every checkpoint is judged on the
/// same random draws (common random numbers), so differences between checkpoints are less noisy.</param>
public sealed record EvaluationSettings(int SamplesPerProblem, double Temperature, double TopP, int MaxNewTokens, ulong Seed)
{
    /// <summary>The evaluation settings of <paramref name="options"/> (EvalSamplesPerPrompt, EvalTemperature,
    /// EvalTopP, MaxResponseLength).</summary>
    public static EvaluationSettings FromOptions(DapoOptions options, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new EvaluationSettings(options.EvalSamplesPerPrompt, options.EvalTemperature, options.EvalTopP,
            options.MaxResponseLength, seed);
    }
}

/// <summary>Held-out figures of one policy.</summary>
/// <param name="Problems">Problems evaluated.</param>
/// <param name="K">Samples per problem.</param>
/// <param name="AverageAtK">avg@k: mean correctness of all samples (the headline number).</param>
/// <param name="PassAtK">pass@k: share of problems with at least one correct sample.</param>
/// <param name="MajorityAtK">maj@k: share of problems whose majority answer is correct.</param>
/// <param name="MeanResponseLength">Mean response length in tokens.</param>
/// <param name="TruncatedShare">Share of samples cut off at the token limit (each of them graded wrong).</param>
/// <param name="AverageAtKBySource">avg@k per <see cref="RolloutPrompt.Source"/>.</param>
/// <param name="Samples">Per problem, its k graded samples.</param>
/// <param name="Elapsed">Wall time.</param>
public sealed record EvaluationResult(
    int Problems, int K, double AverageAtK, double PassAtK, double MajorityAtK, double MeanResponseLength,
    double TruncatedShare, IReadOnlyDictionary<string, double> AverageAtKBySource, IReadOnlyList<IReadOnlyList<EvaluationSample>> Samples,
    TimeSpan Elapsed);

/// <summary>
/// Held-out evaluation: k samples per problem at the evaluation temperature and top-p, graded by the reward
/// function's correctness, summarised as avg@k, pass@k and maj@k (<see cref="EvaluationEstimators"/>). No overlong
/// shaping: evaluation asks only whether the answer is right.
/// </summary>
public sealed class Evaluator
{
    private readonly RolloutGenerator _generator;

    /// <summary>An evaluator that decodes with <paramref name="encoder"/> and grades with <paramref name="reward"/>.</summary>
    public Evaluator(PromptEncoder encoder, IRewardFunction reward, EvaluationSettings settings)
    {
        ArgumentNullException.ThrowIfNull(reward);
        Settings = settings ?? throw new ArgumentNullException(nameof(settings));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(settings.SamplesPerProblem);
        _generator = new RolloutGenerator(encoder, new ResponseScorer(reward, DapoOptions.Dapo with { OverlongPunishment = false }));
    }

    /// <summary>The settings.</summary>
    public EvaluationSettings Settings { get; }

    /// <summary>Evaluates <paramref name="model"/> on <paramref name="problems"/>.</summary>
    public EvaluationResult Evaluate(PolicyModel model, IReadOnlyList<RolloutPrompt> problems)
    {
        ArgumentNullException.ThrowIfNull(problems);
        if (problems.Count == 0) throw new ArgumentException("No problems to evaluate.", nameof(problems));
        var watch = Stopwatch.StartNew();
        var s = Settings;
        var groups = _generator.Generate(model, problems, new RolloutSettings(s.SamplesPerProblem, s.MaxNewTokens, s.Temperature, s.TopP, s.Seed));
        var samples = groups
            .Select(g => (IReadOnlyList<EvaluationSample>)g.Slots.Select(slot => new EvaluationSample(slot.Prediction, slot.Correct)).ToArray())
            .ToArray();
        var slots = groups.SelectMany(g => g.Slots).ToArray();
        var k = s.SamplesPerProblem;
        var bySource = problems.Select((p, i) => (p.Source, Samples: samples[i]))
            .GroupBy(x => x.Source)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => EvaluationEstimators.AverageAtK(g.Select(x => x.Samples).ToArray(), k));
        return new EvaluationResult(problems.Count, k, EvaluationEstimators.AverageAtK(samples, k),
            EvaluationEstimators.PassAtK(samples, k), EvaluationEstimators.MajorityAtK(samples, k),
            slots.Average(slot => (double)slot.Length), slots.Average(slot => slot.Truncated ? 1.0 : 0.0), bySource, samples, watch.Elapsed);
    }
}
