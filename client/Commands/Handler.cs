using System.CommandLine;

using Dapo.Grains.Inspection;

namespace Dapo.Client.Commands;

/// <summary>
/// Runs a command's handler with its read-only session, and turns what the user can act on (a missing run, an
/// unreachable store, a malformed key) into one line on stderr and the command's exit code.
/// </summary>
internal static class Handler
{
    public static void Set(Command command, Func<ParseResult, InspectionSession, CancellationToken, Task<int>> handler) =>
        command.SetAction(async (result, cancellationToken) =>
        {
            try
            {
                var configuration = ClientConfiguration.Resolve(result);
                await using var session = await ClientSession.OpenAsync(configuration, cancellationToken);
                return await handler(result, session, cancellationToken);
            }
            catch (InspectionException e)
            {
                return Fail(e);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return ExitCodes.Ok;  // Ctrl+C ends `watch` and `metrics --follow`: the way out, not a failure
            }
        });

    public static int Fail(InspectionException e)
    {
        Console.Error.WriteLine($"dapo-client: {e.Message.ReplaceLineEndings(" ")}");
        return e.ExitCode;
    }

    /// <summary>
    /// After a long-running command (`metrics --follow`, `watch`) lost its cluster: opens it again, retrying for
    /// <see cref="ClientOptions.ConnectTimeout"/>. An embedded run whose silo stopped is then read as history; a
    /// cluster that stays away ends the command with <paramref name="lost"/>.
    /// </summary>
    public static async Task ReconnectAsync(InspectionSession session, InspectionException lost, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + session.ReopenWithin;
        while (true)
        {
            try
            {
                await session.ReopenAsync(cancellationToken);
                return;
            }
            catch (InspectionException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken);
            }
            catch (InspectionException e)
            {
                throw new InspectionException(e.ExitCode, $"{lost.Message}; then: {e.Message}", e);
            }
        }
    }

    public static bool Json(ParseResult result) => result.GetValue(GlobalOptions.Json);
}
