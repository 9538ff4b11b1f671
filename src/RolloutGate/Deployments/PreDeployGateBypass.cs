using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using RolloutGate.Audit;
using RolloutGate.Checks;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Deployments;

/// <summary>
/// A change deployed without the gate's allow. RolloutGate cannot stop a deploy: when <c>deployed</c> arrives the change
/// is running, so it is watched like any other, and its record says the gate was bypassed (the deployment's
/// <see cref="DeploymentRow.PreDeployGate"/>, a <see cref="AuditEventTypes.GateBypassed"/> event, the root message in
/// the decision channel, the dashboard).
/// </summary>
public static class PreDeployGateBypass
{
    /// <summary>Deployed although its predeploy was denied.</summary>
    public const string Overridden = "overridden";

    /// <summary>Deployed with no predeploy, where the runbook has pre-deploy checks: they were not run.</summary>
    public const string Skipped = "skipped";

    /// <summary>The one line that says so, null when the gate was not bypassed.</summary>
    public static string? Describe(DeploymentRow deployment) => deployment.PreDeployGate switch
    {
        Overridden => "deployed although the pre-deploy gate denied it"
            + (deployment.GateFailedChecks is { Length: > 0 } failed ? $": {string.Join(", ", failed)} failed" : ""),
        Skipped => "deployed without a predeploy: its pre-deploy checks were not run",
        _ => null,
    };

    /// <summary>The names of the checks (built-in rules included) that did not pass in the deny of <paramref name="deploymentId"/>, in the order they ran.</summary>
    public static async Task<string[]> FailedChecksAsync(RolloutGateDbContext db, string deploymentId, CancellationToken cancellationToken)
    {
        var results = await db.AuditEvents.AsNoTracking()
            .Where(e => e.DeploymentId == deploymentId && e.Type == AuditEventTypes.CheckResult)
            .OrderBy(e => e.Id)
            .Select(e => e.Data)
            .ToListAsync(cancellationToken);
        return results
            .Select(data => JsonSerializer.Deserialize<CheckResult>(data, AuditTrail.DataJson))
            .Where(result => result is not null && result.Status != CheckStatus.Pass)
            .Select(result => result!.Name)
            .ToArray();
    }
}
