using RolloutGate.Checks;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Operations;
using RolloutGate.Prometheus;

namespace RolloutGate;

/// <summary>Everything the host registers and maps, so Program.cs stays a few lines.</summary>
public static class RolloutGateApplication
{
    public static WebApplicationBuilder AddRolloutGate(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<RolloutGateOptions>()
            .BindConfiguration(RolloutGateOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddProblemDetails();
        builder.Services.AddOpenApi();
        builder.Services.AddRolloutGateDatabase();
        builder.Services.AddPrometheus();
        builder.Services.AddPreDeployChecks();
        return builder;
    }

    public static WebApplication MapRolloutGate(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.MapOpenApi();
        app.MapHealthEndpoints();
        return app;
    }
}
