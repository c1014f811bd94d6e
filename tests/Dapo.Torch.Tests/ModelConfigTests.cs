namespace Dapo.Torch.Tests;

public class ModelConfigTests
{
    [Theory]
    [InlineData(true, true)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    public void The_parameter_count_is_what_the_engine_allocates(bool tied, bool bias)
    {
        var config = TinyModels.Config() with { TieEmbeddings = tied, AttentionBias = bias, VocabSize = 40, Layers = 3 };
        using var model = PolicyModel.Create(config);
        Assert.Equal(model.ParameterElementCount, config.ParameterCount);
    }

    [Fact]
    public void Qwen2_5_0_5B_has_494M_parameters()
    {
        var qwen = new ModelConfig
        {
            VocabSize = 151936, DModel = 896, Layers = 24, Heads = 14, KvHeads = 2, DFf = 4864, MaxSeqLen = 32768, TieEmbeddings = true,
        };
        Assert.Equal(494_032_768, qwen.ParameterCount);  // the published count of Qwen2.5-0.5B
    }
}
