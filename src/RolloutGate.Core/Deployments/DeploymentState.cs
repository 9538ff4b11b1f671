namespace RolloutGate.Core.Deployments;

/// <summary>The states of CONTRACT section 5, spelled as the API spells them.</summary>
public static class DeploymentState
{
    public const string Checking = "checking";
    public const string Denied = "denied";
    public const string Allowed = "allowed";
    public const string Watching = "watching";
    public const string Regressed = "regressed";
    public const string RollingBack = "rolling-back";
    public const string RolledBack = "rolled-back";
    public const string Kept = "kept";
    public const string Stopped = "stopped";
    public const string Completed = "completed";
    public const string Cancelled = "cancelled";

    public static readonly IReadOnlyList<string> All =
        [Checking, Denied, Allowed, Watching, Regressed, RollingBack, RolledBack, Kept, Stopped, Completed, Cancelled];

    /// <summary>States in which a change is still in flight for its service and environment.</summary>
    public static readonly IReadOnlyList<string> Active = [Checking, Allowed, Watching, Regressed, RollingBack];

    public static bool IsKnown(string state) => All.Contains(state, StringComparer.Ordinal);

    public static bool IsFinal(string state) =>
        state is Denied or RolledBack or Kept or Stopped or Completed or Cancelled;
}
