using System.Net;
using System.Text.Json.Nodes;
using RolloutGate.Core.Rollbacks;
using RolloutGate.Core.Runbooks;
using RolloutGate.Kubernetes;

namespace RolloutGate.Rollbacks;

/// <summary>
/// <c>istio: {virtualService, stableSubset}</c>: every HTTP route of this service in the VirtualService to the stable
/// subset only. This service is the runbook's <c>mesh.workload</c> and <c>spec.service</c> in <c>mesh.namespace</c>
/// (<see cref="ServiceHosts"/>); routes to other hosts are left as they are, and the rollback fails, writing nothing,
/// when a route of this service cannot be moved by subset or no route sends to it (<see cref="StableTraffic.IstioHttpRoutes"/>).
/// Before it writes, the DestinationRules of <c>mesh.namespace</c> are listed: when rules for this service exist and
/// none defines the stable subset, every request would answer 503, so the rollback fails writing nothing
/// (<see cref="IstioSubsets.StableSubset"/>). When the subset cannot be checked (no rule for this service in the
/// namespace, or the rules cannot be read, as with a service account allowed only what the action needed before the
/// check), the routes are patched as they were without it, and the detail says the subset was not checked and why.
/// </summary>
internal sealed class IstioRollbackAction(KubernetesTrafficShift shift, IKubernetesClient kubernetes)
{
    public Task<RollbackOutcome> ExecuteAsync(IstioRollback istio, RollbackRequest request, CancellationToken cancellationToken)
    {
        // ShiftAsync rewrites and checks only once it has a namespace, so the namespace is set there.
        ServiceHosts Service() => new(request.Mesh.Namespace!, request.Mesh.Workload, request.Service);
        return shift.ShiftAsync(
            $"istio VirtualService {request.Mesh.Namespace}/{istio.VirtualService}: HTTP routes of {request.Mesh.Workload ?? request.Service} to subset {istio.StableSubset}",
            request,
            [KubernetesResource.IstioVirtualService],
            istio.VirtualService,
            "http",
            spec => StableTraffic.IstioHttpRoutes(spec, Service(), istio.StableSubset),
            cancellationToken,
            token => StableSubsetAsync(istio, Service(), token));
    }

    /// <summary>
    /// Checked before every write, not only when a route gets a destination it did not have: a promoted canary may keep
    /// its stable destination at weight 0 after the subset left the DestinationRule, and one list is cheap.
    /// </summary>
    private async Task<string> StableSubsetAsync(IstioRollback istio, ServiceHosts service, CancellationToken cancellationToken)
    {
        var notChecked = $"subset '{istio.StableSubset}' not checked";
        IReadOnlyList<JsonObject> rules;
        try
        {
            rules = await kubernetes.ListAsync(KubernetesResource.IstioDestinationRule, service.Namespace, cancellationToken);
        }
        catch (KubernetesApiException exception) when (!exception.IsTransient)
        {
            // Transient answers are retried with the whole attempt; any other would not change, and must not stop a
            // rollback that works without the check (a 403 where the RBAC predates it).
            var answer = $"{exception.Message} ({(int)exception.StatusCode}{(exception.Reason is null ? "" : " " + exception.Reason)})";
            return exception.StatusCode == HttpStatusCode.Forbidden
                ? $"{notChecked}: RolloutGate may not list DestinationRules in namespace {service.Namespace} ({answer}); grant list on destinationrules.networking.istio.io as deploy/kubernetes/rolloutgate.yaml does"
                : $"{notChecked}: the DestinationRules of namespace {service.Namespace} could not be listed: {answer}";
        }

        var check = IstioSubsets.StableSubset(rules, service, istio.StableSubset);
        return check.Verdict switch
        {
            StableSubsetVerdict.Missing =>
                throw KubernetesTrafficShift.Refused(KubernetesResource.IstioVirtualService, service.Namespace, istio.VirtualService, check.Detail),
            StableSubsetVerdict.NoDestinationRule =>
                $"{notChecked}: {check.Detail} (Istio may take one from a client's namespace or its root namespace, which RolloutGate does not read)",
            _ => check.Detail,
        };
    }
}
