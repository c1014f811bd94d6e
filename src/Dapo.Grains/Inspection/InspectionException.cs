namespace Dapo.Grains.Inspection;

/// <summary>Exit codes of dapo-client, the same for every command; what an inspection failure means.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>A bad command line or configuration: a malformed key, conflicting options.</summary>
    public const int Usage = 2;
    /// <summary>What was asked for does not exist: a run, a step, a prompt grain, a silo, the run directory itself.</summary>
    public const int NotFound = 3;
    /// <summary>The cluster or blob storage cannot be reached, refuses us, or does not answer in time.</summary>
    public const int Unavailable = 4;
}

/// <summary>A failure the user can act on: printed as one line, with its exit code.</summary>
public sealed class InspectionException(int exitCode, string message, Exception? inner = null) : Exception(message, inner)
{
    public int ExitCode { get; } = exitCode;
}
