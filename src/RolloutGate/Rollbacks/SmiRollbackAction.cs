using System.Text.Json.Nodes;
using RolloutGate.Core.Rollbacks;
using RolloutGate.Core.Runbooks;
using RolloutGate.Kubernetes;

namespace RolloutGate.Rollbacks;

/// <summary><c>smi: {trafficSplit, stableBackend}</c>: TrafficSplit backend weights, stable 100 and the rest 0.</summary>
internal sealed class SmiRollbackAction(KubernetesTrafficShift shift)
{
    public Task<RollbackOutcome> ExecuteAsync(SmiRollback smi, RollbackRequest request, CancellationToken cancellationToken) =>
        shift.ShiftAsync(
            $"smi TrafficSplit {request.Mesh.Namespace}/{smi.TrafficSplit}: all traffic to backend {smi.StableBackend}",
            request,
            [KubernetesResource.SmiTrafficSplit],
            smi.TrafficSplit,
            "backends",
            spec => StableTraffic.TrafficSplitBackends(spec?["backends"] as JsonArray, smi.StableBackend),
            cancellationToken);
}
