using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Dapo.Grains.Hosting;

/// <summary>
/// The silo's training metrics, on the .NET meter <see cref="MeterName"/>: what a silo exports in Prometheus text
/// format on its HTTP endpoint (Http:Port) and what an autoscaler reads. Recorded by the grains of this silo only:
/// step time, tokens trained and groups judged by the learner, tokens sampled by rollout grains, the groups of a
/// current step waiting for a rollout grain (the rollout autoscaler's signal), and how many policy versions behind the
/// current step a rollout grain sampled.
/// </summary>
public sealed class DapoMetrics : IDisposable
{
    public const string MeterName = "Dapo";

    private readonly Meter _meter;
    private readonly Histogram<double> _stepTime;
    private readonly Counter<long> _tokensTrained;
    private readonly Counter<long> _tokensSampled;
    private readonly Counter<long> _accepted;
    private readonly Counter<long> _filtered;
    private readonly ConcurrentDictionary<string, (int Waiting, int InFlight)> _steps = new();
    private readonly ConcurrentDictionary<string, (string Run, int Lag)> _lags = new();

    public DapoMetrics(IMeterFactory meters)
    {
        _meter = meters.Create(MeterName);
        // Steps take from a fraction of a second (the tiny demo) to many minutes (a real model on CPU).
        _stepTime = _meter.CreateHistogram("dapo.step.duration", "s", "Time of a DAPO step, sampling and training, on the learner", tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600] });
        _tokensTrained = _meter.CreateCounter<long>("dapo.tokens.trained", "{token}", "Tokens (prompt and response) the learner scored with gradients");
        _tokensSampled = _meter.CreateCounter<long>("dapo.tokens.sampled", "{token}", "Response tokens the rollout grains of this silo generated");
        _accepted = _meter.CreateCounter<long>("dapo.groups.accepted", "{group}", "Groups the dynamic sampling accepted (rewards not all equal)");
        _filtered = _meter.CreateCounter<long>("dapo.groups.filtered", "{group}", "Groups the dynamic sampling filtered out (all rewards equal)");
        _meter.CreateObservableGauge("dapo.step.groups_waiting", () => _steps.Select(s => new Measurement<int>(s.Value.Waiting, Run(s.Key))),
            "{group}", "Groups of the run's current step that no rollout grain holds: work waiting for rollout capacity");
        _meter.CreateObservableGauge("dapo.step.groups_in_flight", () => _steps.Select(s => new Measurement<int>(s.Value.InFlight, Run(s.Key))),
            "{group}", "Groups of the run's current step drawn and not judged yet");
        _meter.CreateObservableGauge("dapo.rollout.policy_lag", () => _lags.Select(l => new Measurement<int>(l.Value.Lag,
                new KeyValuePair<string, object?>("run", l.Value.Run), new KeyValuePair<string, object?>("rollout", l.Key))),
            "{version}", "Policy versions between the run's current step and the weights this rollout grain last sampled with");
    }

    private static KeyValuePair<string, object?> Run(string run) => new("run", run);

    /// <summary>A step the learner completed.</summary>
    public void StepCompleted(string run, TimeSpan duration, long tokensTrained, int accepted, int filtered)
    {
        var tag = Run(run);
        _stepTime.Record(duration.TotalSeconds, tag);
        _tokensTrained.Add(tokensTrained, tag);
        _accepted.Add(accepted, tag);
        _filtered.Add(filtered, tag);
    }

    /// <summary>A batch a rollout grain generated.</summary>
    public void Sampled(string run, long tokens) => _tokensSampled.Add(tokens, Run(run));

    /// <summary>The current step's queue, as its step grain last changed it.</summary>
    public void StepQueue(string run, int waiting, int inFlight) => _steps[run] = (waiting, inFlight);

    /// <summary>How far behind a rollout grain sampled: the step's policy version minus the weights it used.</summary>
    public void PolicyLag(string rollout, string run, int lag) => _lags[rollout] = (run, lag);

    public void Dispose() => _meter.Dispose();
}
