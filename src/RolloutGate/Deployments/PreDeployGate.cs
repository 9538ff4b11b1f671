using Microsoft.EntityFrameworkCore;
using RolloutGate.Audit;
using RolloutGate.Checks;
using RolloutGate.Core.Deployments;
using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Runbooks;
using RolloutGate.Webhooks;

namespace RolloutGate.Deployments;

/// <summary>The allow/deny verdict of a <c>predeploy</c>, with every check that went into it.</summary>
public sealed record GateVerdict(bool Allowed, IReadOnlyList<CheckResult> Checks);

/// <summary>
/// Decides a <c>predeploy</c>: the built-in rules every runbook gets, then the runbook's own checks.
/// Runs inside the webhook's transaction, under a lock per service and environment, so two concurrent
/// <c>predeploy</c> deliveries for one service cannot both see "no other change in flight".
/// </summary>
public sealed class PreDeployGate(RolloutGateDbContext db, PreDeployCheckRunner checks, RunbookCatalog runbooks, TimeProvider time)
{
    public const string OneChangeAtATime = "one-change-at-a-time";
    public const string OwnerRecorded = "owner-recorded";
    public const string DecisionChannelSet = "decision-channel";
    private const int BuiltInRuleCount = 3;

    /// <summary>How long past the checks' timeout a <c>predeploy</c>'s transaction may wait for the service.</summary>
    private static readonly TimeSpan IdleBeyondChecks = TimeSpan.FromMinutes(1);

    public async Task<GateVerdict> DecideAsync(
        DeploymentRow deployment, LoadedRunbook governing, WebhookRequest request, List<AuditEntry> audit, CancellationToken cancellationToken)
    {
        await db.Database.TakeTurnAsync($"change:{deployment.Service}:{deployment.Environment}", cancellationToken);
        // The checks ask Prometheus, Alertmanager and HTTP endpoints while the transaction waits, up to the runbook's
        // preDeploy.timeout: the session's idle_in_transaction_session_timeout (60 s, DatabaseExtensions.LostClientOptions,
        // or the operator's) is raised for this transaction alone to that plus a minute, never lowered nor switched on.
        var idle = (long)(governing.Runbook.PreDeploy.Timeout + IdleBeyondChecks).TotalMilliseconds;
        await db.Database.ExecuteSqlAsync($"""
            SELECT set_config('idle_in_transaction_session_timeout', {idle}::text, true) FROM pg_settings
            WHERE name = 'idle_in_transaction_session_timeout' AND setting::bigint BETWEEN 1 AND {idle} - 1
            """, cancellationToken);

        var results = new List<CheckResult>();
        results.Add(await OneChangeAtATimeAsync(deployment, cancellationToken));

        results.Add(string.IsNullOrWhiteSpace(request.Initiator)
            ? CheckResult.Fail(OwnerRecorded, "the webhook names no initiator; every change needs an owner (set \"initiator\")")
            : CheckResult.Pass(OwnerRecorded, $"{request.Initiator} owns this change"));

        var channel = governing.Runbook.DecisionChannel;
        results.Add(string.IsNullOrWhiteSpace(channel)
            ? CheckResult.Fail(DecisionChannelSet, "the runbook names no decision channel")
            : CheckResult.Pass(DecisionChannelSet, $"decisions go to {channel}"));

        // Checks judge the moment of the request (or the pipeline's "at"), never a later wall-clock reading.
        var context = new CheckContext(deployment.Service, deployment.Environment, request.At ?? time.GetUtcNow());
        // Their queries rendered for this environment (QueryPlaceholders): staging's deploy is judged on staging's series.
        var preDeploy = QueryPlaceholders.ForEnvironment(governing.Runbook, deployment.Environment).PreDeploy;
        results.AddRange(await checks.RunAsync(preDeploy, context, cancellationToken));

        audit.AddRange(results.Select(result => new AuditEntry(
            AuditEventTypes.CheckResult, deployment.Id, deployment.Service, request.Initiator, result)));

        // The pipeline sees the runbook's own checks, plus any built-in rule that failed: a deny always names its reason.
        var builtIn = results.Take(BuiltInRuleCount).ToList();
        var shown = builtIn.Where(rule => rule.Status != CheckStatus.Pass).Concat(results.Skip(BuiltInRuleCount)).ToList();
        return new GateVerdict(results.All(result => result.Status == CheckStatus.Pass), shown);
    }

    /// <summary>
    /// The built-in rule: no other change of the service and environment in flight. A change that is only watching, under a
    /// runbook version that ends its watch when the next change is deployed (<c>watch.onNewerDeploy: stop</c>), does not
    /// hold the next one back: its watch ends then (<see cref="NewerDeploys"/>).
    /// </summary>
    private async Task<CheckResult> OneChangeAtATimeAsync(DeploymentRow deployment, CancellationToken cancellationToken)
    {
        var inFlight = await db.Deployments.AsNoTracking().Include(d => d.RunbookVersion)
            .Where(d => d.Service == deployment.Service && d.Environment == deployment.Environment && d.Id != deployment.Id
                        && DeploymentState.Active.Contains(d.State))
            .OrderBy(d => d.CreatedAt)
            .ToListAsync(cancellationToken);
        var endingOnDeploy = inFlight.Where(d => d.State == DeploymentState.Watching && NewerDeploys.EndWatchOf(runbooks, d)).ToList();
        if (inFlight.Except(endingOnDeploy).FirstOrDefault() is { } blocking)
        {
            return CheckResult.Fail(OneChangeAtATime, $"deployment '{blocking.Id}' of {deployment.Service} in {deployment.Environment} is still {blocking.State}");
        }

        var none = $"no other change of {deployment.Service} in {deployment.Environment} is in flight";
        return CheckResult.Pass(OneChangeAtATime, endingOnDeploy.Count == 0
            ? none
            : $"{none}: the watch of {string.Join(", ", endingOnDeploy.Select(d => $"'{d.Id}'"))} ends when this change is deployed (watch.onNewerDeploy: stop)");
    }
}
