using System.CommandLine;

namespace Dapo.Client.Commands;

/// <summary>
/// Runs a command's handler with its read-only session, and turns what the user can act on (a missing run, an
/// unreachable store, a malformed key) into one line on stderr and the command's exit code.
/// </summary>
internal static class Handler
{
    public static void Set(Command command, Func<ParseResult, ClientSession, CancellationToken, Task<int>> handler) =>
        command.SetAction(async (result, cancellationToken) =>
        {
            try
            {
                var configuration = ClientConfiguration.Resolve(result);
                await using var session = await ClientSession.OpenAsync(configuration, cancellationToken);
                return await handler(result, session, cancellationToken);
            }
            catch (ClientException e)
            {
                return Fail(e);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return ExitCodes.Ok;  // Ctrl+C ends `watch` and `metrics --follow`: the way out, not a failure
            }
        });

    public static int Fail(ClientException e)
    {
        Console.Error.WriteLine($"dapo-client: {e.Message.ReplaceLineEndings(" ")}");
        return e.ExitCode;
    }

    public static bool Json(ParseResult result) => result.GetValue(GlobalOptions.Json);
}
