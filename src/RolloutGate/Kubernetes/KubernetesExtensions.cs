using System.Globalization;
using Microsoft.Extensions.Options;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Http;

namespace RolloutGate.Kubernetes;

public static class KubernetesExtensions
{
    public const string HttpClientName = "kubernetes";
    public const string InClusterApiServer = "https://kubernetes.default.svc";

    /// <summary>
    /// Registers <see cref="IKubernetesClient"/> against <c>RolloutGate:Kubernetes</c>: the configured API server, or the
    /// in-cluster one; the server certificate checked against <c>CaFile</c> when that file exists.
    /// </summary>
    public static IServiceCollection AddKubernetesClient(this IServiceCollection services)
    {
        services.AddHttpClient<IKubernetesClient, KubernetesClient>(HttpClientName, (provider, http) =>
            {
                var kubernetes = provider.GetRequiredService<IOptions<RolloutGateOptions>>().Value.Kubernetes;
                http.BaseAddress = ApiServer(kubernetes, Environment.GetEnvironmentVariable);
                // The caller's resilience pipeline owns the timeouts (per attempt and overall).
                http.Timeout = Timeout.InfiniteTimeSpan;
            })
            .ConfigurePrimaryHttpMessageHandler(provider =>
                Handler(provider.GetRequiredService<IOptions<RolloutGateOptions>>().Value.Kubernetes));
        return services;
    }

    /// <summary>
    /// The configured API server, else the one a pod sees: KUBERNETES_SERVICE_HOST and _PORT, which the kubelet sets
    /// in every container, else the cluster DNS name. Each request's path goes under it with
    /// <see cref="Core.Runbooks.Urls.Under"/>, which keeps its path prefix and query.
    /// </summary>
    internal static Uri ApiServer(KubernetesOptions options, Func<string, string?> environment)
    {
        var url = options.ApiServer;
        if (string.IsNullOrWhiteSpace(url))
        {
            var host = environment("KUBERNETES_SERVICE_HOST");
            var port = environment("KUBERNETES_SERVICE_PORT");
            url = string.IsNullOrEmpty(host)
                ? InClusterApiServer
                : string.Create(CultureInfo.InvariantCulture, $"https://{(host.Contains(':', StringComparison.Ordinal) ? $"[{host}]" : host)}:{(string.IsNullOrEmpty(port) ? "443" : port)}");
        }

        return new Uri(url, UriKind.Absolute);
    }

    /// <summary>
    /// Trusts exactly the cluster's CA when its file is there (in a pod it always is), else the machine's roots. A file
    /// that is there but cannot be read, or holds no certificate, fails each call as an unreachable API server, naming
    /// the file, so the rollback is tried and recorded as failed: its exception out of the client's creation would come
    /// out of every rollback executor's, webhook actions' included, and no rollback would ever be recorded.
    /// </summary>
    internal static SocketsHttpHandler Handler(KubernetesOptions options) =>
        !string.IsNullOrEmpty(options.CaFile) && File.Exists(options.CaFile) ? PrivateAuthority.Handler(options.CaFile) : PrivateAuthority.Handler(authorities: null);
}
