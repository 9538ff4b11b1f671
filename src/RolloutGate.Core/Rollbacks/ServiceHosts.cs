namespace RolloutGate.Core.Rollbacks;

/// <summary>
/// The hosts by which an Istio route names the Kubernetes Service a runbook governs: each of <c>names</c> (the
/// runbook's <c>mesh.workload</c> and <c>spec.service</c>, usually the same) in <c>namespace</c> (<c>mesh.namespace</c>,
/// where the VirtualService is read), written as the short name <c>checkout</c>, <c>checkout.shop</c>,
/// <c>checkout.shop.svc</c> or <c>checkout.shop.svc.cluster.local</c>, compared without regard to case (DNS names).
/// Istio resolves a short name in the namespace of the VirtualService, which is why the short name counts only there.
/// Any other host is another service: a different name (<c>checkout-canary</c> is not <c>checkout</c>), another
/// namespace, an external name, or a cluster domain other than <c>cluster.local</c>.
/// </summary>
public sealed class ServiceHosts
{
    private readonly HashSet<string> hosts = new(StringComparer.OrdinalIgnoreCase);

    public ServiceHosts(string @namespace, params IEnumerable<string?> names)
    {
        ArgumentException.ThrowIfNullOrEmpty(@namespace);
        Namespace = @namespace;
        Names = names.Where(n => !string.IsNullOrEmpty(n)).Select(n => n!).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        if (Names.Count == 0)
        {
            throw new ArgumentException("a service needs at least one name", nameof(names));
        }

        foreach (var name in Names)
        {
            hosts.UnionWith([name, $"{name}.{@namespace}", $"{name}.{@namespace}.svc", $"{name}.{@namespace}.svc.cluster.local"]);
        }
    }

    public string Namespace { get; }

    public IReadOnlyList<string> Names { get; }

    /// <summary>For messages: <c>service checkout in namespace shop</c> (<c>service checkout or checkout-web ...</c> with two names).</summary>
    public string Name => $"service {string.Join(" or ", Names)} in namespace {Namespace}";

    public bool Matches(string? host) => host is not null && hosts.Contains(host);
}
