namespace RolloutGate.Kubernetes;

/// <summary>
/// A namespaced custom resource type as the API server serves it: <c>/apis/{Group}/{Version}/namespaces/{ns}/{Plural}/{name}</c>,
/// and without the name the collection of its objects in that namespace. <see cref="Version"/> is the one asked first;
/// <see cref="OtherVersions"/> are asked, in order, when the API server does not serve it (see <see cref="KubernetesClient"/>).
/// </summary>
public sealed record KubernetesResource(string Group, string Version, string Plural, string Kind)
{
    /// <summary>v1 is served from Istio 1.22; v1beta1 by every Istio since 1.5, with the same schema.</summary>
    public static readonly KubernetesResource IstioVirtualService = new("networking.istio.io", "v1", "virtualservices", "VirtualService") { OtherVersions = ["v1beta1"] };

    /// <summary>Read only (listed), to check that the subset an Istio rollback sends traffic to exists.</summary>
    public static readonly KubernetesResource IstioDestinationRule = new("networking.istio.io", "v1", "destinationrules", "DestinationRule") { OtherVersions = ["v1beta1"] };

    /// <summary>
    /// v1 is served from Gateway API 1.0; v1beta1 by 0.6 and later, with the same rules and backendRefs. Linkerd 2.15 to
    /// 2.17 work with Gateway API 0.7 to 1.1.1 (linkerd.io, "Gateway API support"), and 0.7 serves HTTPRoute at v1beta1 only.
    /// </summary>
    public static readonly KubernetesResource GatewayHttpRoute = new("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute") { OtherVersions = ["v1beta1"] };

    /// <summary>
    /// Linkerd's own HTTPRoute, which every Linkerd install brings: v1beta3 from Linkerd 2.14, v1beta2 in 2.13, the first
    /// with backendRefs. Its rules' backendRefs are the Gateway API's (group, kind, name, namespace, port, weight, with the
    /// same defaults); it adds fields of its own to a rule (timeouts), which a rollback keeps as they are.
    /// </summary>
    public static readonly KubernetesResource LinkerdHttpRoute = new("policy.linkerd.io", "v1beta3", "httproutes", "HTTPRoute") { OtherVersions = ["v1beta2"] };

    /// <summary>
    /// v1alpha2 is the version Linkerd's SMI extension and Open Service Mesh serve; the SMI SDK's own CRD serves v1alpha3
    /// (v1alpha4 in later SDKs) instead. All three have integer weights (v1alpha1, which Linkerd also serves, used quantities).
    /// </summary>
    public static readonly KubernetesResource SmiTrafficSplit = new("split.smi-spec.io", "v1alpha2", "trafficsplits", "TrafficSplit") { OtherVersions = ["v1alpha3", "v1alpha4"] };

    public static readonly KubernetesResource ArgoRollout = new("argoproj.io", "v1alpha1", "rollouts", "Rollout");

    /// <summary>
    /// Other versions of the type, asked in order when the API server does not serve <see cref="Version"/>: those
    /// installed CRDs serve instead, with the same fields where a rollback reads and writes them.
    /// </summary>
    public IReadOnlyList<string> OtherVersions { get; init; } = [];

    /// <summary>This type at <see cref="Version"/>, then at each of <see cref="OtherVersions"/>.</summary>
    public IEnumerable<KubernetesResource> Versions => [this, .. OtherVersions.Select(version => this with { Version = version, OtherVersions = [] })];

    /// <summary>The relative path of one object, or of one of its subresources (<c>status</c>).</summary>
    public string PathOf(string @namespace, string name, string? subresource = null) =>
        $"{CollectionPathOf(@namespace)}/{Uri.EscapeDataString(name)}" + (subresource is null ? string.Empty : "/" + subresource);

    /// <summary>The relative path of all objects of this type in a namespace (a list).</summary>
    public string CollectionPathOf(string @namespace) =>
        $"apis/{Group}/{Version}/namespaces/{Uri.EscapeDataString(@namespace)}/{Plural}";

    /// <summary>How Kubernetes names the type in its messages, e.g. <c>virtualservices.networking.istio.io</c>.</summary>
    public override string ToString() => $"{Plural}.{Group}";
}
