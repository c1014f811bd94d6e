using System.Text.Json;
using Dapo.Core.Common;

namespace Dapo.Core.Tests;

public sealed class JsonErrorsTests
{
    private sealed class Sample
    {
        public int Steps { get; init; }
        public double Rate { get; init; }
        public bool Flag { get; init; }
        public string Name { get; init; } = "";
        public int? Maybe { get; init; }
        public ulong Seed { get; init; }
        public List<int> Items { get; init; } = [];
    }

    private sealed record Positional(int Steps);

    private static string Parse(string json, bool oneLine = false)
    {
        var e = Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse(json));
        return JsonErrors.Describe(e, oneLine);
    }

    private static string Convert(string json)
    {
        var e = Assert.ThrowsAny<JsonException>(() => JsonSerializer.Deserialize<Sample>(json));
        return JsonErrors.Describe(e);
    }

    [Theory]
    [InlineData("{\"a\": }", "line 1, column 7: expected a value (a number, a string in double quotes, true, false, null, {...} or [...]), found '}'")]
    [InlineData("{\n  \"a\": 1,\n}", "line 3, column 1: a comma before a closing '}' or ']' is not allowed")]
    [InlineData("{\"a\" 1}", "line 1, column 6: expected ':' after the field name, found '1'")]
    [InlineData("{\"a\": 1} x", "line 1, column 10: expected the end of the JSON, found 'x' after it")]
    [InlineData("[1,", "line 1, column 3: the JSON ends before it is complete")]
    [InlineData("{\"a\": tru}", "line 1, column 10: expected 'true', found 'tru}'")]
    [InlineData("{\"a\": 1\n \"b\": 2}", "line 2, column 2: expected ',' or a closing '}' or ']' after a value, found '\"'")]
    [InlineData("{'a': 1}", "line 1, column 2: expected a field name in double quotes, found '''")]
    [InlineData("", "line 1, column 1: expected JSON, found nothing")]
    public void Syntax_errors_say_where_and_what_was_expected(string json, string expected)
    {
        var described = Parse(json);
        Assert.Equal(expected, described);
        Assert.DoesNotContain("LineNumber", described);
        Assert.DoesNotContain("BytePositionInLine", described);
    }

    [Fact]
    public void One_line_json_gives_the_column_only() =>
        Assert.Equal("column 7: expected a value (a number, a string in double quotes, true, false, null, {...} or [...]), found '}'",
            Parse("{\"a\": }", oneLine: true));

    [Theory]
    [InlineData("{\"Steps\": \"x\"}", "field 'Steps': expected a whole number")]
    [InlineData("{\"Rate\": true}", "field 'Rate': expected a number")]
    [InlineData("{\"Flag\": 1}", "field 'Flag': expected true or false")]
    [InlineData("{\"Name\": 3}", "field 'Name': expected a string in double quotes")]
    [InlineData("{\"Maybe\": \"x\"}", "field 'Maybe': expected a whole number")]
    [InlineData("{\"Items\": 3}", "field 'Items': expected a list [...]")]
    [InlineData("{\"Seed\": -1}", "field 'Seed': expected a whole number, 0 or more")]
    public void Type_errors_name_the_field_and_the_expected_kind_of_value(string json, string expected)
    {
        var described = Convert(json);
        Assert.Equal(expected, described);
        Assert.DoesNotContain("System.", described);
    }

    [Fact]
    public void A_type_error_in_a_positional_record_names_the_field()
    {
        var e = Assert.ThrowsAny<JsonException>(() => JsonSerializer.Deserialize<Positional>("{\"Steps\": \"x\"}"));
        Assert.Equal("field 'Steps': the value is of the wrong kind for this field", JsonErrors.Describe(e));
    }
}
