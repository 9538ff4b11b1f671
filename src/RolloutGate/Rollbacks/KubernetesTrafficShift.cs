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
/// each of <c>resources</c> (<see cref="FindAsync"/>), and every one found is rewritten, each as the type it was found as.
/// </summary>
internal sealed class KubernetesTrafficShift(IKubernetesClient kubernetes, RollbackAttempts attempts)
{
    public Task<RollbackOutcome> ShiftAsync(
        string action,
        RollbackRequest request,
        IReadOnlyList<KubernetesResource> resources,
        string name,
        string listField,
        Func<JsonObject?, StableTrafficShift> rewrite,
        CancellationToken cancellationToken,
        Func<CancellationToken, Task<string>>? beforePatch = null)
    {
        if (request.Mesh.Namespace is not { Length: > 0 } @namespace)
        {
            return Task.FromResult(MissingNamespace(action));
        }

        return attempts.RunAsync(action, $"the Kubernetes API at {Urls.Shown(kubernetes.BaseAddress)}", request.BeforeEachAttempt, async token =>
        {
            // Every rewrite is computed, and any refused, before anything is written.
            var (objects, unread) = await FindAsync(resources, @namespace, name, token);
            var found = objects.Select(f => (f.Resource, f.Current, Shift: rewrite(f.Current["spec"] as JsonObject))).ToList();
            foreach (var (resource, _, shift) in found)
            {
                if (shift.Problem is not null)
                {
                    throw Refused(resource, @namespace, name, Where(resource) + shift.Problem);
                }
            }

            var details = new List<string>();
            string? beforePatchDetail = null;
            foreach (var (resource, current, shift) in found)
            {
                var resourceVersion = current["metadata"]?["resourceVersion"]?.GetValue<string>();
                var summary = Summary(shift, listField);
                if (!shift.Changed)
                {
                    details.Add($"{Where(resource)}already all traffic to stable at resourceVersion {resourceVersion}; nothing written ({summary})");
                    continue;
                }

                beforePatchDetail ??= beforePatch is null ? "" : "; " + await beforePatch(token);

                // A merge patch (RFC 7386) replaces a list as a whole, it cannot address one element: so the patch carries
                // the complete new list, and the resourceVersion makes sure that list was computed from what is stored.
                var patch = new JsonObject
                {
                    ["metadata"] = new JsonObject { ["resourceVersion"] = resourceVersion },
                    ["spec"] = new JsonObject { [listField] = shift.Updated },
                };
                var updated = await kubernetes.MergePatchAsync(resource, @namespace, name, patch, token);
                details.Add($"{Where(resource)}patched spec.{listField} (resourceVersion {resourceVersion} -> {updated["metadata"]?["resourceVersion"]}; {summary})");
            }

            return string.Join("; ", details.Concat(unread)) + beforePatchDetail;
        }, cancellationToken);

        // Where it was found, when it could have been elsewhere.
        string Where(KubernetesResource resource) => resources.Count > 1 ? $"{resource}: " : "";
    }

    /// <summary>
    /// The object <paramref name="name"/> as each of <paramref name="resources"/> that has it: Linkerd's proxies route
    /// with the HTTPRoutes of both groups that attach to a Service (its policy controller sends them all, oldest first),
    /// so one of each name may both carry traffic. With more than one type, an answer that it is not there (a 404: no such
    /// object, or a type the API server does not serve at any of its versions) leaves that type out; when none has it, the
    /// rollback fails at once naming every place looked and what the API server answered there. Any other answer (403,
    /// 5xx) fails the read as it would a single one: the object may be there. A single type's 404 fails with the API
    /// server's own message, as before. One exception, in <c>Unread</c>: a type the service account may not read (403)
    /// after an earlier one has the object. That object is rolled back, and the outcome's detail says which type was not
    /// read and why: a ClusterRole from before Linkerd's own HTTPRoute was looked at (it lacks policy.linkerd.io) then
    /// still rolls the Gateway API route back, as it did, instead of failing the rollback of a regression.
    /// </summary>
    private async Task<(IReadOnlyList<(KubernetesResource Resource, JsonObject Current)> Found, IReadOnlyList<string> Unread)> FindAsync(
        IReadOnlyList<KubernetesResource> resources, string @namespace, string name, CancellationToken cancellationToken)
    {
        var found = new List<(KubernetesResource, JsonObject)>();
        var answers = new List<string>();
        var unread = new List<string>();
        foreach (var resource in resources)
        {
            try
            {
                found.Add((resource, await kubernetes.GetAsync(resource, @namespace, name, cancellationToken)));
            }
            catch (KubernetesApiException exception) when (exception.StatusCode == HttpStatusCode.NotFound && resources.Count > 1)
            {
                answers.Add(exception.Message);
            }
            catch (KubernetesApiException exception) when (exception.StatusCode == HttpStatusCode.Forbidden && found.Count > 0)
            {
                unread.Add($"{resource}: not read, so a {resource.Kind} {@namespace}/{name} there, if any, was not rolled back ({exception.Message}; "
                    + $"grant get and patch on {resource} to roll it back too)");
            }
        }

        return found.Count > 0
            ? (found, unread)
            : throw new RollbackAttemptException(
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
