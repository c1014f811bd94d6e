using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Dapo.Cluster.Store;

/// <summary>Which cluster store a silo or the client uses.</summary>
public sealed class ClusterStoreOptions
{
    /// <summary>"sqlite" (embedded default: a file) or "postgres".</summary>
    public string Kind { get; set; } = "sqlite";

    /// <summary>The SQLite file, for kind sqlite.</summary>
    public string? SqlitePath { get; set; }

    /// <summary>An Npgsql connection string, for kind postgres (Host=...;Port=...;Username=...;Password=...;Database=...).</summary>
    public string? ConnectionString { get; set; }

    /// <summary>How long a transaction that fails for a transient reason is retried (a database restart, say).</summary>
    public TimeSpan RetryBudget { get; set; } = StoreRetryOptions.Default.Budget;

    /// <summary>Open the store read-only (the client console): every write is refused by the database itself.</summary>
    public bool ReadOnly { get; set; }
}

/// <summary>Checks <see cref="ClusterStoreOptions"/> before any work starts; each message names the option and the fix.</summary>
public static class ClusterStoreOptionsValidator
{
    public static IReadOnlyList<string> Validate(ClusterStoreOptions o)
    {
        var errors = new List<string>();
        switch (o.Kind)
        {
            case "sqlite":
                if (string.IsNullOrWhiteSpace(o.SqlitePath))
                    errors.Add("Store:SqlitePath is empty: name the SQLite file of the run (the embedded store).");
                break;
            case "postgres":
                if (string.IsNullOrWhiteSpace(o.ConnectionString))
                    errors.Add("Store:ConnectionString is empty: give an Npgsql connection string (Host=...;Database=...;Username=...).");
                else
                {
                    try
                    {
                        var b = new NpgsqlConnectionStringBuilder(o.ConnectionString);
                        if (string.IsNullOrEmpty(b.Host)) errors.Add("Store:ConnectionString has no Host.");
                    }
                    catch (ArgumentException e)
                    {
                        errors.Add($"Store:ConnectionString is malformed ({Redaction.Redact(e.Message)}): " +
                                   $"{Redaction.Redact(o.ConnectionString)}");
                    }
                }
                break;
            default:
                errors.Add($"Store:Kind is '{o.Kind}': use 'sqlite' (embedded) or 'postgres'.");
                break;
        }
        if (o.RetryBudget < TimeSpan.Zero) errors.Add("Store:RetryBudget is negative: use a duration such as 00:01:00.");
        return errors;
    }
}

/// <summary>Creates the configured store.</summary>
public static class ClusterStores
{
    public static IClusterStore Create(ClusterStoreOptions options, ILogger? logger = null)
    {
        var errors = ClusterStoreOptionsValidator.Validate(options);
        if (errors.Count > 0) throw new ArgumentException(string.Join(Environment.NewLine, errors), nameof(options));
        var retry = StoreRetryOptions.Default with { Budget = options.RetryBudget };
        logger ??= NullLogger.Instance;
        return options.Kind == "sqlite"
            ? new SqliteClusterStore(Path.GetFullPath(options.SqlitePath!), options.ReadOnly, retry, logger)
            : new PostgresClusterStore(options.ConnectionString!, options.ReadOnly, retry, logger);
    }
}

/// <summary>Hides secrets (passwords, account keys, signatures) in connection strings before they reach a log.</summary>
public static partial class Redaction
{
    public static string Redact(string text) =>
        SecretPattern().Replace(text, m => $"{m.Groups[1].Value}=***");

    [GeneratedRegex(@"\b(Password|Pwd|AccountKey|SharedAccessSignature|sig|AccessToken)\s*=\s*[^;&\s]*", RegexOptions.IgnoreCase)]
    private static partial Regex SecretPattern();
}
