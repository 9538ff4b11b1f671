using RolloutGate.Checks;
using RolloutGate.Runbooks;

namespace RolloutGate.Deployments;

public sealed record PreDeployResponse(string DeploymentId, string Verdict, IReadOnlyList<CheckResult> Checks, RunbookRef Runbook);

public sealed record DeployedResponse(string DeploymentId, string State, DateTimeOffset WatchUntil);

public sealed record StateResponse(string DeploymentId, string State);
