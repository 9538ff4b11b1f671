using System.Text.Json.Serialization;
using RolloutGate.Checks;
using RolloutGate.Runbooks;

namespace RolloutGate.Deployments;

public sealed record PreDeployResponse(string DeploymentId, string Verdict, IReadOnlyList<CheckResult> Checks, RunbookRef Runbook);

/// <summary>
/// <paramref name="PreDeployGate"/> says how the change was deployed without the gate's allow, as the deployment's view
/// shows it (one shape under one name); absent when it was allowed. <paramref name="Superseded"/> names the earlier changes
/// of the service whose watch this deploy ended (see <c>WebhookProcessor.SupersedeAsync</c>); absent when there were none.
/// <paramref name="SupersededBy"/> names the newer change that had already replaced this one when its late <c>deployed</c>
/// arrived, so that its watch ended at once (state <c>stopped</c>; <c>WebhookProcessor.EndIfReplacedAsync</c>); absent
/// otherwise.
/// </summary>
public sealed record DeployedResponse(
    string DeploymentId,
    string State,
    DateTimeOffset WatchUntil,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] PreDeployGateView? PreDeployGate = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? Superseded = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? SupersededBy = null);

public sealed record StateResponse(string DeploymentId, string State);
