namespace Dapo.Torch.Tests;

/// <summary>Bad arguments become .NET exceptions with the native message; the process and the model live on.</summary>
public sealed class BadInputTests
{
    private static readonly SampleOptions Options = new() { MaxNewTokens = 4 };

    [Theory]
    [InlineData(0, 32, 4, 2, "config.vocab_size must be at least 2")]
    [InlineData(32, 30, 4, 2, "config.d_model (30) must be a multiple of n_heads (4)")]
    [InlineData(32, 32, 4, 3, "config.n_heads (4) must be a multiple of n_kv_heads (3)")]
    [InlineData(32, 32, 4, 8, "config.n_kv_heads must be in [1, n_heads=4], got 8")]
    public void Invalid_configurations_name_the_field(int vocab, int dModel, int heads, int kvHeads, string message)
    {
        var config = TinyModels.Config() with { VocabSize = vocab, DModel = dModel, Heads = heads, KvHeads = kvHeads };
        var error = Assert.Throws<TorchException>(() => PolicyModel.Create(config));
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void Bad_sampling_requests_are_rejected_clearly()
    {
        using var model = TinyModels.Create();
        AssertRejected(() => model.Sample([[1, 2, 32]], Options), "prompt 0, token 2: id 32 is outside the vocabulary [0, 32)");
        AssertRejected(() => model.Sample([[1, -1]], Options), "prompt 0, token 1: id -1 is outside the vocabulary");
        AssertRejected(() => model.Sample([], Options), "prompts: the batch is empty");
        AssertRejected(() => model.Sample([[1], []], Options), "prompt 1 is empty");
        AssertRejected(() => model.Sample([new int[90]], Options with { MaxNewTokens = 10 }),
            "prompt 0: length 90 plus max_new_tokens 10 exceeds the model's max_seq_len 96");
        AssertRejected(() => model.Sample([[1]], Options with { TopP = 0 }), "top_p must be in (0, 1], got 0");
        AssertRejected(() => model.Sample([[1]], Options with { Temperature = -1 }), "temperature must be a finite number >= 0");
        AssertRejected(() => model.Sample([[1]], Options with { MaxNewTokens = 0 }), "max_new_tokens must be at least 1");
        AssertRejected(() => model.Sample([[1]], Options with { SamplesPerPrompt = 0 }), "samples_per_prompt must be at least 1");
        AssertRejected(() => model.Sample([[1]], Options with { StopTokens = [40] }), "stop token id 40 is outside the vocabulary");
        // Still usable afterwards.
        Assert.Single(model.Sample([[1, 2]], Options));
    }

    [Fact]
    public void Bad_logits_requests_are_rejected_clearly()
    {
        using var model = TinyModels.Create();
        AssertRejected(() => model.Logits([1, 32]), "token 1: id 32 is outside the vocabulary [0, 32)");
        AssertRejected(() => model.Logits([]), "the sequence has 0 tokens; the model takes 1 to 96");
        AssertRejected(() => model.Logits(new int[97]), "the sequence has 97 tokens; the model takes 1 to 96");
        Assert.Equal(2 * 32, model.Logits([1, 2]).Length);
    }

    [Fact]
    public void Bad_scoring_requests_are_rejected_clearly()
    {
        using var model = TinyModels.Create();
        AssertRejected(() => model.Score([]), "sequences: the batch is empty");
        AssertRejected(() => model.Score([new ScoredSequence([1, 2, 99], [false, true, true])]),
            "sequence 0, token 2: id 99 is outside the vocabulary [0, 32)");
        AssertRejected(() => model.Score([new ScoredSequence([1, 2], [true, true])]),
            "sequence 0: response_mask is set at position 0, which has no context to score it");
        AssertRejected(() => model.Score([new ScoredSequence(new int[97], new bool[97])]),
            "sequence 0: length 97 exceeds the model's max_seq_len 96");
        AssertRejected(() => model.Score([new ScoredSequence([1, 2], [false, false])]), "response_mask marks no token to score");
        AssertRejected(() => model.Score([new ScoredSequence([1, 2], [false, true])], temperature: 0), "temperature must be a finite number > 0");
        var mismatch = Assert.Throws<ArgumentException>(() => model.Score([new ScoredSequence([1, 2, 3], [false, true])]));
        Assert.Contains("3 tokens but a response mask of 2", mismatch.Message);

        using var score = model.Score([ScoredSequence.FromPromptAndResponse([1, 2], [3, 4])], requiresGrad: true);
        var wrongSize = Assert.Throws<ArgumentException>(() => score.Backward(new float[3]));
        Assert.Contains("3 coefficients for 2 scored tokens", wrongSize.Message);
        score.Backward(new float[2]);
        AssertRejected(() => score.Backward(new float[2]), "backward was already called on this score");

        using var noGraph = model.Score([ScoredSequence.FromPromptAndResponse([1, 2], [3])]);
        AssertRejected(() => noGraph.Backward(new float[1]), "backward needs a score computed with requires_grad");
    }

    [Fact]
    public void Bad_optimizer_settings_and_buffers_are_rejected()
    {
        using var model = TinyModels.Create();
        AssertRejected(() => new AdamW(model, new AdamWOptions { Beta1 = 1.0 }), "adamw.beta1 must be in [0, 1), got 1");
        AssertRejected(() => new AdamW(model, new AdamWOptions { Eps = 0 }), "adamw.eps must be a finite number > 0");
        using var optimizer = new AdamW(model);
        AssertRejected(() => optimizer.Step(double.NaN), "lr must be a finite number >= 0");
        var index = model.Parameters.Count - 1;
        AssertRejected(() => model.WriteParameter(index, new float[3]),
            $"parameter values has 3 elements, expected {model.Parameters[index].ElementCount}");
        AssertRejected(() => TorchEngine.Threads = 0, "thread count must be at least 1, got 0");
        using var other = TinyModels.Create();
        Assert.Throws<ArgumentException>(() => TrainingState.Save(other, optimizer));
    }

    [Fact]
    public void Disposed_objects_throw_instead_of_reaching_native_code()
    {
        var model = TinyModels.Create();
        var score = model.Score([ScoredSequence.FromPromptAndResponse([1], [2])], requiresGrad: true);
        var optimizer = new AdamW(model);
        model.Dispose();
        Assert.Throws<ObjectDisposedException>(() => model.Sample([[1]], Options));
        Assert.Throws<ObjectDisposedException>(() => model.ExportWeights());
        Assert.Throws<ObjectDisposedException>(() => model.ReadParameter(0));
        // The score and optimizer keep the native model alive: they still work after the model's handle is gone.
        score.Backward([1f]);
        Assert.True(optimizer.Step(1e-3).Applied);
        score.Dispose();
        optimizer.Dispose();
        Assert.Throws<ObjectDisposedException>(() => score.Backward([1f]));
        Assert.Throws<ObjectDisposedException>(() => optimizer.Step(1e-3));
    }

    private static void AssertRejected(Action action, string expected)
    {
        var error = Assert.Throws<TorchException>(action);
        Assert.Contains(expected, error.Message);
    }
}
