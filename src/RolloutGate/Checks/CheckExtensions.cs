using Microsoft.Extensions.DependencyInjection.Extensions;
using RolloutGate.Infrastructure.Http;

namespace RolloutGate.Checks;

public static class CheckExtensions
{
    /// <summary>Registers <see cref="PreDeployCheckRunner"/> and one <see cref="IPreDeployCheck"/> per kind; needs AddPrometheus.</summary>
    public static IServiceCollection AddPreDeployChecks(this IServiceCollection services)
    {
        services.AddHttpClient(CheckConstants.AlertmanagerHttpClient, http => http.Timeout = Timeout.InfiniteTimeSpan)
            .AddQueryResilience()
            .AddMonitoringAuth(options => options.Alertmanager);
        services.AddHttpClient(CheckConstants.HttpCheckHttpClient, http => http.Timeout = Timeout.InfiniteTimeSpan);
        services.TryAddSingleton(TimeProvider.System);

        // Transient: the prometheus check holds a typed HttpClient, which must not live for the whole process.
        services.TryAddEnumerable(ServiceDescriptor.Transient<IPreDeployCheck, PrometheusCheck>());
        services.TryAddEnumerable(ServiceDescriptor.Transient<IPreDeployCheck, AlertmanagerCheck>());
        services.TryAddEnumerable(ServiceDescriptor.Transient<IPreDeployCheck, FreezeCheck>());
        services.TryAddEnumerable(ServiceDescriptor.Transient<IPreDeployCheck, HttpCheck>());
        services.TryAddTransient<PreDeployCheckRunner>();
        return services;
    }
}
