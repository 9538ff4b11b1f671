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

    /// <summary>
    /// The one line that says so, null when the gate was not bypassed: which checks of the deny failed, and which could
    /// not run (an error: their source did not answer). A deny overridden before the errored ones were kept apart
    /// (<see cref="DeploymentRow.GateErroredChecks"/> null) names all that did not pass as failed, as it was then.
    /// </summary>
    public static string? Describe(DeploymentRow deployment) => deployment.PreDeployGate switch
    {
        Overridden => "deployed although the pre-deploy gate denied it" + Checks(deployment.GateFailedChecks, deployment.GateErroredChecks),
        Skipped => "deployed without a predeploy: its pre-deploy checks were not run",
        _ => null,
    };

    private static string Checks(string[]? failed, string[]? errored)
    {
        var parts = new List<string>();
        if (failed is { Length: > 0 })
        {
            parts.Add($"{string.Join(", ", failed)} failed");
        }

        if (errored is { Length: > 0 })
        {
            parts.Add($"{string.Join(", ", errored)} could not run (error)");
        }

        return parts.Count == 0 ? "" : ": " + string.Join("; ", parts);
    }

    /// <summary>
    /// The names of the checks (built-in rules included) of the deny of <paramref name="deploymentId"/> that failed, and
    /// of those that could not run, each in the order they ran.
    /// </summary>
    public static async Task<(string[] Failed, string[] Errored)> NotPassedChecksAsync(RolloutGateDbContext db, string deploymentId, CancellationToken cancellationToken)
    {
        var results = (await db.AuditEvents.AsNoTracking()
            .Where(e => e.DeploymentId == deploymentId && e.Type == AuditEventTypes.CheckResult)
            .OrderBy(e => e.Id)
            .Select(e => e.Data)
            .ToListAsync(cancellationToken))
            .Select(data => JsonSerializer.Deserialize<CheckResult>(data, AuditTrail.DataJson))
            .OfType<CheckResult>()
            .ToList();
        return (Named(results, CheckStatus.Fail), Named(results, CheckStatus.Error));
    }

    private static string[] Named(List<CheckResult> results, string status) =>
        results.Where(result => result.Status == status).Select(result => result.Name).ToArray();
}
