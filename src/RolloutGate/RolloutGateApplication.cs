using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.Http;
using Microsoft.Extensions.Options;
using Polly.Telemetry;
using RolloutGate.Api;
using RolloutGate.Audit;
using RolloutGate.Checks;
using RolloutGate.Dashboard;
using RolloutGate.Demo;
using RolloutGate.Deployments;
using RolloutGate.Inbox;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Operations;
using RolloutGate.Prometheus;
using RolloutGate.Reports;
using RolloutGate.Rollbacks;
using RolloutGate.Runbooks;
using RolloutGate.Watch;
using RolloutGate.Slack;
using RolloutGate.Web;
using RolloutGate.Webhooks;

namespace RolloutGate;

/// <summary>Everything the host registers and maps, so Program.cs stays a few lines.</summary>
public static class RolloutGateApplication
{
    /// <summary>
    /// Log levels for libraries that log routine work at Information (EF Core writes out every SQL command, and the watch
    /// sweep runs some every second). Given the lowest precedence, so that appsettings.json and <c>Logging__LogLevel__*</c>
    /// variables still override them, and kept here rather than in appsettings.json, so that they hold also when the
    /// service is started from a folder other than its own (appsettings.json is read from the current folder).
    /// <para>
    /// The generic host's own log (Microsoft.Extensions.Hosting.Internal.Host) at Critical: its Error lines only say again, with the stack
    /// trace, what another line says. "Hosting failed to start" comes before the one line Program.cs writes to stderr
    /// for a start that cannot succeed (the database unreachable, the address taken): some 70 lines of stack trace on
    /// stdout for a newcomer to read past. A start failing otherwise is an unhandled exception, printed whole by the
    /// runtime; a background service that fails is logged at Critical with its exception too (it stops the host). Set
    /// <c>Logging__LogLevel__Microsoft.Extensions.Hosting.Internal.Host=Error</c> to see the host's lines.
    /// </para>
    /// </summary>
    private static readonly Dictionary<string, string?> DefaultLogLevels = new()
    {
        ["Logging:LogLevel:Default"] = "Information",
        ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
        ["Logging:LogLevel:Microsoft.EntityFrameworkCore"] = "Warning",
        ["Logging:LogLevel:Quartz"] = "Warning",
        ["Logging:LogLevel:System.Net.Http.HttpClient"] = "Warning",
        ["Logging:LogLevel:Polly"] = "Warning",
        ["Logging:LogLevel:Microsoft.Extensions.Hosting.Internal.Host"] = "Critical",
    };

    public static WebApplicationBuilder AddRolloutGate(this WebApplicationBuilder builder)
    {
        builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = DefaultLogLevels });
        builder.WebHost.ConfigureKestrel(RequestSizeLimits.ConfigureKestrel);
        var services = builder.Services;
        services.AddOptions<RolloutGateOptions>()
            .BindConfiguration(RolloutGateOptions.SectionName)
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<RolloutGateOptions>, RolloutGateOptionsValidation>();
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<DatabaseOutageLog>();
        // Told to stop, every background service is told at once (one waiting on an unreachable database does not hold the
        // others back), and the host stops within 25 s: inside Kubernetes' 30 s grace period (deploy/kubernetes/README.md).
        services.Configure<HostOptions>(host =>
        {
            host.ServicesStopConcurrently = true;
            host.ShutdownTimeout = TimeSpan.FromSeconds(25);
        });
        // Polly logs every retry (a warning) and every opening of a circuit breaker (an error with a stack trace) of every
        // HTTP client. Whatever is left once the retries are over reaches the caller, which logs or audits it once (the
        // watch's line, the outbox's attempt, the rollback's outcome): during an outage Polly's own lines were most of the
        // log. They are kept at Debug.
        services.Configure<TelemetryOptions>(telemetry => telemetry.SeverityProvider = _ => ResilienceEventSeverity.Debug);
        services.AddProblemDetails();
        services.AddExceptionHandler<InputExceptionHandler>();
        services.AddExceptionHandler<DatabaseUnavailableHandler>();
        // A query parameter that cannot be bound throws, so that InputExceptionHandler can say which one in the 400.
        services.Configure<Microsoft.AspNetCore.Routing.RouteHandlerOptions>(options => options.ThrowOnBadRequest = true);
        services.AddOpenApi();

        // Order matters for start-up: the schema is migrated before the runbooks are stored.
        services.AddRolloutGateDatabase();
        services.AddSingleton<AuditTrail>();
        services.AddSingleton<RunbookCatalog>();
        services.AddSingleton<IReadinessCheck>(provider => provider.GetRequiredService<RunbookCatalog>());
        services.AddSingleton<RunbookLoader>();
        services.AddHostedService(provider => provider.GetRequiredService<RunbookLoader>());

        services.AddPrometheus();
        services.AddPreDeployChecks();
        services.AddDemo();
        services.AddSingleton<WebhookAuthenticator>();
        services.AddHostedService<CredentialStrength>();
        services.AddScoped<PreDeployGate>();
        services.AddScoped<DeliveryClaims>();
        services.AddScoped<WebhookProcessor>();
        services.AddScoped<DeploymentDecisions>();
        services.AddRollbacks();
        services.AddWatch(builder.Configuration);
        services.AddSlack();

        services.AddSingleton<RolloutGateMetrics>();
        services.AddSingleton<DatabaseClockOffset>();
        services.AddHostedService(provider => provider.GetRequiredService<DatabaseClockOffset>());
        services.AddSingleton<PrometheusExposition>();
        services.AddSingleton<IConfigureOptions<HttpClientFactoryOptions>, OutboundCallMetrics.Setup>();
        return builder;
    }

    public static WebApplication MapRolloutGate(this WebApplication app)
    {
        // Created before the first request so the listener sees every instrument from the start.
        _ = app.Services.GetRequiredService<PrometheusExposition>();
        _ = app.Services.GetRequiredService<RolloutGateMetrics>();

        app.UseNoSniff();
        // First: a request line or headers past the limits are refused before anything reads them.
        app.UseRequestSizeLimits();
        app.UseExceptionHandler();
        // A bodiless 404 or 405 gets a problem+json body whatever Accept asks for (CSV included, which the problem details
        // service would not write: it answered text/plain), as every other error does, with a detail that says what is
        // wrong: a path no endpoint has (a deployment id of "..", which the path's normalisation takes away), or a method.
        app.UseStatusCodePages(async statusCode =>
        {
            var http = statusCode.HttpContext;
            await Problems.WriteAsync(http.RequestServices.GetRequiredService<IProblemDetailsService>(),
                new ProblemDetailsContext { HttpContext = http, ProblemDetails = { Status = http.Response.StatusCode, Detail = Problems.RouteDetail(http) } });
        });
        app.UseRouting();
        app.UseRequestMetrics();
        app.UseApiTokens();
        app.UseApiQueryParameters();
        app.MapOpenApi();
        app.MapHealthEndpoints();
        app.MapMetricsEndpoint();
        app.MapDeploymentsApi();
        app.MapAuditApi();
        app.MapReportsApi();
        app.MapRunbookReports();
        app.MapSlack();
        app.MapInbox();
        app.MapDashboard();
        app.MapDemoWorkload(app.Configuration);
        return app;
    }
}
