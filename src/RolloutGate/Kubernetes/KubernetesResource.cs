namespace RolloutGate.Kubernetes;

/// <summary>
/// A namespaced custom resource type as the API server serves it: <c>/apis/{Group}/{Version}/namespaces/{ns}/{Plural}/{name}</c>,
/// and without the name the collection of its objects in that namespace.
/// </summary>
public sealed record KubernetesResource(string Group, string Version, string Plural, string Kind)
{
    public static readonly KubernetesResource IstioVirtualService = new("networking.istio.io", "v1", "virtualservices", "VirtualService");

    /// <summary>Read only (listed), to check that the subset an Istio rollback sends traffic to exists.</summary>
    public static readonly KubernetesResource IstioDestinationRule = new("networking.istio.io", "v1", "destinationrules", "DestinationRule");

    public static readonly KubernetesResource GatewayHttpRoute = new("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute");

    /// <summary>v1alpha2 is the version Linkerd's SMI extension serves with integer weights (v1alpha1 used quantities).</summary>
    public static readonly KubernetesResource SmiTrafficSplit = new("split.smi-spec.io", "v1alpha2", "trafficsplits", "TrafficSplit");

    public static readonly KubernetesResource ArgoRollout = new("argoproj.io", "v1alpha1", "rollouts", "Rollout");

    /// <summary>The relative path of one object, or of one of its subresources (<c>status</c>).</summary>
    public string PathOf(string @namespace, string name, string? subresource = null) =>
        $"{CollectionPathOf(@namespace)}/{Uri.EscapeDataString(name)}" + (subresource is null ? string.Empty : "/" + subresource);

    /// <summary>The relative path of all objects of this type in a namespace (a list).</summary>
    public string CollectionPathOf(string @namespace) =>
        $"apis/{Group}/{Version}/namespaces/{Uri.EscapeDataString(@namespace)}/{Plural}";

    /// <summary>How Kubernetes names the type in its messages, e.g. <c>virtualservices.networking.istio.io</c>.</summary>
    public override string ToString() => $"{Plural}.{Group}";
}
