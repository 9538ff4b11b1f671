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
                var url = provider.GetRequiredService<IOptions<RolloutGateOptions>>().Value.Prometheus.Url;
                http.BaseAddress = WithTrailingSlash(url);
                // The resilience pipeline owns the timeouts.
                http.Timeout = Timeout.InfiniteTimeSpan;
            })
            .AddQueryResilience()
            .AddMonitoringAuth(options => options.Prometheus);
        return services;
    }

    /// <summary>A base address must end in '/' for relative paths to be appended rather than replace its last segment.</summary>
    internal static Uri WithTrailingSlash(string url) => new(url.EndsWith('/') ? url : url + "/", UriKind.Absolute);
}
