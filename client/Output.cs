using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using Spectre.Console;

using Dapo.Grains.Inspection;

namespace Dapo.Client;

/// <summary>Where commands print: JSON for scripts, or Spectre.Console tables for people.</summary>
internal static class Output
{
    private static readonly JsonSerializerOptions Indented = Options(indented: true);
    private static readonly JsonSerializerOptions Compact = Options(indented: false);

    private static JsonSerializerOptions Options(bool indented) => new()
    {
        WriteIndented = indented,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DictionaryKeyPolicy = null,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        // Prompts and responses hold '+', '<', quotes: keep them readable (this JSON is never embedded in HTML).
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>One JSON document (a whole view).</summary>
    public static void Json<T>(T value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, Indented));

    /// <summary>One JSON object on one line (a stream of views: metrics --follow, watch).</summary>
    public static void JsonLine<T>(T value)
    {
        Console.Out.WriteLine(JsonSerializer.Serialize(value, Compact));
        Console.Out.Flush();
    }

    /// <summary>A dim first line naming what the client reads (live grains or an embedded run's history), in one line.</summary>
    public static void Source(string source) => AnsiConsole.MarkupLineInterpolated($"[grey]{source}[/]");
}

/// <summary>Tables of one look: a rule under the headings, no boxes, two spaces between columns (to fit 80 columns).</summary>
internal static class Tables
{
    public static Table New(string title, params string[] headings)
    {
        var table = new Table().Border(TableBorder.Simple).Title(title);
        foreach (var heading in headings) table.AddColumn(new TableColumn($"[bold]{Markup.Escape(heading)}[/]") { Padding = new Padding(0, 0, 1, 0) });
        return table;
    }

    /// <summary>Right-aligns the columns at <paramref name="indices"/> (numbers).</summary>
    public static Table Right(this Table table, params int[] indices)
    {
        foreach (var i in indices) table.Columns[i].RightAligned();
        return table;
    }
}

/// <summary>Plain-text phrases shared by the commands' tables and the dashboard.</summary>
internal static class Describe
{
    /// <summary>"12/40" for a running run (the step in progress), "40/40" once it completed.</summary>
    public static string Step(string status, int step, int completed, int? total) =>
        $"{(status == "completed" ? completed : step)}{(total is { } t ? $"/{t}" : "")}";

    public static string Step(RunStatusView r) => Step(r.Status, r.Step, r.CompletedSteps, r.TotalSteps);
}

/// <summary>How numbers, ages and sizes read in tables.</summary>
internal static class Format
{
    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    public static string Age(long milliseconds)
    {
        if (milliseconds < 0) return "-" + Age(-milliseconds);
        var t = TimeSpan.FromMilliseconds(milliseconds);
        return t.TotalSeconds < 10 ? string.Create(C, $"{t.TotalSeconds:F1}s")
            : t.TotalMinutes < 1 ? string.Create(C, $"{(int)t.TotalSeconds}s")
            : t.TotalHours < 1 ? string.Create(C, $"{(int)t.TotalMinutes}m{t.Seconds:D2}s")
            : t.TotalDays < 1 ? string.Create(C, $"{(int)t.TotalHours}h{t.Minutes:D2}m")
            : string.Create(C, $"{(int)t.TotalDays}d{t.Hours:D2}h");
    }

    public static string Seconds(double? seconds) => seconds is { } s ? Age((long)Math.Round(s * 1000)) : "-";

    public static string Bytes(long bytes) =>
        bytes < 1024 ? string.Create(C, $"{bytes} B")
        : bytes < 1024 * 1024 ? string.Create(C, $"{bytes / 1024.0:F1} KiB")
        : bytes < 1024L * 1024 * 1024 ? string.Create(C, $"{bytes / (1024.0 * 1024):F1} MiB")
        : string.Create(C, $"{bytes / (1024.0 * 1024 * 1024):F2} GiB");

    public static string Number(double? value, string format = "F3") => value is { } v ? v.ToString(format, C) : "-";

    public static string Integer(double? value) => value is { } v ? v.ToString("N0", C) : "-";

    public static string Percent(double? value) => value is { } v ? v.ToString("P0", C).Replace(" ", "", StringComparison.Ordinal) : "-";

    public static string Time(long unixMilliseconds) =>
        DateTimeOffset.FromUnixTimeMilliseconds(unixMilliseconds).ToLocalTime().ToString("HH:mm:ss", C);

    public static string Int(int value) => value.ToString(C);

    /// <summary>A sparkline of the last <paramref name="width"/> values, scaled between their min and max.</summary>
    public static string Sparkline(IReadOnlyList<double?> values, int width)
    {
        const string ticks = "▁▂▃▄▅▆▇█";
        var shown = values.TakeLast(width).ToList();
        var known = shown.Where(v => v is not null).Select(v => v!.Value).ToList();
        if (known.Count == 0) return new string(' ', Math.Min(width, shown.Count));
        var (min, max) = (known.Min(), known.Max());
        return string.Concat(shown.Select(v => v is not { } x ? ' '
            : max - min < 1e-12 ? ticks[3]
            : ticks[(int)Math.Round((x - min) / (max - min) * (ticks.Length - 1))]));
    }
}
