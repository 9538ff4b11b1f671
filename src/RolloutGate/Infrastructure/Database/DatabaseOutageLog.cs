using System.Collections.Concurrent;
using RolloutGate.Api;

namespace RolloutGate.Infrastructure.Database;

/// <summary>
/// What the background loops (watch sweep, outbox, rollbacks, approval time-outs, runbook scan, clock offset) say when a round fails
/// because the database is unavailable: one warning line per loop at most every <see cref="Every"/>, with how many
/// failed rounds it stands for, instead of an error with a stack trace every round. Each loop retries on its own and
/// catches up once the database is back, so an outage is worth a line, not a page. Other failures are the caller's to log.
/// </summary>
public sealed partial class DatabaseOutageLog(ILogger<DatabaseOutageLog> logger, TimeProvider time)
{
    public static readonly TimeSpan Every = TimeSpan.FromSeconds(30);

    private readonly ConcurrentDictionary<string, (DateTimeOffset Logged, int Since)> loops = new();

    /// <summary>True when <paramref name="exception"/> is the database being unavailable: it is then logged here (throttled).</summary>
    public bool Handled(string loop, Exception exception)
    {
        if (DatabaseUnavailableHandler.Unavailable(exception) is not { } database)
        {
            return false;
        }

        var now = time.GetUtcNow();
        var log = false;
        var rounds = 0;
        loops.AddOrUpdate(loop,
            _ => { log = true; rounds = 1; return (now, 0); },
            (_, seen) =>
            {
                if (now - seen.Logged < Every)
                {
                    return (seen.Logged, seen.Since + 1);
                }

                log = true;
                rounds = seen.Since + 1;
                return (now, 0);
            });
        if (log)
        {
            LogUnavailable(logger, loop, rounds, database.Message);
        }

        return true;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Loop}: the database is unavailable ({Reason}); {Rounds} round(s) failed since the last such line, retrying")]
    private static partial void LogUnavailable(ILogger logger, string loop, int rounds, string reason);
}
