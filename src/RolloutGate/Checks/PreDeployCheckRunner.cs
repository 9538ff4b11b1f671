using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure;

namespace RolloutGate.Checks;

/// <summary>
/// Runs a runbook's pre-deploy checks concurrently under its preDeploy.timeout. Every check gets a result, in the
/// runbook's order: one that throws, or has not answered by the deadline, is an "error" saying why.
/// </summary>
public sealed partial class PreDeployCheckRunner(IEnumerable<IPreDeployCheck> checks, TimeProvider time, ILogger<PreDeployCheckRunner> logger)
{
    private readonly Dictionary<string, IPreDeployCheck> checksByKind = checks.ToDictionary(c => c.Kind, StringComparer.Ordinal);

    /// <exception cref="OperationCanceledException">Only when <paramref name="cancellationToken"/> is cancelled.</exception>
    public async Task<IReadOnlyList<CheckResult>> RunAsync(PreDeploySpec spec, CheckContext context, CancellationToken cancellationToken)
    {
        using var deadline = new CancellationTokenSource(spec.Timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        var results = await Task.WhenAll(spec.Checks.Select(check => RunOneAsync(check, context, spec.Timeout, linked.Token, cancellationToken)));
        return results;
    }

    private async Task<CheckResult> RunOneAsync(
        CheckSpec spec, CheckContext context, TimeSpan timeout, CancellationToken deadline, CancellationToken cancellationToken)
    {
        if (!checksByKind.TryGetValue(spec.Kind, out var check))
        {
            return CheckResult.Error(spec.Name, $"no check of kind '{spec.Kind}' is registered");
        }

        // Task.Run: a check that blocks before its first await cannot hold up the others.
        var work = Task.Run(() => check.RunAsync(spec, context, deadline), CancellationToken.None);
        try
        {
            // WaitAsync: a check that ignores its token is still cut off at the deadline.
            var result = await work.WaitAsync(deadline);
            // The detail quotes other systems: an alert's labels from Alertmanager (which takes alerts from anyone who can
            // reach it), a series' labels from Prometheus. A line break there would start what reads as a line of its own.
            LogCheckRan(logger, spec.Name, result.Status, LogText.OneLine(result.Detail));
            return result;
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            ObserveLater(work);
            LogCheckTimedOut(logger, spec.Name, timeout);
            return CheckResult.Error(spec.Name, $"no answer within the pre-deploy timeout of {CheckFormat.Duration(timeout)}");
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            LogCheckFailed(logger, spec.Name, exception);
            return CheckResult.Error(spec.Name, exception.Message);
        }
    }

    /// <summary>An abandoned check may still fault; observe it so it is not an unobserved task exception.</summary>
    private static void ObserveLater(Task work) =>
        work.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);

    [LoggerMessage(EventId = 1201, Level = LogLevel.Information, Message = "Pre-deploy check {Check}: {Status}: {Detail}")]
    private static partial void LogCheckRan(ILogger logger, string check, string status, string detail);

    [LoggerMessage(EventId = 1202, Level = LogLevel.Warning, Message = "Pre-deploy check {Check} did not answer within {Timeout}")]
    private static partial void LogCheckTimedOut(ILogger logger, string check, TimeSpan timeout);

    [LoggerMessage(EventId = 1203, Level = LogLevel.Warning, Message = "Pre-deploy check {Check} failed to run")]
    private static partial void LogCheckFailed(ILogger logger, string check, Exception exception);
}
