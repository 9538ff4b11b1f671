using System.Text.Json.Nodes;

namespace RolloutGate.Core.Rollbacks;

public enum StableSubsetVerdict
{
    /// <summary>A DestinationRule for this service defines the stable subset.</summary>
    Defined,

    /// <summary>DestinationRules for this service exist and none defines the stable subset: Envoy would answer 503.</summary>
    Missing,

    /// <summary>No DestinationRule in the namespace is for this service, so the subset cannot be checked there.</summary>
    NoDestinationRule,
}

/// <summary>What the DestinationRules of the mesh namespace say about the stable subset; <see cref="Detail"/> says it for people.</summary>
public sealed record StableSubsetCheck(StableSubsetVerdict Verdict, string Detail);

/// <summary>
/// Whether the subset an Istio rollback sends all traffic to exists. A subset is defined by a DestinationRule whose
/// <c>host</c> is the service; a route to a subset no DestinationRule defines finds no cluster, and Envoy answers 503
/// for every request it carries. Istio looks for a client's DestinationRule in the client's namespace, then in the
/// service's namespace, then in the root namespace (<c>istio-system</c> by default); the service's namespace is the
/// one RolloutGate reads (<c>mesh.namespace</c>, where the VirtualService is), so a rule found there decides for the
/// clients in that namespace and for every client without a rule of its own. Rules for the same host in one namespace
/// are merged by Istio, so the subset counts as defined when any of them defines it.
/// </summary>
public static class IstioSubsets
{
    /// <summary>
    /// <paramref name="destinationRules"/> are the DestinationRules of <see cref="ServiceHosts.Namespace"/> as the
    /// Kubernetes API lists them; one is this service's when its <c>spec.host</c> is one of the service's hosts
    /// (<see cref="ServiceHosts"/>: a short name counts in the rule's own namespace, as in a VirtualService). A wildcard
    /// host (<c>*.shop.svc.cluster.local</c>) is not matched: it is not this service's by name.
    /// </summary>
    public static StableSubsetCheck StableSubset(IEnumerable<JsonObject> destinationRules, ServiceHosts service, string stableSubset)
    {
        ArgumentNullException.ThrowIfNull(destinationRules);
        ArgumentNullException.ThrowIfNull(service);
        ArgumentException.ThrowIfNullOrEmpty(stableSubset);
        var ours = destinationRules
            .Where(rule => service.Matches(StableTraffic.Text(rule["spec"]?["host"])))
            .Select(rule => (Name: $"{StableTraffic.Text(rule["metadata"]?["namespace"]) ?? service.Namespace}/{StableTraffic.Text(rule["metadata"]?["name"])}", Subsets: Subsets(rule)))
            .ToList();
        if (ours.Count == 0)
        {
            return new StableSubsetCheck(StableSubsetVerdict.NoDestinationRule, $"no DestinationRule in namespace {service.Namespace} is for {service.Name}");
        }

        var defining = ours.Where(rule => rule.Subsets.Contains(stableSubset, StringComparer.Ordinal)).Select(rule => rule.Name).ToList();
        if (defining.Count > 0)
        {
            return new StableSubsetCheck(StableSubsetVerdict.Defined, $"{Rules(defining)} {(defining.Count == 1 ? "defines" : "define")} subset '{stableSubset}'");
        }

        var found = ours.Count == 1
            ? $"DestinationRule {ours[0].Name} has {SubsetList(ours[0].Subsets)}"
            : $"DestinationRules {string.Join(", ", ours.Select(rule => $"{rule.Name} ({SubsetList(rule.Subsets)})"))} are for {service.Name}";
        return new StableSubsetCheck(StableSubsetVerdict.Missing,
            $"{found}; no '{stableSubset}': Envoy would answer 503 to every request routed there; roll this service back by other means");
    }

    private static string Rules(List<string> names) => (names.Count == 1 ? "DestinationRule " : "DestinationRules ") + string.Join(", ", names);

    private static string SubsetList(List<string> subsets) => subsets.Count == 0 ? "no subsets" : "subsets " + string.Join(", ", subsets);

    private static List<string> Subsets(JsonObject rule) =>
        rule["spec"]?["subsets"] is JsonArray subsets
            ? subsets.OfType<JsonObject>().Select(subset => StableTraffic.Text(subset["name"])).OfType<string>().ToList()
            : [];
}
