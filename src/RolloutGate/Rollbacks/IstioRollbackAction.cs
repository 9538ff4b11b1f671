using RolloutGate.Core.Rollbacks;
using RolloutGate.Core.Runbooks;
using RolloutGate.Kubernetes;

namespace RolloutGate.Rollbacks;

/// <summary>
/// <c>istio: {virtualService, stableSubset}</c>: every HTTP route of this service in the VirtualService to the stable
/// subset only. This service is the runbook's <c>mesh.workload</c> and <c>spec.service</c> in <c>mesh.namespace</c>
/// (<see cref="ServiceHosts"/>); routes to other hosts are left as they are, and the rollback fails, writing nothing,
/// when a route of this service cannot be moved by subset or no route sends to it (<see cref="StableTraffic.IstioHttpRoutes"/>).
/// </summary>
internal sealed class IstioRollbackAction(KubernetesTrafficShift shift)
{
    public Task<RollbackOutcome> ExecuteAsync(IstioRollback istio, RollbackRequest request, CancellationToken cancellationToken) =>
        shift.ShiftAsync(
            $"istio VirtualService {request.Mesh.Namespace}/{istio.VirtualService}: HTTP routes of {request.Mesh.Workload ?? request.Service} to subset {istio.StableSubset}",
            KubernetesResource.IstioVirtualService,
            request.Mesh.Namespace,
            istio.VirtualService,
            "http",
            // ShiftAsync rewrites only once it has a namespace, so the namespace is set here.
            spec => StableTraffic.IstioHttpRoutes(spec, new ServiceHosts(request.Mesh.Namespace!, request.Mesh.Workload, request.Service), istio.StableSubset),
            cancellationToken);
}
