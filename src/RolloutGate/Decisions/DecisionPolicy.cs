using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using RolloutGate.Audit;
using RolloutGate.Core.Deployments;
using RolloutGate.Core.Runbooks;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Runbooks;
using RolloutGate.Slack;

namespace RolloutGate.Decisions;

/// <summary>
/// What happens when a deployment regresses (runbook <c>rollback.mode</c>): <c>auto</c> decides the rollback at once as
/// <see cref="AutomaticActor"/>; <c>recommend</c> asks the decision channel, and <see cref="ApplyTimeoutsAsync"/> applies
/// <c>onTimeout</c> when nobody answered within <c>approvalTimeout</c>.
/// </summary>
public sealed partial class DecisionPolicy(
    AuditTrail audit,
    DecisionChannelSubscriber channel,
    RunbookCatalog runbooks,
    IServiceScopeFactory scopes,
    IOptionsMonitor<RolloutGateOptions> options,
    TimeProvider time,
    ILogger<DecisionPolicy> logger)
{
    /// <summary>A deployment the watch moved to regressed, with its runbook and the evidence of the regression.</summary>
    public sealed record Regression(DeploymentRow Deployment, Runbook Runbook, IReadOnlyList<MetricEvidence> Evidence);

    public const string AutomaticActor = "rolloutgate";

    /// <summary>The <c>source</c> of a decision that <see cref="ApplyTimeoutsAsync"/> takes, as <see cref="AutomaticActor"/>.</summary>
    public const string TimeoutSource = "timeout";

    /// <summary>"RGAUTORB" as a 64-bit number: serialises the count of automatic rollbacks against its limit.</summary>
    private const long AutomaticBudgetLockKey = 0x5247_4155_544F_5242;

    /// <summary>
    /// For the watch to call inside its transaction, after it moved the deployments of <paramref name="regressions"/>
    /// (tracked by <paramref name="db"/>) to <c>regressed</c> and appended the audit events saying so, all a sweep found
    /// regressed at once, in their order. Everything written here commits with that transaction: each automatic decision,
    /// or each recommendation with its three buttons, in a few statements for them all. The sweep holds the audit trail's
    /// lock meanwhile, and every Slack press and webhook waits for it: with half of 10,000 watches regressing at one t,
    /// two statements per deployment held it for seconds.
    /// </summary>
    public async Task OnRegressedAsync(RolloutGateDbContext db, IReadOnlyList<Regression> regressions, CancellationToken cancellationToken)
    {
        if (db.Database.CurrentTransaction is null)
        {
            throw new InvalidOperationException("OnRegressedAsync runs inside the transaction that moved the deployment to regressed");
        }

        if (regressions.FirstOrDefault(r => r.Deployment.State != DeploymentState.Regressed) is { } unmoved)
        {
            throw new InvalidOperationException($"deployment {unmoved.Deployment.Id} is {unmoved.Deployment.State}, not {DeploymentState.Regressed}");
        }

        var now = time.GetUtcNow();
        // The automatic rollbacks of the last hour are counted once; each one decided here takes a place.
        var taken = regressions.Any(r => r.Runbook.Rollback.Mode == RollbackMode.Auto) ? await AutomaticTakenAsync(db, now, cancellationToken) : null;
        var entries = new List<AuditEntry>();
        var recommendations = new List<ChannelReply>();
        foreach (var (deployment, runbook, evidence) in regressions)
        {
            var held = runbook.Rollback.Mode == RollbackMode.Auto ? Held(taken) : null;
            if (runbook.Rollback.Mode == RollbackMode.Auto && held is null)
            {
                var reason = "automatic rollback: " + string.Join("; ", evidence.Select(e => $"{e.Metric} {e.Verdict ?? "regressed"}"));
                entries.AddRange(DeploymentDecisions.Record(db, deployment, DecisionKinds.Rollback, AutomaticActor, reason,
                    new { kind = DecisionKinds.Rollback, reason, source = "auto", evidence }, now));
                taken++;
                continue;
            }

            if (held is not null)
            {
                entries.Add(new AuditEntry(AuditEventTypes.RollbackHeld, deployment.Id, deployment.Service, AutomaticActor, new { reason = held, evidence }));
            }

            var recommendation = SlackMessages.Recommendation(runbook.DecisionChannel, deployment, runbook, evidence, options.CurrentValue.PublicUrl, held);
            recommendations.Add(new ChannelReply(deployment, runbook, recommendation, $"slack:recommend:{deployment.Id}"));
        }

        await db.SaveChangesAsync(cancellationToken);

        await audit.AppendAsync(db, entries, cancellationToken);
        await channel.EnqueueRepliesAsync(db, recommendations, cancellationToken);
    }

    /// <summary>
    /// The automatic rollbacks, every service's, of the hour before <paramref name="now"/>; null when there is no limit
    /// (<see cref="RollbackOptions.AutomaticPerHour"/>). Counted under a lock held to the caller's commit, so that two
    /// replicas cannot both take the last place.
    /// </summary>
    private async Task<int?> AutomaticTakenAsync(RolloutGateDbContext db, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (options.CurrentValue.Rollback.AutomaticPerHour <= 0)
        {
            return null;
        }

        await db.Database.ExecuteSqlRawAsync($"SELECT pg_advisory_xact_lock({AutomaticBudgetLockKey})", cancellationToken);
        var since = now - TimeSpan.FromHours(1);
        return await db.Decisions.CountAsync(
            d => d.Actor == AutomaticActor && d.Kind == DecisionKinds.Rollback && d.At > since, cancellationToken);
    }

    /// <summary>
    /// Null when an automatic rollback may go ahead with <paramref name="taken"/> of the last hour's places taken (null: no
    /// limit); otherwise why it is held for a person: they have reached <see cref="RollbackOptions.AutomaticPerHour"/>.
    /// </summary>
    private string? Held(int? taken)
    {
        var limit = options.CurrentValue.Rollback.AutomaticPerHour;
        return taken is not { } count || count < limit
            ? null
            : $"{count} automatic rollbacks in the last hour, all services together, have reached the limit of {limit} " +
              "(RolloutGate__Rollback__AutomaticPerHour): so many regressions at once more often mean a monitoring problem " +
              "than that many bad changes, so this one waits for a person";
    }

    /// <summary>
    /// When <see cref="ApplyTimeoutsAsync"/> decides <c>onTimeout</c> for a regressed deployment under
    /// <c>rollback.mode: recommend</c> (null in auto mode, which decides at once): <c>approvalTimeout</c> after it regressed.
    /// updated_at is when the deployment entered regressed: nothing else writes a regressed deployment.
    /// </summary>
    public static DateTimeOffset? DecideBy(DeploymentRow deployment, RollbackSpec rollback) =>
        rollback.Mode == RollbackMode.Recommend ? deployment.UpdatedAt + rollback.ApprovalTimeout : null;

    /// <summary>
    /// Applies <c>onTimeout</c> (rollback, or keep as a dismiss) to every recommended deployment still regressed after its
    /// runbook's approvalTimeout, as <see cref="AutomaticActor"/>. Safe on several replicas: the state machine lets only
    /// the first decision through. Returns how many it decided.
    /// </summary>
    public async Task<int> ApplyTimeoutsAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        List<DeploymentRow> waiting;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<RolloutGateDbContext>();
            waiting = await db.Deployments.AsNoTracking().Include(d => d.RunbookVersion)
                .Where(d => d.State == DeploymentState.Regressed).ToListAsync(cancellationToken);
        }

        var decided = 0;
        foreach (var deployment in waiting)
        {
            RollbackSpec rollback;
            try
            {
                rollback = runbooks.VersionOf(deployment).Rollback;
            }
            catch (StoredRunbookUnreadableException ex)
            {
                // Recorded under a version an older RolloutGate accepted and this one refuses: its approvalTimeout and
                // onTimeout are unknown, so nothing is decided for it (a person still can), and the others are decided.
                // Let through, the exception ended every pass there, and no recommendation was ever decided on time-out.
                LogNoTimeout(logger, deployment.Id, ex.Message);
                continue;
            }

            if (DecideBy(deployment, rollback) is not { } deadline || deadline > now)
            {
                continue;
            }

            var kind = rollback.OnTimeout == TimeoutAction.Rollback ? DecisionKinds.Rollback : DecisionKinds.Dismiss;
            await using var scope = scopes.CreateAsyncScope();
            var decisions = scope.ServiceProvider.GetRequiredService<DeploymentDecisions>();
            var result = await decisions.DecideAsync(deployment.Id, kind, AutomaticActor,
                $"no decision within {DurationText.Format(rollback.ApprovalTimeout)}; the runbook says onTimeout: {rollback.OnTimeout.ToString().ToLowerInvariant()}",
                TimeoutSource, cancellationToken);
            decided += result is Microsoft.AspNetCore.Http.HttpResults.Ok<StateResponse> ? 1 : 0;
        }

        return decided;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Approval time-out of {DeploymentId} cannot be applied: {Reason}; it waits for a person's decision (rollback, dismiss or stop over the HTTP API)")]
    private static partial void LogNoTimeout(ILogger logger, string deploymentId, string reason);
}

/// <summary>Applies approval time-outs every <see cref="Interval"/>.</summary>
public sealed partial class DecisionTimeouts(DecisionPolicy policy, TimeProvider time, DatabaseOutageLog outage, ILogger<DecisionTimeouts> logger)
    : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Interval, time, stoppingToken);
                var decided = await policy.ApplyTimeoutsAsync(time.GetUtcNow(), stoppingToken);
                outage.Answered("Approval time-outs");
                if (decided > 0)
                {
                    LogDecided(logger, decided);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                if (!outage.Handled("Approval time-outs", ex))
                {
                    LogFailed(logger, ex);
                }
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Applied the runbook's onTimeout to {Count} unanswered recommendations")]
    private static partial void LogDecided(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Applying approval time-outs failed; trying again at the next interval")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
