using Microsoft.Extensions.Options;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Http;

namespace RolloutGate.Prometheus;

public static class PrometheusExtensions
{
    /// <summary>Registers <see cref="IPrometheusClient"/> against <c>RolloutGate:Prometheus:Url</c>.</summary>
    public static IServiceCollection AddPrometheus(this IServiceCollection services)
    {
        services.AddHttpClient<IPrometheusClient, PrometheusClient>(PrometheusConstants.HttpClientName, (provider, http) =>
            {
                // As configured: each query's path goes under it with Urls.Under, which keeps its path prefix and query.
                http.BaseAddress = new Uri(provider.GetRequiredService<IOptions<RolloutGateOptions>>().Value.Prometheus.Url, UriKind.Absolute);
                // The resilience pipeline owns the timeouts.
                http.Timeout = Timeout.InfiniteTimeSpan;
            })
            .AddQueryResilience()
            .AddMonitoringAuth(options => options.Prometheus);
        return services;
    }
}
