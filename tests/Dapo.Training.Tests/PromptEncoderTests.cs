using Dapo.Core.Text;
using static Dapo.Training.Tests.TrainingFixtures;

namespace Dapo.Training.Tests;

public sealed class PromptEncoderTests
{
    [Fact]
    public void Prompt_is_bos_then_the_templated_problem()
    {
        var tokens = Encoder.EncodePrompt("12+7*3");
        Assert.Equal(CharTokenizer.Bos, tokens[0]);
        Assert.Equal("Q: 12+7*3\n", Encoder.Tokenizer.Decode(tokens));
        Assert.Equal(tokens.Length, "Q: 12+7*3\n".Length + 1);
    }

    [Fact]
    public void Solution_round_trips_and_ends_with_eos()
    {
        const string solution = "7*3=21\n12+21=33\nAnswer: 33";
        var response = Encoder.EncodeResponse(solution);
        Assert.Equal(CharTokenizer.Eos, response[^1]);
        Assert.Equal(solution, Encoder.DecodeResponse(response));
    }

    [Fact]
    public void Decoding_stops_at_the_first_eos_and_drops_other_specials()
    {
        var tokens = Encoder.Tokenizer.Encode("Answer: 4");
        int[] response = [CharTokenizer.Pad, .. tokens[..3], CharTokenizer.Bos, .. tokens[3..], CharTokenizer.Eos, .. tokens];
        Assert.Equal("Answer: 4", Encoder.DecodeResponse(response));
        Assert.Equal("Answer: 4", Encoder.DecodeResponse(tokens)); // truncated: no eos at all
    }
}
