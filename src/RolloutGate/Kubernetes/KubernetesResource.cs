namespace RolloutGate.Kubernetes;

/// <summary>A namespaced custom resource type as the API server serves it: <c>/apis/{Group}/{Version}/namespaces/{ns}/{Plural}/{name}</c>.</summary>
public sealed record KubernetesResource(string Group, string Version, string Plural, string Kind)
{
    public static readonly KubernetesResource IstioVirtualService = new("networking.istio.io", "v1", "virtualservices", "VirtualService");

    public static readonly KubernetesResource GatewayHttpRoute = new("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute");

    /// <summary>v1alpha2 is the version Linkerd's SMI extension serves with integer weights (v1alpha1 used quantities).</summary>
    public static readonly KubernetesResource SmiTrafficSplit = new("split.smi-spec.io", "v1alpha2", "trafficsplits", "TrafficSplit");

    public static readonly KubernetesResource ArgoRollout = new("argoproj.io", "v1alpha1", "rollouts", "Rollout");

    /// <summary>The relative path of one object, or of one of its subresources (<c>status</c>).</summary>
    public string PathOf(string @namespace, string name, string? subresource = null) =>
        $"apis/{Group}/{Version}/namespaces/{Uri.EscapeDataString(@namespace)}/{Plural}/{Uri.EscapeDataString(name)}"
        + (subresource is null ? string.Empty : "/" + subresource);

    /// <summary>How Kubernetes names the type in its messages, e.g. <c>virtualservices.networking.istio.io</c>.</summary>
    public override string ToString() => $"{Plural}.{Group}";
}
