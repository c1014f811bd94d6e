using Dapo.Core.Options;

namespace Dapo.Core.Tests;

public class OptionsTests
{
    [Fact]
    public void Defaults_are_the_papers()
    {
        var o = new DapoOptions();
        Assert.Empty(o.Validate());
        Assert.Equal(16, o.GroupSize);
        Assert.Equal(512, o.PromptBatchSize);
        Assert.Equal(16, o.MiniBatchesPerStep);
        Assert.Equal(32, o.PromptsPerMiniBatch); // 512 / 16
        Assert.Equal(0.2, o.ClipRatioLow);
        Assert.Equal(0.28, o.ClipRatioHigh);
        Assert.Null(o.DualClipRatio);
        Assert.Equal("token-mean", o.LossAggregation);
        Assert.True(o.DynamicSampling);
        Assert.Equal(GenerationCapBehavior.Fail, o.AtGenerationCap);
        Assert.Equal(SurplusGroupBehavior.Discard, o.SurplusGroups);
        Assert.Equal(FilterMetric.Accuracy, o.FilterMetric);
        Assert.True(o.OverlongPunishment);
        Assert.False(o.OverlongFiltering);
        Assert.Equal(20480, o.MaxResponseLength);
        Assert.Equal(4096, o.OverlongCacheLength);
        Assert.Equal(1.0, o.OverlongPenaltyFactor);
        Assert.Equal(1e-6, o.LearningRate);
        Assert.Equal(20, o.WarmupSteps);
        Assert.Equal(0.1, o.WeightDecay);
        Assert.Equal(1.0, o.GradClip);
        Assert.Equal(1.0, o.Temperature);
        Assert.Equal(1.0, o.TopP);
        Assert.Equal(0.7, o.EvalTopP);
        Assert.Equal(0.0, o.KlCoefficient);
        Assert.Equal("dapo-math", o.RewardFunction);
        Assert.Equal("grpo", o.AdvantageEstimator);
        Assert.Equal(20480.0, o.EffectiveLossScaleFactor);
    }

    [Fact]
    public void Naive_grpo_preset_undoes_every_dapo_technique()
    {
        var o = DapoOptions.NaiveGrpo();
        Assert.Empty(o.Validate());
        Assert.Equal(0.2, o.ClipRatioLow);
        Assert.Equal(0.2, o.ClipRatioHigh);
        Assert.Equal("seq-mean-token-mean", o.LossAggregation);
        Assert.False(o.DynamicSampling);
        Assert.False(o.OverlongPunishment);
        Assert.False(o.OverlongFiltering);
        Assert.Equal(0.0, o.KlCoefficient);
        Assert.Equal(0.001, DapoOptions.NaiveGrpo(klCoefficient: 0.001).KlCoefficient);
        Assert.Equal(new DapoOptions(), DapoOptions.Dapo);
    }

    [Fact]
    public void Every_bad_field_gets_its_own_message_naming_it()
    {
        var o = new DapoOptions
        {
            GroupSize = 1, // with dynamic sampling on
            PromptBatchSize = 100,
            MiniBatchesPerStep = 16, // does not divide 100
            PpoEpochs = 0,
            ClipRatioLow = 1.2,
            ClipRatioHigh = -0.1,
            DualClipRatio = 0.5,
            LossAggregation = "token-sum",
            TopP = 0,
            OverlongCacheLength = 30000, // > MaxResponseLength
            MaxGenerationRounds = 0,
            LearningRate = double.NaN,
            RewardFunction = "nope",
            OverSamplingFactor = 0.5,
        };
        var errors = o.Validate();
        string[] fields =
        [
            "GroupSize", "MiniBatchesPerStep", "PpoEpochs", "ClipRatioLow", "ClipRatioHigh", "DualClipRatio", "LossAggregation", "TopP",
            "OverlongCacheLength", "MaxGenerationRounds", "LearningRate", "RewardFunction", "OverSamplingFactor",
        ];
        Assert.Equal(fields.Length, errors.Count);
        foreach (var field in fields) Assert.Single(errors, e => e.StartsWith(field, StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("got 1.2"));
        Assert.Contains(errors, e => e.Contains("Known: dr-grpo, seq-mean-token-mean, seq-mean-token-sum, seq-mean-token-sum-norm, token-mean"));
        var thrown = Assert.Throws<OptionsValidationException>(() => o.EnsureValid());
        Assert.Equal(errors, thrown.Errors);
        Assert.Contains("13 problems", thrown.Message);
    }

    [Fact]
    public void A_group_of_one_is_fine_without_dynamic_sampling() =>
        Assert.Empty((DapoOptions.NaiveGrpo() with { GroupSize = 1 }).Validate());

    [Fact]
    public void Json_round_trips_with_enums_as_strings()
    {
        var o = new DapoOptions { DualClipRatio = 10, AtGenerationCap = GenerationCapBehavior.TrainOnAccepted, SurplusGroups = SurplusGroupBehavior.Carry };
        var json = o.ToJson();
        Assert.Contains("\"AtGenerationCap\": \"TrainOnAccepted\"", json);
        Assert.DoesNotContain("EffectiveLossScaleFactor", json);
        Assert.Equal(o, DapoOptions.FromJson(json));
    }

    [Fact]
    public void Json_keeps_defaults_for_missing_keys()
    {
        var o = DapoOptions.FromJson("""{ "GroupSize": 8, "LossAggregation": "seq-mean-token-sum", "AtGenerationCap": "TrainOnAccepted" }""");
        Assert.Equal(8, o.GroupSize);
        Assert.Equal("seq-mean-token-sum", o.LossAggregation);
        Assert.Equal(GenerationCapBehavior.TrainOnAccepted, o.AtGenerationCap);
        Assert.Equal(0.28, o.ClipRatioHigh);
    }

    [Fact]
    public void Json_rejects_unknown_keys_and_invalid_values_naming_them()
    {
        var unknown = Assert.Throws<OptionsValidationException>(() => DapoOptions.FromJson("""{ "ClipRatioHihg": 0.3 }"""));
        Assert.Contains("ClipRatioHihg", unknown.Message);
        var invalid = Assert.Throws<OptionsValidationException>(() => DapoOptions.FromJson("""{ "ClipRatioHigh": -1 }"""));
        Assert.Single(invalid.Errors);
        Assert.StartsWith("ClipRatioHigh", invalid.Errors[0]);
        var badEnum = Assert.Throws<OptionsValidationException>(() => DapoOptions.FromJson("""{ "SurplusGroups": "Keep" }"""));
        Assert.Contains("SurplusGroups", badEnum.Message);
    }

    [Theory]
    [InlineData(0, 1e-6 / 20)] // (0 + 1) / 20
    [InlineData(9, 1e-6 * 10 / 20)]
    [InlineData(19, 1e-6)] // 20 / 20
    [InlineData(500, 1e-6)]
    public void Learning_rate_warms_up_linearly_over_20_steps(int step, double expected) =>
        TestUtil.Close(expected, LearningRateSchedule.At(step, new DapoOptions()), 1e-18);

    [Fact]
    public void No_warmup_is_the_full_rate() => Assert.Equal(3e-4, LearningRateSchedule.At(0, 3e-4, 0));
}
