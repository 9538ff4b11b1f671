using RolloutGate.Kubernetes;

namespace RolloutGate.Rollbacks;

public static class RollbackExtensions
{
    /// <summary>Registers <see cref="IRollbackExecutor"/> with every rollback action kind of CONTRACT section 3.</summary>
    public static IServiceCollection AddRollbacks(this IServiceCollection services)
    {
        services.AddOptions<RollbackResilienceOptions>();
        services.AddKubernetesClient();
        // No redirects: the signed delivery goes to the runbook's address only, never resent (signature and all) to a
        // host the receiver names; a 3xx is a failed attempt that says so.
        services.AddHttpClient(WebhookRollbackAction.HttpClientName, http => http.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { AllowAutoRedirect = false });
        services.AddSingleton<RollbackAttempts>();
        services.AddTransient<KubernetesTrafficShift>();
        services.AddTransient<IstioRollbackAction>();
        services.AddTransient<LinkerdRollbackAction>();
        services.AddTransient<SmiRollbackAction>();
        services.AddTransient<ArgoRolloutsRollbackAction>();
        services.AddTransient<WebhookRollbackAction>();
        services.AddTransient<IRollbackExecutor, RollbackExecutor>();
        services.AddSingleton<RollbackDispatcher>();
        services.AddHostedService(provider => provider.GetRequiredService<RollbackDispatcher>());
        return services;
    }
}
