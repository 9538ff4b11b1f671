using RolloutGate.Core.Rollbacks;
using RolloutGate.Core.Runbooks;
using RolloutGate.Kubernetes;

namespace RolloutGate.Rollbacks;

/// <summary><c>istio: {virtualService, stableSubset}</c>: every HTTP route of the VirtualService to the stable subset only.</summary>
internal sealed class IstioRollbackAction(KubernetesTrafficShift shift)
{
    public Task<RollbackOutcome> ExecuteAsync(IstioRollback istio, RollbackRequest request, CancellationToken cancellationToken) =>
        shift.ShiftAsync(
            $"istio VirtualService {request.Mesh.Namespace}/{istio.VirtualService}: all HTTP routes to subset {istio.StableSubset}",
            KubernetesResource.IstioVirtualService,
            request.Mesh.Namespace,
            istio.VirtualService,
            "http",
            http => StableTraffic.IstioHttpRoutes(http, istio.StableSubset),
            cancellationToken);
}
