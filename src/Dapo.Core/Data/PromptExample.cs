namespace Dapo.Core.Data;

/// <summary>One training or evaluation problem.</summary>
/// <param name="Id">Stable identifier (DAPO: <c>extra_info.index</c>; otherwise file:line or a content hash).</param>
/// <param name="Problem">The problem text without any prompt template (apply one from <see cref="PromptTemplates"/>).</param>
/// <param name="Answer">The ground truth given to the reward function.</param>
/// <param name="DataSource">Where it came from (DAPO: <c>data_source</c>, e.g. "math_dapo").</param>
public sealed record PromptExample(string Id, string Problem, string Answer, string DataSource);

/// <summary>A malformed dataset record: names the file, the line and the field.</summary>
public sealed class DatasetFormatException : Exception
{
    /// <summary>An error at <paramref name="filePath"/>:<paramref name="line"/> in <paramref name="field"/>.</summary>
    public DatasetFormatException(string filePath, int line, string field, string problem, Exception? inner = null)
        : base($"{filePath}:{line}: field '{field}': {problem}", inner)
    {
        FilePath = filePath;
        Line = line;
        Field = field;
    }

    /// <summary>The file (or stream name).</summary>
    public string FilePath { get; }

    /// <summary>1-based line number.</summary>
    public int Line { get; }

    /// <summary>The offending field as a JSON path (e.g. "reward_model.ground_truth"), or "(line)" for the whole
    /// line.</summary>
    public string Field { get; }
}
