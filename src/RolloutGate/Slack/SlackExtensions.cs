using RolloutGate.Audit;
using RolloutGate.Decisions;

namespace RolloutGate.Slack;

public static class SlackExtensions
{
    /// <summary>The Slack Web API client, request verification, the outbox and its dispatcher.</summary>
    public static IServiceCollection AddSlack(this IServiceCollection services)
    {
        // The resilience pipeline owns the timeouts.
        services.AddHttpClient<SlackApiClient>(SlackResilience.HttpClientName, http => http.Timeout = Timeout.InfiniteTimeSpan)
            .AddSlackResilience();
        services.AddSingleton<SlackRequestVerifier>();
        services.AddSingleton<DecisionChannelSubscriber>();
        services.AddSingleton<IAuditSubscriber>(provider => provider.GetRequiredService<DecisionChannelSubscriber>());
        services.AddScoped<SlackActions>();
        services.AddSingleton<DecisionPolicy>();
        services.AddHostedService<DecisionTimeouts>();
        services.AddSingleton<SlackOutboxDispatcher>();
        services.AddHostedService(provider => provider.GetRequiredService<SlackOutboxDispatcher>());
        return services;
    }
}
