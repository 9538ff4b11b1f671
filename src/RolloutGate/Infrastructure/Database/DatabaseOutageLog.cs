using System.Collections.Concurrent;
using RolloutGate.Api;

namespace RolloutGate.Infrastructure.Database;

/// <summary>
/// What the background loops (watch sweep, outbox, rollbacks, approval time-outs, runbook scan, clock offset) say when a round fails
/// because the database is unavailable: one warning line per loop at most every <see cref="Every"/>, with how many
/// failed rounds it stands for, instead of an error with a stack trace every round. Each loop retries on its own and
/// catches up once the database is back, so an outage is worth a line, not a page; and a line when a loop's round succeeds
/// again after one (<see cref="Answered"/>), so that the log says the outage is over. Other failures are the caller's to log.
/// </summary>
public sealed partial class DatabaseOutageLog(ILogger<DatabaseOutageLog> logger, TimeProvider time)
{
    public static readonly TimeSpan Every = TimeSpan.FromSeconds(30);

    /// <summary>Per loop in an outage: since when, when it was last logged, failed rounds since then and in all.</summary>
    private readonly ConcurrentDictionary<string, (DateTimeOffset First, DateTimeOffset Logged, int Since, int Rounds)> loops = new();

    /// <summary>
    /// True when <paramref name="exception"/> is the database being unavailable: it is then logged here (throttled), with
    /// <paramref name="reason"/> (when the caller can say more than the database's message) or the database's message.
    /// </summary>
    public bool Handled(string loop, Exception exception, string? reason = null)
    {
        if (DatabaseUnavailableHandler.Unavailable(exception) is not { } database)
        {
            return false;
        }

        var now = time.GetUtcNow();
        var log = false;
        var rounds = 0;
        loops.AddOrUpdate(loop,
            _ => { log = true; rounds = 1; return (now, now, 0, 1); },
            (_, seen) =>
            {
                if (now - seen.Logged < Every)
                {
                    return (seen.First, seen.Logged, seen.Since + 1, seen.Rounds + 1);
                }

                log = true;
                rounds = seen.Since + 1;
                return (seen.First, now, 0, seen.Rounds + 1);
            });
        if (log)
        {
            LogUnavailable(logger, loop, rounds, reason ?? database.Message);
        }

        return true;
    }

    /// <summary>
    /// A round of <paramref name="loop"/> succeeded: after an outage logged by <see cref="Handled"/>, one line says the
    /// database answers again, how long the outage lasted and how many rounds failed.
    /// </summary>
    public void Answered(string loop)
    {
        if (loops.TryRemove(loop, out var outage))
        {
            LogAnswersAgain(logger, loop, (int)Math.Ceiling((time.GetUtcNow() - outage.First).TotalSeconds), outage.Rounds);
        }
    }

    /// <summary>
    /// Runs a background loop's <paramref name="round"/> at once (after one interval when not <paramref name="roundAtOnce"/>)
    /// and then every <paramref name="interval"/> of <paramref name="time"/> until <paramref name="stoppingToken"/>: a round that fails because the database is unavailable
    /// is logged here, any other failure by <paramref name="failed"/>, and the loop goes on either way. It ends, without an
    /// exception, when <paramref name="stoppingToken"/> is cancelled: a background service whose ExecuteAsync ends cancelled
    /// while its host is not stopping (the service stopped on its own, or a host that failed to start disposed) is a fault
    /// to the host, which logs it as "BackgroundService failed" and stops itself.
    /// </summary>
    public async Task RunEveryAsync(
        string loop, TimeSpan interval, TimeProvider time, Func<CancellationToken, Task> round, Action<Exception> failed, CancellationToken stoppingToken,
        bool roundAtOnce = true)
    {
        using var timer = new PeriodicTimer(interval, time);
        try
        {
            if (!roundAtOnce && !await timer.WaitForNextTickAsync(stoppingToken))
            {
                return;
            }

            do
            {
                try
                {
                    await round(stoppingToken);
                    Answered(loop);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    if (!Handled(loop, ex))
                    {
                        failed(ex);
                    }
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopped: a clean end.
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Loop}: the database is unavailable ({Reason}); {Rounds} round(s) failed since the last such line, retrying")]
    private static partial void LogUnavailable(ILogger logger, string loop, int rounds, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Loop}: the database answers again, after {Seconds} s unavailable ({Rounds} round(s) failed)")]
    private static partial void LogAnswersAgain(ILogger logger, string loop, int seconds, int rounds);
}
