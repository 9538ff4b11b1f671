using System.Net;
using System.Text.Json.Nodes;
using RolloutGate.Core.Runbooks;
using RolloutGate.Kubernetes;

namespace RolloutGate.Rollbacks;

/// <summary>
/// <c>argoRollouts: {rollout}</c>: aborts the Rollout the way <c>kubectl argo rollouts abort</c> does, a merge patch of
/// <c>{"status":{"abort":true}}</c> on the status subresource; the Argo controller then shifts traffic back to the
/// stable ReplicaSet. Setting a flag is idempotent, so no resourceVersion is needed.
/// <para>
/// An abort only stops an update in progress: "The previous ReplicaSet will be active" (the plugin's help). Once the
/// Rollout is fully promoted, its stable ReplicaSet is the new version's (Argo Rollouts' own test,
/// <c>IsFullyPromoted</c>: <c>status.stableRS == status.currentPodHash</c>), so an abort brings nothing back, and a
/// deployment recorded as rolled back would still serve the version that regressed. The Rollout is read first, and a
/// fully promoted one fails the action, writing nothing, with what would roll it back. A Rollout promoted between that
/// read and the patch is aborted as before.
/// </para>
/// </summary>
internal sealed class ArgoRolloutsRollbackAction(IKubernetesClient kubernetes, RollbackAttempts attempts)
{
    public const string StatusSubresource = "status";

    public Task<RollbackOutcome> ExecuteAsync(ArgoRolloutsRollback argo, RollbackRequest request, CancellationToken cancellationToken)
    {
        var action = $"argoRollouts Rollout {request.Mesh.Namespace}/{argo.Rollout}: abort";
        if (request.Mesh.Namespace is not { Length: > 0 } @namespace)
        {
            return Task.FromResult(KubernetesTrafficShift.MissingNamespace(action));
        }

        return attempts.RunAsync(action, $"the Kubernetes API at {Urls.Shown(kubernetes.BaseAddress)}", request.BeforeEachAttempt, async token =>
        {
            var current = await kubernetes.GetAsync(KubernetesResource.ArgoRollout, @namespace, argo.Rollout, token);
            if (FullyPromotedHash(current) is { } stable)
            {
                throw new RollbackAttemptException(
                    $"the Rollout is fully promoted (status.stableRS is the current pod template hash, {stable}): an abort only stops an update in progress "
                    + "and would bring the previous version back no more; nothing was written. Roll it back with "
                    + $"`kubectl argo rollouts undo {argo.Rollout} -n {@namespace}` or by redeploying the previous version, and give this runbook "
                    + "a `webhook` action to the pipeline for regressions found after the promotion",
                    transient: false);
            }

            var abort = new JsonObject { ["status"] = new JsonObject { ["abort"] = true } };
            JsonObject rollout;
            try
            {
                rollout = await kubernetes.MergePatchAsync(KubernetesResource.ArgoRollout, @namespace, argo.Rollout, abort, token, StatusSubresource);
            }
            catch (KubernetesApiException exception) when (exception.StatusCode == HttpStatusCode.NotFound)
            {
                // As the kubectl plugin does: a Rollout CRD installed without the status subresource takes the patch
                // on the object itself (a Rollout that does not exist answered 404 to the read already).
                rollout = await kubernetes.MergePatchAsync(KubernetesResource.ArgoRollout, @namespace, argo.Rollout, abort, token);
            }

            var abortNow = rollout["status"]?["abort"]?.ToJsonString() ?? "unset";
            if (abortNow != "true")
            {
                // The API server took the patch but the object it answered with is not aborted: a Rollout CRD whose
                // schema has no status.abort prunes it silently. Nothing will move the traffic, so this is no rollback.
                throw new RollbackAttemptException(
                    $"the Kubernetes API accepted the abort but the Rollout answered has status.abort {abortNow} (resourceVersion {rollout["metadata"]?["resourceVersion"]}): "
                    + "its CustomResourceDefinition may not declare status.abort (an old Argo Rollouts CRD prunes it); the traffic was not moved",
                    transient: false);
            }

            return $"status.abort is true (resourceVersion {rollout["metadata"]?["resourceVersion"]}); the Argo Rollouts controller moves traffic back to the stable ReplicaSet";
        }, cancellationToken);
    }

    /// <summary>
    /// The stable pod template hash when <paramref name="rollout"/> is fully promoted (stable is current), else null. A
    /// status the controller wrote before the Rollout's latest spec (<c>status.observedGeneration</c>, a string in Argo
    /// Rollouts, behind <c>metadata.generation</c>: a new version just set) still describes the version before it, so it
    /// does not count as promoted: the abort then stops the update the controller is about to begin.
    /// </summary>
    private static string? FullyPromotedHash(JsonObject rollout)
    {
        var stable = Text(rollout["status"]?["stableRS"]);
        var observed = Text(rollout["status"]?["observedGeneration"]);
        var stale = observed is not null && rollout["metadata"]?["generation"] is JsonValue generation && generation.ToJsonString() != observed;
        return !stale && stable is { Length: > 0 } && stable == Text(rollout["status"]?["currentPodHash"]) ? stable : null;

        static string? Text(JsonNode? node) => node is JsonValue value
            ? value.TryGetValue<string>(out var text) ? text : value.TryGetValue<long>(out var number) ? number.ToString(System.Globalization.CultureInfo.InvariantCulture) : null
            : null;
    }
}
