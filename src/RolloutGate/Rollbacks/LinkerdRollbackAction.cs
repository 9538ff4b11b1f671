using System.Text.Json.Nodes;
using RolloutGate.Core.Rollbacks;
using RolloutGate.Core.Runbooks;
using RolloutGate.Kubernetes;

namespace RolloutGate.Rollbacks;

/// <summary><c>linkerd: {httpRoute, stableBackend}</c>: Gateway API HTTPRoute weights, stable 100 and the rest 0.</summary>
internal sealed class LinkerdRollbackAction(KubernetesTrafficShift shift)
{
    public Task<RollbackOutcome> ExecuteAsync(LinkerdRollback linkerd, RollbackRequest request, CancellationToken cancellationToken) =>
        shift.ShiftAsync(
            $"linkerd HTTPRoute {request.Mesh.Namespace}/{linkerd.HttpRoute}: all traffic to backend {linkerd.StableBackend}",
            KubernetesResource.GatewayHttpRoute,
            request.Mesh.Namespace,
            linkerd.HttpRoute,
            "rules",
            spec => StableTraffic.HttpRouteRules(spec?["rules"] as JsonArray, request.Mesh.Namespace!, linkerd.StableBackend),
            cancellationToken);
}
