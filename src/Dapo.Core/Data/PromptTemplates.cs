using Dapo.Core.Common;

namespace Dapo.Core.Data;

/// <summary>Turns a problem into the text the policy is prompted with.</summary>
public interface IPromptTemplate
{
    /// <summary>The prompt for <paramref name="problem"/>.</summary>
    string Apply(string problem);
}

/// <summary>
/// The prompt of the DAPO-Math-17K dataset (<see href="https://arxiv.org/abs/2503.14476"/>, §3.5 "Dataset Transformation";
/// the exact text of the published records), which asks for a final line "Answer: ..." that the reward reads.
/// </summary>
public sealed class DapoPromptTemplate : IPromptTemplate
{
    /// <summary>The text before the problem.</summary>
    public const string Prefix =
        "Solve the following math problem step by step. The last line of your response should be of the form " +
        "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n";

    /// <summary>The text after the problem.</summary>
    public const string Suffix = "\n\nRemember to put your answer on its own line after \"Answer:\".";

    /// <inheritdoc />
    public string Apply(string problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        return Prefix + problem + Suffix;
    }

    /// <summary>The problem inside a prompt built by this template (false if <paramref name="prompt"/> is not one).</summary>
    public static bool TryExtractProblem(string prompt, out string problem)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        if (prompt.Length >= Prefix.Length + Suffix.Length
            && prompt.StartsWith(Prefix, StringComparison.Ordinal)
            && prompt.EndsWith(Suffix, StringComparison.Ordinal))
        {
            problem = prompt[Prefix.Length..^Suffix.Length];
            return true;
        }
        problem = prompt;
        return false;
    }
}

/// <summary>
/// A short prompt for tiny character-level models: "Q: {problem}\n", after which the model writes its worked
/// solution ending in "Answer: N". Every character is in <see cref="Text.CharTokenizer.DefaultAlphabet"/>.
/// </summary>
public sealed class ShortPromptTemplate : IPromptTemplate
{
    /// <inheritdoc />
    public string Apply(string problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        return "Q: " + problem + "\n";
    }
}

/// <summary>The problem as is.</summary>
public sealed class RawPromptTemplate : IPromptTemplate
{
    /// <inheritdoc />
    public string Apply(string problem) => problem ?? throw new ArgumentNullException(nameof(problem));
}

/// <summary>Prompt templates by name.</summary>
public static class PromptTemplates
{
    /// <summary>The DAPO-Math-17K template.</summary>
    public const string Dapo = "dapo";

    /// <summary>"Q: {problem}\n" for tiny models.</summary>
    public const string Short = "short";

    /// <summary>No template.</summary>
    public const string Raw = "raw";

    /// <summary>The table.</summary>
    public static NamedRegistry<IPromptTemplate> Registry { get; } = CreateRegistry();

    /// <summary>The template named <paramref name="name"/>.</summary>
    public static IPromptTemplate Get(string name) => Registry.Get(name);

    private static NamedRegistry<IPromptTemplate> CreateRegistry()
    {
        var registry = new NamedRegistry<IPromptTemplate>("prompt template");
        registry.Register(Dapo, new DapoPromptTemplate());
        registry.Register(Short, new ShortPromptTemplate());
        registry.Register(Raw, new RawPromptTemplate());
        return registry;
    }
}
