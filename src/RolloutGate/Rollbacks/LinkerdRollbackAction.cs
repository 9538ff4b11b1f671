using System.Text.Json.Nodes;
using RolloutGate.Core.Rollbacks;
using RolloutGate.Core.Runbooks;
using RolloutGate.Kubernetes;

namespace RolloutGate.Rollbacks;

/// <summary>
/// <c>linkerd: {httpRoute, stableBackend}</c>: HTTPRoute weights, stable 100 and the rest 0. The route is the Gateway API
/// one of that name and Linkerd's own (<c>policy.linkerd.io</c>, which Linkerd 2.13 and 2.14 route with and every Linkerd
/// installs), whichever exist; both have the same rules and backendRefs. When both exist both are rolled back: Linkerd's
/// policy controller gives the proxies every HTTPRoute of either group attached to the Service, ordered oldest first
/// (https://linkerd.io/2.15/reference/httproute: "Both ... may coexist within the same cluster, and both can be used to
/// configure policies"), so either may carry the canary's traffic, depending on its matches and its age.
/// </summary>
internal sealed class LinkerdRollbackAction(KubernetesTrafficShift shift)
{
    public Task<RollbackOutcome> ExecuteAsync(LinkerdRollback linkerd, RollbackRequest request, CancellationToken cancellationToken) =>
        shift.ShiftAsync(
            $"linkerd HTTPRoute {request.Mesh.Namespace}/{linkerd.HttpRoute}: all traffic to backend {linkerd.StableBackend}",
            request,
            [KubernetesResource.GatewayHttpRoute, KubernetesResource.LinkerdHttpRoute],
            linkerd.HttpRoute,
            "rules",
            spec => StableTraffic.HttpRouteRules(spec?["rules"] as JsonArray, request.Mesh.Namespace!, linkerd.StableBackend),
            cancellationToken);
}
