using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Runbooks;

namespace RolloutGate.Slack;

public static class DeploymentRunbook
{
    /// <summary>
    /// The runbook version that governs a deployment (loaded with its RunbookVersion), even when its file has since been
    /// removed: decisions about a running change still need its decision channel, owner and approvers.
    /// </summary>
    public static Runbook GoverningRunbook(this RunbookCatalog catalog, DeploymentRow deployment)
    {
        if (catalog.FindByName(deployment.RunbookVersion.Name) is { } inForce)
        {
            return catalog.VersionOf(deployment, inForce);
        }

        var stored = deployment.RunbookVersion;
        var parsed = RunbookParser.Parse(stored.Content, stored.FilePath);
        return parsed.Runbook ?? throw new InvalidOperationException(
            $"stored runbook version {stored.Name} v{stored.Version} no longer parses: {string.Join("; ", parsed.Errors)}");
    }
}
