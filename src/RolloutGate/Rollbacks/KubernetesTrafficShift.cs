using System.Net;
using System.Text.Json.Nodes;
using RolloutGate.Core.Rollbacks;
using RolloutGate.Core.Runbooks;
using RolloutGate.Kubernetes;

namespace RolloutGate.Rollbacks;

/// <summary>
/// The read-rewrite-write a traffic rollback does on one mesh resource: GET it, compute the new routing list from its
/// spec with a pure <see cref="StableTraffic"/> rewrite, and merge-patch that list back together with the resourceVersion
/// it was computed from, so a concurrent edit answers 409 (and a fresh read) instead of being overwritten. A
/// <c>beforePatch</c> check runs in the same attempt once there is something to write: it refuses by throwing
/// <see cref="Refused"/>'s exception, else its sentence is added to the outcome's detail. The resource is looked for as
/// each of <c>resources</c> in turn (<see cref="FindAsync"/>), and written as the one it was found as.
/// </summary>
internal sealed class KubernetesTrafficShift(IKubernetesClient kubernetes, RollbackAttempts attempts)
{
    public Task<RollbackOutcome> ShiftAsync(
        string action,
        IReadOnlyList<KubernetesResource> resources,
        string? @namespace,
        string name,
        string listField,
        Func<JsonObject?, StableTrafficShift> rewrite,
        CancellationToken cancellationToken,
        Func<CancellationToken, Task<string>>? beforePatch = null)
    {
        if (string.IsNullOrEmpty(@namespace))
        {
            return Task.FromResult(MissingNamespace(action));
        }

        return attempts.RunAsync(action, $"the Kubernetes API at {Urls.Shown(kubernetes.BaseAddress)}", async token =>
        {
            var (resource, current) = await FindAsync(resources, @namespace, name, token);
            // Where it was found, when it could have been elsewhere.
            var found = resources.Count > 1 ? $"{resource}: " : "";
            var resourceVersion = current["metadata"]?["resourceVersion"]?.GetValue<string>();
            var shift = rewrite(current["spec"] as JsonObject);
            if (shift.Problem is not null)
            {
                throw Refused(resource, @namespace, name, shift.Problem);
            }

            var summary = Summary(shift, listField);
            if (!shift.Changed)
            {
                return $"{found}already all traffic to stable at resourceVersion {resourceVersion}; nothing written ({summary})";
            }

            var beforePatchDetail = beforePatch is null ? "" : "; " + await beforePatch(token);

            // A merge patch (RFC 7386) replaces a list as a whole, it cannot address one element: so the patch carries
            // the complete new list, and the resourceVersion makes sure that list was computed from what is stored.
            var patch = new JsonObject
            {
                ["metadata"] = new JsonObject { ["resourceVersion"] = resourceVersion },
                ["spec"] = new JsonObject { [listField] = shift.Updated },
            };
            var updated = await kubernetes.MergePatchAsync(resource, @namespace, name, patch, token);
            return $"{found}patched spec.{listField} (resourceVersion {resourceVersion} -> {updated["metadata"]?["resourceVersion"]}; {summary}){beforePatchDetail}";
        }, cancellationToken);
    }

    /// <summary>
    /// The object <paramref name="name"/> as the first of <paramref name="resources"/> that has it. With more than one, an
    /// answer that it is not there (a 404: no such object, or a type the API server does not serve at any of its versions)
    /// sends the search on to the next; when none has it, the rollback fails at once naming every place looked and what
    /// the API server answered there. Any other answer (403, 5xx) stops the search as it would a single read: the object
    /// may be there. A single type's 404 fails with the API server's own message, as before.
    /// </summary>
    private async Task<(KubernetesResource Resource, JsonObject Current)> FindAsync(
        IReadOnlyList<KubernetesResource> resources, string @namespace, string name, CancellationToken cancellationToken)
    {
        var answers = new List<string>();
        foreach (var resource in resources)
        {
            try
            {
                return (resource, await kubernetes.GetAsync(resource, @namespace, name, cancellationToken));
            }
            catch (KubernetesApiException exception) when (exception.StatusCode == HttpStatusCode.NotFound && resources.Count > 1)
            {
                answers.Add(exception.Message);
            }
        }

        throw new RollbackAttemptException(
            $"{resources[0].Kind} {@namespace}/{name} is in none of the places RolloutGate looks ({string.Join(", ", resources)}): {string.Join("; ", answers)}",
            transient: false);
    }

    /// <summary>A rollback that cannot be done safely: it fails at once (trying again would find the same), writing nothing.</summary>
    internal static RollbackAttemptException Refused(KubernetesResource resource, string @namespace, string name, string problem) =>
        new($"{resource.Kind} {@namespace}/{name} was not changed: {problem}", transient: false);

    internal static RollbackOutcome MissingNamespace(string action) =>
        new(false, action, "the runbook's mesh.namespace is not set, so the Kubernetes resource cannot be found", 0);

    private static string Summary(StableTrafficShift shift, string listField) =>
        shift.Untouched == 0
            ? $"{shift.Rewritten} {listField} entries to stable"
            : $"{shift.Rewritten} {listField} entries to stable, {shift.Untouched} not routing to this service left as they were";
}
