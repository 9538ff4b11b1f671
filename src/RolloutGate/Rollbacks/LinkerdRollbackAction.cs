using System.Text.Json.Nodes;
using RolloutGate.Core.Rollbacks;
using RolloutGate.Core.Runbooks;
using RolloutGate.Kubernetes;

namespace RolloutGate.Rollbacks;

/// <summary>
/// <c>linkerd: {httpRoute, stableBackend}</c>: HTTPRoute weights, stable 100 and the rest 0. The route is the Gateway API
/// one of that name, or else Linkerd's own (<c>policy.linkerd.io</c>, which Linkerd 2.13 and 2.14 route with and every
/// Linkerd installs), looked for in that order; both have the same rules and backendRefs.
/// </summary>
internal sealed class LinkerdRollbackAction(KubernetesTrafficShift shift)
{
    public Task<RollbackOutcome> ExecuteAsync(LinkerdRollback linkerd, RollbackRequest request, CancellationToken cancellationToken) =>
        shift.ShiftAsync(
            $"linkerd HTTPRoute {request.Mesh.Namespace}/{linkerd.HttpRoute}: all traffic to backend {linkerd.StableBackend}",
            [KubernetesResource.GatewayHttpRoute, KubernetesResource.LinkerdHttpRoute],
            request.Mesh.Namespace,
            linkerd.HttpRoute,
            "rules",
            spec => StableTraffic.HttpRouteRules(spec?["rules"] as JsonArray, request.Mesh.Namespace!, linkerd.StableBackend),
            cancellationToken);
}
