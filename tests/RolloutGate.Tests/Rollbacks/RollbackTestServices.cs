using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure;
using RolloutGate.Rollbacks;

namespace RolloutGate.Tests.Rollbacks;

/// <summary>The rollback services as the host registers them, pointed at a local API server, with quick retries.</summary>
public static class RollbackTestServices
{
    public const int MaxRetryAttempts = 3;

    public static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(5);

    /// <param name="attemptTimeout">Each attempt's timeout, <see cref="AttemptTimeout"/> unless given; the total is six of them.</param>
    public static ServiceProvider Create(
        string apiServer, string tokenFile, Infrastructure.LogCapture? logs = null, string? caFile = null, TimeSpan? attemptTimeout = null)
    {
        var services = new ServiceCollection();
        services.AddLogging(logging =>
        {
            if (logs is not null)
            {
                logging.AddProvider(logs);
            }
        });
        services.AddSingleton(TimeProvider.System);
        services.AddOptions<RolloutGateOptions>().Configure(options =>
        {
            options.Kubernetes.ApiServer = apiServer;
            options.Kubernetes.TokenFile = tokenFile;
            options.Kubernetes.CaFile = caFile ?? Path.Combine(Path.GetTempPath(), "rolloutgate-tests-no-such-ca.crt");
        });
        services.AddRollbacks();
        services.Configure<RollbackResilienceOptions>(options =>
        {
            options.MaxRetryAttempts = MaxRetryAttempts;
            options.BaseDelay = TimeSpan.FromMilliseconds(20);
            options.MaxDelay = TimeSpan.FromMilliseconds(200);
            options.AttemptTimeout = attemptTimeout ?? AttemptTimeout;
            options.TotalTimeout = 6 * options.AttemptTimeout;
        });
        return services.BuildServiceProvider();
    }

    public static RollbackRequest Request(RollbackAction action, string? @namespace = "shop") =>
        new("gh-run-8812", "checkout", "production", "2.3.9", "error-rate 4.1% > 2%", action,
            new MeshSpec(MeshProvider.Istio, @namespace, "checkout"), "rollback-gh-run-8812-1");
}
