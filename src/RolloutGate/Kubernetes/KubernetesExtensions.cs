using System.Globalization;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;
using RolloutGate.Infrastructure;

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
    /// in every container, else the cluster DNS name. Always ends in '/' so relative paths are appended.
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

        return new Uri(url.EndsWith('/') ? url : url + "/", UriKind.Absolute);
    }

    /// <summary>
    /// Trusts exactly the cluster's CA when its file is there (in a pod it always is), instead of the machine's public
    /// roots, which never sign an API server certificate. Host names are still checked by TLS as usual.
    /// </summary>
    internal static SocketsHttpHandler Handler(KubernetesOptions options)
    {
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        if (!string.IsNullOrEmpty(options.CaFile) && File.Exists(options.CaFile))
        {
            var authorities = new X509Certificate2Collection();
            authorities.ImportFromPemFile(options.CaFile);
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                // Cluster CAs publish no revocation lists the pod could reach.
                RevocationMode = X509RevocationMode.NoCheck,
            };
            policy.CustomTrustStore.AddRange(authorities);
            handler.SslOptions = new SslClientAuthenticationOptions { CertificateChainPolicy = policy };
        }

        return handler;
    }
}
