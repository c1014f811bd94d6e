using System.Text.Json;
using Dapo.Core.Data;

namespace Dapo.Core.Tests;

public class DatasetReaderTests
{
    private static string DapoLine(string problem, string answer, string index) => JsonSerializer.Serialize(new
    {
        data_source = "math_dapo",
        prompt = new[] { new { content = new DapoPromptTemplate().Apply(problem), role = "user" } },
        ability = "MATH",
        reward_model = new { ground_truth = answer, style = "rule-lighteval/MATH_v2" },
        extra_info = new { index },
    });

    private static DatasetLoadResult Read(string text, JsonlSchema schema = JsonlSchema.Auto) =>
        JsonlDatasetReader.Read(new StringReader(text), "data.jsonl", schema);

    [Fact]
    public void Reads_dapo_records_takes_the_problem_out_of_the_template_and_drops_repeats()
    {
        var lines = new[]
        {
            DapoLine("What is 2+2?", "4", "id-a"),
            DapoLine("What is 3*3?", "9", "id-b"),
            DapoLine("What is 2+2?", "4", "id-c"),
            "",
            DapoLine("What is 2+2?", "5", "id-d"), // same prompt, conflicting answer
        };
        var result = Read(string.Join("\n", lines));
        Assert.Equal(4, result.RecordsRead);
        Assert.Equal(2, result.Examples.Count);
        Assert.Equal(2, result.DuplicatesDropped);
        Assert.Equal(1, result.ConflictingDuplicates);
        Assert.Equal(new PromptExample("id-a", "What is 2+2?", "4", "math_dapo"), result.Examples[0]);
        Assert.Equal("id-b", result.Examples[1].Id);
    }

    [Fact]
    public void The_dapo_template_is_the_datasets_exact_text()
    {
        var prompt = new DapoPromptTemplate().Apply("P");
        Assert.Equal(
            "Solve the following math problem step by step. The last line of your response should be of the form Answer: " +
            "$Answer (without quotes) where $Answer is the answer to the problem.\n\nP\n\n" +
            "Remember to put your answer on its own line after \"Answer:\".", prompt);
        Assert.True(DapoPromptTemplate.TryExtractProblem(prompt, out var problem));
        Assert.Equal("P", problem);
        Assert.False(DapoPromptTemplate.TryExtractProblem("just a question", out var same));
        Assert.Equal("just a question", same);
        Assert.Equal("Q: 12+7\n", PromptTemplates.Get("short").Apply("12+7"));
    }

    [Fact]
    public void A_user_message_outside_the_template_is_kept_whole()
    {
        var line = """{"prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "1+1?"}], "reward_model": {"ground_truth": 2}}""";
        var example = Read(line).Examples.Single();
        Assert.Equal("1+1?", example.Problem);
        Assert.Equal("2", example.Answer); // numeric ground truth kept as written
        Assert.Equal("data.jsonl:1", example.Id);
    }

    [Fact]
    public void Reads_the_simple_schema()
    {
        var result = Read("""
            {"prompt": "12+7", "answer": "19"}
            {"prompt": "3*3", "answer": 9, "id": "q2"}
            {"prompt": "12+7", "answer": "19"}
            """);
        Assert.Equal(2, result.Examples.Count);
        Assert.Equal(1, result.DuplicatesDropped);
        Assert.Equal(new PromptExample("data.jsonl:1", "12+7", "19", "jsonl"), result.Examples[0]);
        Assert.Equal(new PromptExample("q2", "3*3", "9", "jsonl"), result.Examples[1]);
    }

    [Theory]
    [InlineData("""{"prompt": "1+1", "answer": "2"}""" + "\n{not json", 2, "(line)", "not valid JSON")]
    [InlineData("""[1, 2]""", 1, "(line)", "expected a JSON object")]
    [InlineData("""{"answer": "2"}""", 1, "prompt", "is missing")]
    [InlineData("""{"prompt": 5, "answer": "2"}""", 1, "prompt", "got a number")]
    [InlineData("""{"prompt": "1+1"}""", 1, "answer", "is missing")]
    [InlineData("""{"prompt": "1+1", "answer": {"x": 1}}""", 1, "answer", "got an object")]
    [InlineData("""{"prompt": "1+1", "answer": ""}""", 1, "answer", "is empty")]
    [InlineData("""{"prompt": [{"role": "user", "content": "q"}]}""", 1, "reward_model", "is missing")]
    [InlineData("""{"prompt": [{"role": "user", "content": "q"}], "reward_model": {}}""", 1, "reward_model.ground_truth", "is missing")]
    [InlineData("""{"prompt": [{"role": "user"}], "reward_model": {"ground_truth": "1"}}""", 1, "prompt[0].content", "is missing")]
    [InlineData("""{"prompt": [{"role": "assistant", "content": "a"}], "reward_model": {"ground_truth": "1"}}""", 1, "prompt", "no message with role")]
    [InlineData("""{"prompt": [{"role": "user", "content": "q"}], "reward_model": {"ground_truth": "1"}, "extra_info": {"index": [1]}}""", 1, "extra_info.index", "expected a string or a number")]
    [InlineData("""{"prompt": [{"role": "user", "content": "q"}], "reward_model": {"ground_truth": "1"}, "data_source": 3}""", 1, "data_source", "expected a string")]
    public void Malformed_lines_name_file_line_and_field(string text, int line, string field, string problem)
    {
        var e = Assert.Throws<DatasetFormatException>(() => Read(text));
        Assert.Equal("data.jsonl", e.FilePath);
        Assert.Equal(line, e.Line);
        Assert.Equal(field, e.Field);
        Assert.StartsWith($"data.jsonl:{line}: field '{field}': ", e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Fact]
    public void A_forced_schema_rejects_the_other_layout()
    {
        var e = Assert.Throws<DatasetFormatException>(() => Read("""{"prompt": "1+1", "answer": "2"}""", JsonlSchema.DapoMath));
        Assert.Equal("prompt", e.Field);
    }

    [Fact]
    public void Reads_a_file_from_disk()
    {
        var path = Path.Combine(Path.GetTempPath(), $"dapo-core-{Guid.NewGuid():N}.jsonl");
        try
        {
            File.WriteAllText(path, DapoLine("Find x.", "3", "1") + "\n" + """{"prompt": "bad"}""" + "\n");
            var e = Assert.Throws<DatasetFormatException>(() => JsonlDatasetReader.ReadFile(path));
            Assert.Equal(path, e.FilePath);
            Assert.Equal(2, e.Line);
            File.WriteAllText(path, DapoLine("Find x.", "3", "1") + "\n");
            Assert.Equal("Find x.", JsonlDatasetReader.ReadFile(path).Examples.Single().Problem);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
