using RolloutGate.Runbooks;

namespace RolloutGate.Deployments;

/// <summary>One pre-deploy check's result as the pipeline sees it (CONTRACT section 4).</summary>
public sealed record CheckResultView(string Name, string Status, string Detail);

public sealed record PreDeployResponse(string DeploymentId, string Verdict, IReadOnlyList<CheckResultView> Checks, RunbookRef Runbook);

public sealed record DeployedResponse(string DeploymentId, string State, DateTimeOffset WatchUntil);

public sealed record StateResponse(string DeploymentId, string State);
