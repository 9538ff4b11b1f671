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
        // the gauges read from the database are left out then, and rolloutgate_database_up says why.
        app.MapGet("/metrics", async (
            PrometheusExposition exposition, RolloutGateDbContext db, DatabaseClockOffset clockOffset, TimeProvider time, CancellationToken cancellationToken) =>
        {
            List<GaugeFamily> gauges;
            try
            {
                gauges = await DatabaseGaugesAsync(db, time.GetUtcNow(), cancellationToken);
                // Measured every minute; a scrape before the first measurement measures, so the series is always there.
                if (clockOffset.Latest is null)
                {
                    await clockOffset.MeasureAsync(cancellationToken);
                }
            }
            catch (Exception exception) when (DatabaseUnavailableHandler.Unavailable(exception) is not null)
            {
                gauges = [];
            }

            gauges.Insert(0, new("rolloutgate_database_up", "1 when PostgreSQL answered this scrape, 0 when it was unavailable (the gauges read from it are left out then).",
                [([], gauges.Count == 0 ? 0 : 1)]));
            if (clockOffset.Latest is { } offset)
            {
                gauges.Insert(1, Single("rolloutgate_clock_offset_seconds",
                    FormattableString.Invariant($"This replica's clock minus the database's, as last measured (every minute, give or take half a query's round trip); beyond {DatabaseClockOffset.Bound.TotalSeconds:0} s the log warns and RolloutGateClockOffset fires."),
                    offset.Offset.TotalSeconds));
            }

            return TypedResults.Text(exposition.Render(gauges), PrometheusExposition.ContentType);
        }).ExcludeFromDescription();
        return app;
    }

    /// <summary>
    /// What the database says of the whole installation, the same on every replica (alert on the max over replicas):
    /// deployments by state, how far the watch is behind, Slack messages waiting, and rollbacks that failed. Each figure
    /// is read through an index or from a small table: a scrape costs two short queries.
    /// </summary>
    private static async Task<List<GaugeFamily>> DatabaseGaugesAsync(RolloutGateDbContext db, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var counts = await db.Deployments.AsNoTracking().GroupBy(d => d.State)
            .Select(g => new { State = g.Key, Count = g.Count() })
            .ToDictionaryAsync(g => g.State, g => g.Count, cancellationToken);
        // A watch is due from its next evaluation time, or, before the sweep has seen it, from when it began watching.
        var row = (await db.Database.SqlQuery<Backlog>($"""
            SELECT
              LEAST(
                (SELECT min(watch_due_at) FROM deployments WHERE state = 'watching' AND watch_due_at <= {now}),
                (SELECT min(updated_at) FROM deployments WHERE state = 'watching' AND watch_due_at IS NULL AND updated_at <= {now})
              ) AS "OldestDue",
              (SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND abandoned_at IS NULL) AS "OutboxPending",
              (SELECT min(created_at) FROM outbox WHERE delivered_at IS NULL AND abandoned_at IS NULL) AS "OutboxOldest",
              (SELECT count(*) FROM outbox WHERE abandoned_at IS NOT NULL) AS "OutboxAbandoned",
              (SELECT count(*) FROM decision_inbox WHERE failed_action IS NOT NULL) AS "RollbacksFailed"
            """).ToListAsync(cancellationToken)).Single();

        var byState = DeploymentState.All
            .Select(state => ((IReadOnlyList<KeyValuePair<string, string>>)[new("state", state)], (double)counts.GetValueOrDefault(state)))
            .ToList();
        return
        [
            new("rolloutgate_deployments", "Deployments by state.", byState),
            Single("rolloutgate_watch_behind_seconds",
                "How long the oldest due watch interval has waited to be evaluated, 0 when none is due. A few seconds normally; it grows while the sweep is stuck, behind, or waiting for Prometheus to answer.",
                Age(now, row.OldestDue)),
            Single("rolloutgate_slack_outbox_pending", "Slack messages waiting to be posted (not yet delivered, not abandoned).", row.OutboxPending),
            Single("rolloutgate_slack_outbox_oldest_pending_seconds", "Age of the oldest Slack message waiting to be posted, 0 when none waits.", Age(now, row.OutboxOldest)),
            Single("rolloutgate_slack_outbox_abandoned", "Slack messages given up for good, ever (Slack refused them, or they failed for longer than RolloutGate:Slack:AbandonAfter); each is audited as slack.message-abandoned.", row.OutboxAbandoned),
            Single("rolloutgate_rollbacks_failed_waiting", "Deployments whose rollback action failed and that wait for a person to retry it or stop the automation (the inbox lists them).", row.RollbacksFailed),
        ];
    }

    private static double Age(DateTimeOffset now, DateTimeOffset? since) => since is { } at ? Math.Max(0, (now - at).TotalSeconds) : 0;

    private static GaugeFamily Single(string name, string help, double value) => new(name, help, [([], value)]);

    private sealed record Backlog(DateTimeOffset? OldestDue, long OutboxPending, DateTimeOffset? OutboxOldest, long OutboxAbandoned, long RollbacksFailed);
}
