
using Dapo.Training;
using Dapo.Core.Metrics;
using Microsoft.Extensions.Logging;

namespace Dapo.Grains.Hosting;

/// <summary>One trained step, as the learner reports it.</summary>
/// <param name="SampledAccuracy">Accuracy over every group judged in the step (accepted and filtered).</param>
/// <param name="SampledTruncatedShare">Share of truncated responses over every group judged in the step (accepted and
/// filtered): what the policy generated, where the batch's response_length/clip_ratio counts only what it trains on.</param>
/// <param name="TokensPerSecond">Generated plus trained tokens per second of step time.</param>
/// <param name="OutsideEngineTime">Wall time of the step during which no engine thread of this process computed.</param>
/// <param name="GrainTime">Time this process waited on grain calls (and their state writes) during the step.</param>
/// <param name="BlobTime">Time this process waited on blob storage during the step.</param>
/// <param name="RolloutWorkers">Rollout grains whose responses the step trained on.</param>
public sealed record StepReport(
    string RunId, int Step, int TotalSteps, StepMetrics Metrics, double SampledAccuracy, double SampledTruncatedShare, double TokensPerSecond,
    TimeSpan StepTime, TimeSpan SamplingTime, TimeSpan TrainingTime, TimeSpan GrainTime, TimeSpan BlobTime, TimeSpan OutsideEngineTime, int RolloutWorkers,
    EvaluationResult? Evaluation, int? Checkpoint);

/// <summary>Where the learner's progress goes: logs by default; `train` prints it to the console.</summary>
public interface ITrainingReporter
{
    void WarmStart(string runId, WarmStartProgress progress);
    void Evaluated(string runId, string when, EvaluationResult result);
    void Step(StepReport report);
    void Message(string runId, string message);
    void RunEnded(string runId, RunStatus status, string? error);

    /// <summary>The learner stopped without ending the run (an error it cannot wait out): it resumes when started again.</summary>
    void Stopped(string runId, string error);
}

/// <summary>Progress through structured logs (a cluster silo).</summary>
public sealed partial class LoggingTrainingReporter(ILogger<LoggingTrainingReporter> logger) : ITrainingReporter
{
    public void WarmStart(string runId, WarmStartProgress p)
    {
        if (p.HeldOutAccuracy is { } accuracy) LogWarmStart(logger, runId, p.Step, p.Loss, accuracy);
    }

    public void Evaluated(string runId, string when, EvaluationResult r) => LogEvaluated(logger, runId, when, r.K, r.AverageAtK, r.PassAtK);

    public void Step(StepReport r) => LogStep(logger, r.RunId, r.Step, r.TotalSteps, r.SampledAccuracy, r.Metrics.RewardMean,
        r.Metrics.EntropyMean, r.Metrics.ResponseLengthMean, r.Metrics.GroupsFiltered, r.Metrics.GenerationRounds, r.TokensPerSecond,
        r.StepTime.TotalSeconds);

    public void Message(string runId, string message) => LogMessage(logger, runId, message);

    public void RunEnded(string runId, RunStatus status, string? error) => LogEnded(logger, runId, status, error ?? "");

    public void Stopped(string runId, string error) => LogStopped(logger, runId, error);

    [LoggerMessage(EventId = 4006, Level = LogLevel.Warning, Message = "Run {Run}: the learner stopped: {Error}")]
    private static partial void LogStopped(ILogger logger, string run, string error);

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "Run {Run} warm-start step {Step}: nll {Loss:F3}, held-out accuracy {Accuracy:P1}")]
    private static partial void LogWarmStart(ILogger logger, string run, int step, double loss, double accuracy);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Information, Message = "Run {Run} held-out evaluation {When}: avg@{K} {AvgAtK:P1}, pass@{K} {PassAtK:P1}")]
    private static partial void LogEvaluated(ILogger logger, string run, string when, int k, double avgAtK, double passAtK);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Information,
        Message = "Run {Run} step {Step}/{Total}: acc {Accuracy:F3} reward {Reward:F3} entropy {Entropy:F3} len {Length:F1} " +
                  "filtered {Filtered} rounds {Rounds} {TokensPerSecond:F0} tok/s {Seconds:F1}s")]
    private static partial void LogStep(ILogger logger, string run, int step, int total, double accuracy, double reward, double entropy,
        double length, int filtered, int rounds, double tokensPerSecond, double seconds);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Information, Message = "Run {Run}: {Message}")]
    private static partial void LogMessage(ILogger logger, string run, string message);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Information, Message = "Run {Run} ended: {Status} {Error}")]
    private static partial void LogEnded(ILogger logger, string run, RunStatus status, string error);
}
