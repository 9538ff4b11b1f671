using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Runbooks;

namespace RolloutGate.Deployments;

/// <summary>What the deploy of a newer change of a service does to an earlier change's watch (<c>watch.onNewerDeploy</c>).</summary>
public static class NewerDeploys
{
    /// <summary>
    /// Whether <paramref name="earlier"/>'s own pinned runbook version ends its watch when a newer change is deployed;
    /// not when that version no longer parses (it is then left as it is, as under the default <c>keep</c>).
    /// <paramref name="earlier"/> needs its RunbookVersion loaded.
    /// </summary>
    public static bool EndWatchOf(RunbookCatalog runbooks, DeploymentRow earlier) =>
        runbooks.ReadableVersionOf(earlier)?.Watch.OnNewerDeploy == NewerDeployAction.Stop;
}
