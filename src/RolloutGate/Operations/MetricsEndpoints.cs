using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using RolloutGate.Core.Deployments;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Operations;

public static class MetricsEndpoints
{
    /// <summary>Counts every request by its route template (not its path, so ids do not explode the series).</summary>
    public static IApplicationBuilder UseRequestMetrics(this IApplicationBuilder app) =>
        app.Use(async (context, next) =>
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            try
            {
                await next(context);
            }
            finally
            {
                var route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "unmatched";
                context.RequestServices.GetRequiredService<RolloutGateMetrics>()
                    .HttpRequest(context.Request.Method, route, context.Response.StatusCode, System.Diagnostics.Stopwatch.GetElapsedTime(started));
            }
        });

    public static IEndpointRouteBuilder MapMetricsEndpoint(this IEndpointRouteBuilder app)
    {
        app.MapGet("/metrics", async (PrometheusExposition exposition, RolloutGateDbContext db, CancellationToken cancellationToken) =>
        {
            var counts = await db.Deployments.AsNoTracking().GroupBy(d => d.State)
                .Select(g => new { State = g.Key, Count = g.Count() })
                .ToDictionaryAsync(g => g.State, g => g.Count, cancellationToken);
            var byState = DeploymentState.All
                .Select(state => ((IReadOnlyList<KeyValuePair<string, string>>)[new("state", state)], (double)counts.GetValueOrDefault(state)))
                .ToList();
            var text = exposition.Render([new GaugeFamily("rolloutgate_deployments", "Deployments by state.", byState)]);
            return TypedResults.Text(text, PrometheusExposition.ContentType);
        }).ExcludeFromDescription();
        return app;
    }
}
