using Dapo.Core.Text;

namespace Dapo.Core.Tests.Text;

public class CharTokenizerTests
{
    private static readonly CharTokenizer Tokenizer = new();

    [Fact]
    public void Vocabulary_layout_is_fixed()
    {
        Assert.Equal(99, Tokenizer.VocabSize); // 3 special + '\n' + 95 printable ASCII
        Assert.Equal((0, 1, 2), (Tokenizer.PadId, Tokenizer.BosId, Tokenizer.EosId));
        Assert.Equal([3, 4, 20, 29, 37, 69, 98], Tokenizer.Encode("\n 09Aa~"));
        Assert.True(Tokenizer.IsSpecial(2));
        Assert.False(Tokenizer.IsSpecial(3));
    }

    [Fact]
    public void Round_trips_all_of_its_alphabet_with_special_tokens()
    {
        var text = CharTokenizer.DefaultAlphabet + "Answer: 33";
        var ids = Tokenizer.Encode(text, addBos: true, addEos: true);
        Assert.Equal(1, ids[0]);
        Assert.Equal(2, ids[^1]);
        Assert.Equal(text, Tokenizer.Decode(ids));
        Assert.Equal("<bos>ab<eos><pad>", Tokenizer.Decode([1, 69, 70, 2, 0], skipSpecialTokens: false));
    }

    [Fact]
    public void Unknown_characters_and_ids_are_clear_errors()
    {
        var e = Assert.Throws<ArgumentException>(() => Tokenizer.Encode("x = π"));
        Assert.Contains("U+03C0", e.Message);
        Assert.Contains("index 4", e.Message);
        Assert.Throws<ArgumentException>(() => Tokenizer.Encode("a\tb"));
        Assert.False(Tokenizer.CanEncode("é"));
        var bad = Assert.Throws<ArgumentOutOfRangeException>(() => Tokenizer.Decode([5, 99]));
        Assert.Contains("Token 1", bad.Message);
    }

    [Fact]
    public void A_custom_alphabet_must_not_repeat()
    {
        var digits = new CharTokenizer("0123456789+=\n");
        Assert.Equal(16, digits.VocabSize);
        Assert.Equal("1+1=2\n", digits.Decode(digits.Encode("1+1=2\n")));
        Assert.Throws<ArgumentException>(() => new CharTokenizer("aba"));
        Assert.IsType<CharTokenizer>(Tokenizers.Create("char"));
    }
}
