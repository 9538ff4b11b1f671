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
/// The runbook's checks ask Prometheus, Alertmanager and HTTP endpoints, for up to its <c>preDeploy.timeout</c>, before
/// the webhook's transaction begins (<see cref="RunChecksAsync"/>), so a slow or unreachable endpoint holds no database
/// connection and no lock meanwhile: a burst of predeploys while Prometheus is slow would otherwise take every pooled
/// connection, and with them the service's other requests. The verdict is then decided inside the transaction
/// (<see cref="DecideAsync"/>), under a lock per service and environment, so two concurrent <c>predeploy</c> deliveries
/// for one service cannot both see "no other change in flight".
/// </summary>
public sealed class PreDeployGate(RolloutGateDbContext db, PreDeployCheckRunner checks, RunbookCatalog runbooks, TimeProvider time)
{
    public const string OneChangeAtATime = "one-change-at-a-time";
    public const string OwnerRecorded = "owner-recorded";
    public const string DecisionChannelSet = "decision-channel";
    private const int BuiltInRuleCount = 3;

    /// <summary>
    /// The runbook's own checks of a <c>predeploy</c>, each within the runbook's <c>preDeploy.timeout</c>; called outside any
    /// transaction. They judge the moment of the request (or the pipeline's <c>at</c>), never a later wall-clock reading,
    /// with their queries rendered for the deploy's environment (<see cref="QueryPlaceholders"/>): staging's deploy is judged
    /// on staging's series.
    /// </summary>
    public Task<IReadOnlyList<CheckResult>> RunChecksAsync(LoadedRunbook governing, WebhookRequest request, CancellationToken cancellationToken) =>
        checks.RunAsync(
            QueryPlaceholders.ForEnvironment(governing.Runbook, request.Environment).PreDeploy,
            new CheckContext(request.Service, request.Environment, request.At ?? time.GetUtcNow()),
            cancellationToken);

    /// <summary>
    /// The verdict, inside the webhook's transaction: the built-in rules, then <paramref name="checkResults"/>, what
    /// <see cref="RunChecksAsync"/> found; every one goes on the audit record.
    /// </summary>
    public async Task<GateVerdict> DecideAsync(
        DeploymentRow deployment, LoadedRunbook governing, IReadOnlyList<CheckResult> checkResults, WebhookRequest request, List<AuditEntry> audit,
        CancellationToken cancellationToken)
    {
        await db.Database.TakeTurnAsync($"change:{deployment.Service}:{deployment.Environment}", cancellationToken);
        var results = new List<CheckResult>();
        results.Add(await OneChangeAtATimeAsync(deployment, cancellationToken));

        results.Add(string.IsNullOrWhiteSpace(request.Initiator)
            ? CheckResult.Fail(OwnerRecorded, "the webhook names no initiator; every change needs an owner (set \"initiator\")")
            : CheckResult.Pass(OwnerRecorded, $"{request.Initiator} owns this change"));

        var channel = governing.Runbook.DecisionChannel;
        results.Add(string.IsNullOrWhiteSpace(channel)
            ? CheckResult.Fail(DecisionChannelSet, "the runbook names no decision channel")
            : CheckResult.Pass(DecisionChannelSet, $"decisions go to {channel}"));
        results.AddRange(checkResults);

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
    /// hold the next one back: its watch ends then (<see cref="NewerDeploys"/>). A deny names the change that holds it and
    /// what clears it (<see cref="HeldBackBy"/>).
    /// </summary>
    private async Task<CheckResult> OneChangeAtATimeAsync(DeploymentRow deployment, CancellationToken cancellationToken)
    {
        var inFlight = await db.Deployments.AsNoTracking().Include(d => d.RunbookVersion)
            .Where(d => d.Service == deployment.Service && d.Environment == deployment.Environment && d.Id != deployment.Id
                        && DeploymentState.Active.Contains(d.State))
            .OrderBy(d => d.CreatedAt)
            .ToListAsync(cancellationToken);
        var endingOnDeploy = inFlight.Where(d => !HeldBackBy.HoldsBackTheNext(runbooks, d)).ToList();
        if (inFlight.Except(endingOnDeploy).FirstOrDefault() is { } blocking)
        {
            return CheckResult.Fail(OneChangeAtATime, await HeldBackBy.DetailAsync(db, blocking, time.GetUtcNow(), cancellationToken));
        }

        var none = $"no other change of {deployment.Service} in {deployment.Environment} is in flight";
        return CheckResult.Pass(OneChangeAtATime, endingOnDeploy.Count == 0
            ? none
            : $"{none}: the watch of {string.Join(", ", endingOnDeploy.Select(d => $"'{d.Id}'"))} ends when this change is deployed (watch.onNewerDeploy: stop)");
    }
}
