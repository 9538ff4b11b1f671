using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using RolloutGate.Api;
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
        // The process's own series are answered also while the database is away (that is when they matter most):
        // the deployments gauge is left out then, and rolloutgate_database_up says why.
        app.MapGet("/metrics", async (PrometheusExposition exposition, RolloutGateDbContext db, CancellationToken cancellationToken) =>
        {
            Dictionary<string, int>? counts;
            try
            {
                counts = await db.Deployments.AsNoTracking().GroupBy(d => d.State)
                    .Select(g => new { State = g.Key, Count = g.Count() })
                    .ToDictionaryAsync(g => g.State, g => g.Count, cancellationToken);
            }
            catch (Exception exception) when (DatabaseUnavailableHandler.Unavailable(exception) is not null)
            {
                counts = null;
            }

            List<GaugeFamily> gauges =
            [
                new("rolloutgate_database_up", "1 when the deployments could be counted in PostgreSQL for this scrape, 0 when the database was unavailable.",
                    [([], counts is null ? 0 : 1)]),
            ];
            if (counts is not null)
            {
                var byState = DeploymentState.All
                    .Select(state => ((IReadOnlyList<KeyValuePair<string, string>>)[new("state", state)], (double)counts.GetValueOrDefault(state)))
                    .ToList();
                gauges.Add(new GaugeFamily("rolloutgate_deployments", "Deployments by state.", byState));
            }

            return TypedResults.Text(exposition.Render(gauges), PrometheusExposition.ContentType);
        }).ExcludeFromDescription();
        return app;
    }
}
