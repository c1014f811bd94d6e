using Dapo.Core.Common;
using System.Text.Json;

namespace Dapo.Core.Data;

/// <summary>Which record layout a JSONL file uses.</summary>
public enum JsonlSchema
{
    /// <summary>Decide per line: a list-valued "prompt" is DAPO-Math, a string-valued one is simple.</summary>
    Auto,

    /// <summary>DAPO-Math-17K: <c>data_source</c>, <c>prompt</c> = [{role, content}], <c>ability</c>,
    /// <c>reward_model.ground_truth</c>, <c>extra_info.index</c>.</summary>
    DapoMath,

    /// <summary><c>{"prompt": "...", "answer": "..."}</c> with optional <c>id</c> and <c>data_source</c>.</summary>
    Simple,
}

/// <summary>The examples of a dataset file and what reading it dropped.</summary>
/// <param name="Source">The file read.</param>
/// <param name="Examples">Distinct problems in file order (first occurrence kept).</param>
/// <param name="RecordsRead">Non-blank lines read.</param>
/// <param name="DuplicatesDropped">Records whose problem text had been seen before (the published DAPO set repeats
/// each prompt about 100 times).</param>
/// <param name="ConflictingDuplicates">Of those, how many had a different answer than the kept record.</param>
public sealed record DatasetLoadResult(
    string Source, IReadOnlyList<PromptExample> Examples, int RecordsRead, int DuplicatesDropped, int ConflictingDuplicates);

/// <summary>
/// Reads prompt datasets from JSON Lines, de-duplicating by problem text. Any malformed line fails with a
/// <see cref="DatasetFormatException"/> naming file, line and field. For DAPO-Math records the problem is taken out of
/// the DAPO template (<see cref="DapoPromptTemplate.TryExtractProblem"/>) so that any template can be applied later;
/// a user message that is not in that template is kept whole.
/// </summary>
public static class JsonlDatasetReader
{
    /// <summary>Reads <paramref name="path"/>.</summary>
    public static DatasetLoadResult ReadFile(string path, JsonlSchema schema = JsonlSchema.Auto)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var reader = new StreamReader(path);
        return Read(reader, path, schema);
    }

    /// <summary>Reads JSON Lines from <paramref name="reader"/>; <paramref name="source"/> names it in errors.</summary>
    public static DatasetLoadResult Read(TextReader reader, string source, JsonlSchema schema = JsonlSchema.Auto)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(source);
        var examples = new List<PromptExample>();
        var byProblem = new Dictionary<string, PromptExample>(StringComparer.Ordinal);
        int lineNumber = 0, records = 0, duplicates = 0, conflicts = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            records++;
            var example = ParseLine(line, source, lineNumber, schema);
            if (byProblem.TryGetValue(example.Problem, out var kept))
            {
                duplicates++;
                if (kept.Answer != example.Answer) conflicts++;
                continue;
            }
            byProblem.Add(example.Problem, example);
            examples.Add(example);
        }
        return new DatasetLoadResult(source, examples, records, duplicates, conflicts);
    }

    private static PromptExample ParseLine(string line, string source, int lineNumber, JsonlSchema schema)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            throw new DatasetFormatException(source, lineNumber, "(line)", $"not valid JSON: {JsonErrors.Describe(e, oneLine: true)}", e);
        }
        using (document)
        {
            var record = new Record(document.RootElement, source, lineNumber);
            if (document.RootElement.ValueKind != JsonValueKind.Object) record.Fail("(line)", "expected a JSON object");
            var prompt = record.Required("prompt");
            var dapo = schema switch
            {
                JsonlSchema.DapoMath => true,
                JsonlSchema.Simple => false,
                _ => prompt.ValueKind switch
                {
                    JsonValueKind.Array => true,
                    JsonValueKind.String => false,
                    _ => throw record.Error("prompt", $"expected a string or a list of {{role, content}} messages, got {Kind(prompt)}"),
                },
            };
            return dapo ? ParseDapo(record, prompt) : ParseSimple(record, prompt);
        }
    }

    private static PromptExample ParseDapo(Record record, JsonElement prompt)
    {
        if (prompt.ValueKind != JsonValueKind.Array) record.Fail("prompt", $"expected a list of {{role, content}} messages, got {Kind(prompt)}");
        string? content = null;
        var index = 0;
        foreach (var message in prompt.EnumerateArray())
        {
            var path = $"prompt[{index++}]";
            if (message.ValueKind != JsonValueKind.Object) record.Fail(path, $"expected a {{role, content}} object, got {Kind(message)}");
            var role = record.String(message, "role", path + ".role");
            var text = record.String(message, "content", path + ".content");
            if (role == "user") content = text;
        }
        if (content is null) record.Fail("prompt", "no message with role \"user\"");
        DapoPromptTemplate.TryExtractProblem(content, out var problem);

        var rewardModel = record.Required("reward_model");
        if (rewardModel.ValueKind != JsonValueKind.Object) record.Fail("reward_model", $"expected an object, got {Kind(rewardModel)}");
        var answer = record.Scalar(rewardModel, "ground_truth", "reward_model.ground_truth");
        var dataSource = record.OptionalString("data_source") ?? "math_dapo";
        record.OptionalString("ability");
        string? id = null;
        if (record.Root.TryGetProperty("extra_info", out var extra) && extra.ValueKind != JsonValueKind.Null)
        {
            if (extra.ValueKind != JsonValueKind.Object) record.Fail("extra_info", $"expected an object, got {Kind(extra)}");
            if (extra.TryGetProperty("index", out _)) id = record.Scalar(extra, "index", "extra_info.index");
        }
        return new PromptExample(id ?? $"{record.Source}:{record.Line}", problem, answer, dataSource);
    }

    private static PromptExample ParseSimple(Record record, JsonElement prompt)
    {
        if (prompt.ValueKind != JsonValueKind.String) record.Fail("prompt", $"expected a string, got {Kind(prompt)}");
        var problem = prompt.GetString()!;
        if (problem.Length == 0) record.Fail("prompt", "is empty");
        var answer = record.Scalar(record.Root, "answer", "answer");
        var id = record.Root.TryGetProperty("id", out _) ? record.Scalar(record.Root, "id", "id") : $"{record.Source}:{record.Line}";
        var dataSource = record.OptionalString("data_source") ?? "jsonl";
        return new PromptExample(id, problem, answer, dataSource);
    }

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "a list",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => e.ValueKind.ToString(),
    };

    private readonly record struct Record(JsonElement Root, string Source, int Line)
    {
        public DatasetFormatException Error(string field, string problem) => new(Source, Line, field, problem);

        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        public void Fail(string field, string problem) => throw Error(field, problem);

        public JsonElement Required(string name)
        {
            if (!Root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) Fail(name, "is missing");
            return value;
        }

        public string String(JsonElement parent, string name, string path)
        {
            if (!parent.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) Fail(path, "is missing");
            if (value.ValueKind != JsonValueKind.String) Fail(path, $"expected a string, got {Kind(value)}");
            return value.GetString()!;
        }

        /// <summary>A string, or a number as written (answers and ids are sometimes numeric).</summary>
        public string Scalar(JsonElement parent, string name, string path)
        {
            if (!parent.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) Fail(path, "is missing");
            var text = value.ValueKind switch
            {
                JsonValueKind.String => value.GetString()!,
                JsonValueKind.Number => value.GetRawText(),
                _ => throw Error(path, $"expected a string or a number, got {Kind(value)}"),
            };
            if (text.Length == 0) Fail(path, "is empty");
            return text;
        }

        public string? OptionalString(string name)
        {
            if (!Root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
            if (value.ValueKind != JsonValueKind.String) Fail(name, $"expected a string, got {Kind(value)}");
            return value.GetString();
        }
    }
}
