using Microsoft.EntityFrameworkCore;
using RolloutGate.Audit;
using RolloutGate.Core.Deployments;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Runbooks;
using RolloutGate.Webhooks;

namespace RolloutGate.Deployments;

/// <summary>The allow/deny verdict of a <c>predeploy</c>, with every check that went into it.</summary>
public sealed record GateVerdict(bool Allowed, IReadOnlyList<CheckResultView> Checks);

/// <summary>Runs a runbook's pre-deploy checks; the built-in rules of <see cref="PreDeployGate"/> come first.</summary>
public interface IPreDeployCheckRunner
{
    Task<IReadOnlyList<CheckResultView>> RunAsync(LoadedRunbook runbook, WebhookRequest request, DateTimeOffset at, CancellationToken cancellationToken);
}

/// <summary>
/// Decides a <c>predeploy</c>: the built-in rules every runbook gets, then the runbook's own checks.
/// Runs inside the webhook's transaction, under a lock per service and environment, so two concurrent
/// <c>predeploy</c> deliveries for one service cannot both see "no other change in flight".
/// </summary>
public sealed class PreDeployGate(RolloutGateDbContext db, IEnumerable<IPreDeployCheckRunner> runners, TimeProvider time)
{
    public const string OneChangeAtATime = "one-change-at-a-time";
    public const string OwnerRecorded = "owner-recorded";
    public const string DecisionChannelSet = "decision-channel";
    private const int BuiltInRuleCount = 3;

    public async Task<GateVerdict> DecideAsync(
        DeploymentRow deployment, LoadedRunbook governing, WebhookRequest request, List<AuditEntry> audit, CancellationToken cancellationToken)
    {
        var lockKey = $"change:{deployment.Service}:{deployment.Environment}";
        await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock(hashtextextended({lockKey}, 0))", cancellationToken);

        var results = new List<CheckResultView>();
        var blocking = await db.Deployments.AsNoTracking()
            .Where(d => d.Service == deployment.Service && d.Environment == deployment.Environment && d.Id != deployment.Id
                        && DeploymentState.Active.Contains(d.State))
            .OrderBy(d => d.CreatedAt)
            .Select(d => new { d.Id, d.State })
            .FirstOrDefaultAsync(cancellationToken);
        results.Add(blocking is null
            ? new CheckResultView(OneChangeAtATime, "pass", $"no other change of {deployment.Service} in {deployment.Environment} is in flight")
            : new CheckResultView(OneChangeAtATime, "fail", $"deployment '{blocking.Id}' of {deployment.Service} in {deployment.Environment} is still {blocking.State}"));

        results.Add(string.IsNullOrWhiteSpace(request.Initiator)
            ? new CheckResultView(OwnerRecorded, "fail", "the webhook names no initiator; every change needs an owner (set \"initiator\")")
            : new CheckResultView(OwnerRecorded, "pass", $"{request.Initiator} owns this change"));

        var channel = governing.Runbook.DecisionChannel;
        results.Add(string.IsNullOrWhiteSpace(channel)
            ? new CheckResultView(DecisionChannelSet, "fail", "the runbook names no decision channel")
            : new CheckResultView(DecisionChannelSet, "pass", $"decisions go to {channel}"));

        if (governing.Runbook.PreDeploy.Checks.Count > 0)
        {
            var runner = runners.LastOrDefault();
            if (runner is null)
            {
                results.AddRange(governing.Runbook.PreDeploy.Checks.Select(check =>
                    new CheckResultView(check.Name, "error", $"no runner for {check.Kind} checks is registered")));
            }
            else
            {
                results.AddRange(await runner.RunAsync(governing, request, request.At ?? time.GetUtcNow(), cancellationToken));
            }
        }

        audit.AddRange(results.Select(result => new AuditEntry(
            AuditEventTypes.CheckResult, deployment.Id, deployment.Service, request.Initiator, result)));

        // The pipeline sees the runbook's own checks, plus any built-in rule that failed: a deny always names its reason.
        var builtIn = results.Take(BuiltInRuleCount).ToList();
        var shown = builtIn.Where(rule => rule.Status != "pass").Concat(results.Skip(BuiltInRuleCount)).ToList();
        return new GateVerdict(results.All(result => result.Status == "pass"), shown);
    }
}
