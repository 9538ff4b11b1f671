using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Core.Analysis;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Watch;

namespace RolloutGate.Tests.Watch;

public sealed class EvaluationStoreTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 23, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Baselines_StoredAndReadBack_SameSamplesInOrderWithTheirNulls()
    {
        await using var service = await TestService.StartAsync();
        await SeedDeploymentsAsync(service, "dep-1", "dep-2");
        IReadOnlyList<Observation> errors =
        [
            new(Start.AddMinutes(1), 0.01, 1200, 12),
            new(Start.AddMinutes(2), null, 0),
            new(Start.AddMinutes(3).ToOffset(TimeSpan.FromHours(2)), 0.5, 4, 2),
        ];
        IReadOnlyList<Observation> latency = [.. Enumerable.Range(1, 1440).Select(i => new Observation(Start.AddMinutes(i), 0.2 + i * 1e-4, 1000 + i))];

        await WithStoreAsync(service, db => EvaluationStore.InsertBaselinesAsync(
            db, [("dep-1", "error-rate", errors), ("dep-1", "p95-latency", latency), ("dep-2", "p95-latency", [])], Start, CancellationToken.None));
        var read = (await WithStoreAsync(service, db => EvaluationStore.BaselinesAsync(db, ["dep-1", "dep-2", "dep-unknown"], CancellationToken.None))).Decoded();

        Assert.Equal(["dep-1", "dep-2"], read.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(errors, read["dep-1"]["error-rate"]);
        Assert.Equal(latency, read["dep-1"]["p95-latency"]);
        Assert.Empty(read["dep-2"]["p95-latency"]);
    }

    [Fact]
    public async Task Baselines_StoredTwice_TheFirstStays()
    {
        await using var service = await TestService.StartAsync();
        await SeedDeploymentsAsync(service, "dep-1");
        IReadOnlyList<Observation> first = [new(Start.AddMinutes(1), 0.25, 100)];

        await WithStoreAsync(service, db => EvaluationStore.InsertBaselinesAsync(db, [("dep-1", "p95-latency", first)], Start, CancellationToken.None));
        await WithStoreAsync(service, db => EvaluationStore.InsertBaselinesAsync(
            db, [("dep-1", "p95-latency", [new Observation(Start.AddMinutes(1), 9.0, 100)])], Start.AddMinutes(5), CancellationToken.None));

        var read = (await WithStoreAsync(service, db => EvaluationStore.BaselinesAsync(db, ["dep-1"], CancellationToken.None))).Decoded();
        Assert.Equal(first, read["dep-1"]["p95-latency"]);
        Assert.Equal(1L, await service.CountAsync("watch_baselines"));
    }

    [Fact]
    public async Task Baselines_OneInALayoutThisVersionCannotRead_SetApartWithItsReasonTheOthersRead()
    {
        await using var service = await TestService.StartAsync();
        await SeedDeploymentsAsync(service, "dep-1", "dep-2");
        IReadOnlyList<Observation> samples = [new(Start.AddMinutes(1), 0.25, 100)];
        await WithStoreAsync(service, db => EvaluationStore.InsertBaselinesAsync(
            db, [("dep-1", "p95-latency", samples), ("dep-1", "error-rate", samples), ("dep-2", "p95-latency", samples)], Start, CancellationToken.None));
        // As a newer version might write it: another layout byte.
        await service.Database.ExecuteAsync("UPDATE watch_baselines SET samples = set_byte(samples, 0, 2) WHERE deployment_id = 'dep-1' AND metric = 'error-rate'");

        var read = await WithStoreAsync(service, db => EvaluationStore.BaselinesAsync(db, ["dep-1", "dep-2"], CancellationToken.None));

        Assert.Equal(["dep-2"], read.Encoded.Keys);
        Assert.Equal(samples, read.Decoded()["dep-2"]["p95-latency"]);
        var reason = Assert.Single(read.Unreadable);
        Assert.Equal("dep-1", reason.Key);
        Assert.Contains("error-rate", reason.Value, StringComparison.Ordinal);
        Assert.Contains("unknown layout (version byte 2", reason.Value, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reductions_StoredReadBackAndReplaced_OnlyWhereABaselineIs()
    {
        await using var service = await TestService.StartAsync();
        await SeedDeploymentsAsync(service, "dep-1", "dep-2");
        await SeedBaselinesAsync(service, ("dep-1", "p95-latency"), ("dep-1", "error-rate"), ("dep-2", "p95-latency"));
        var reduction = BaselineWindow.From(MetricKind.Latency, TwoHours, DetectorOptions.Default, Start.AddDays(1)).Encode();

        var none = await WithStoreAsync(service, db => EvaluationStore.ReducedAsync(db, ["dep-1", "dep-2"], CancellationToken.None));
        await StoreReducedAsync(service, ("dep-1", "p95-latency", [1, 2, 3]), ("dep-2", "p95-latency", reduction), ("dep-9", "p95-latency", reduction));
        await StoreReducedAsync(service, ("dep-1", "p95-latency", reduction));
        var read = await WithStoreAsync(service, db => EvaluationStore.ReducedAsync(db, ["dep-1", "dep-2", "dep-unknown"], CancellationToken.None));

        Assert.Empty(none);
        Assert.Equal(["dep-1", "dep-2"], read.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(["p95-latency"], read["dep-1"].Keys);
        Assert.Equal(reduction, read["dep-1"]["p95-latency"]);
        Assert.Equal(reduction, read["dep-2"]["p95-latency"]);
        Assert.Equal(3L, await service.CountAsync("watch_baselines"));
        Assert.Equal(TwoHours, (await WithStoreAsync(service, db => EvaluationStore.BaselinesAsync(db, ["dep-1"], CancellationToken.None))).Decoded()["dep-1"]["p95-latency"]);
    }

    [Fact]
    public async Task Reductions_WatchEnded_DroppedWithTheStateChangeTheSamplesStay()
    {
        await using var service = await TestService.StartAsync();
        await SeedDeploymentsAsync(service, "dep-ended", "dep-watching");
        await SeedBaselinesAsync(service, ("dep-ended", "p95-latency"), ("dep-ended", "error-rate"), ("dep-watching", "p95-latency"));
        await StoreReducedAsync(service, ("dep-ended", "p95-latency", [1]), ("dep-ended", "error-rate", [2]), ("dep-watching", "p95-latency", [3]));

        await service.Database.ExecuteAsync("UPDATE deployments SET updated_at = now()");
        Assert.Equal(3L, await service.CountAsync("watch_baselines", "reduced IS NOT NULL"));
        await service.Database.ExecuteAsync("UPDATE deployments SET state = 'rolled-back' WHERE id = 'dep-ended'");
        // A sweep that reduced it before the state changed stores nothing for it afterwards.
        await StoreReducedAsync(service, ("dep-ended", "p95-latency", [4]), ("dep-watching", "p95-latency", [5]));

        var reduced = await WithStoreAsync(service, db => EvaluationStore.ReducedAsync(db, ["dep-ended", "dep-watching"], CancellationToken.None));
        Assert.Equal(["dep-watching"], reduced.Keys);
        Assert.Equal([5], reduced["dep-watching"]["p95-latency"]);
        Assert.Equal(TwoHours, (await WithStoreAsync(service, db => EvaluationStore.BaselinesAsync(db, ["dep-ended"], CancellationToken.None))).Decoded()["dep-ended"]["p95-latency"]);
    }

    [Fact]
    public async Task Evaluations_EachQueryTextStoredOnce_ReadBackWithEveryEvaluation()
    {
        await using var service = await TestService.StartAsync();
        await SeedDeploymentsAsync(service, "dep-1", "dep-2");
        const string P95 = "histogram_quantile(0.95, sum by (le) (rate(latency_bucket{workload=\"checkout\"}[1m])))";
        // Two times of two deployments, two metrics each; both deployments ask the same p95 query, the error rate differs.
        var rows = (from id in new[] { "dep-1", "dep-2" }
                    from minute in new[] { 1, 2 }
                    from metric in new[] { ("p95-latency", P95), ("error-rate", $"errors{{deployment=\"{id}\"}}") }
                    select (id, new WatchEvaluation(Healthy(metric.Item1, Start.AddMinutes(minute)), metric.Item2))).ToList();

        Assert.Equal(["dep-1", "dep-2"], (await InsertEvaluationsAsync(service, rows)).Order());
        Assert.Empty(await InsertEvaluationsAsync(service, rows)); // a re-run after a crash: stored already, nothing twice

        Assert.Equal(3L, await service.CountAsync("evaluation_queries"));
        Assert.Equal(8L, await service.CountAsync("evaluations", "query IS NULL AND query_id IS NOT NULL AND state IS NULL AND detector IS NOT NULL"));
        Assert.Equal(4L, await service.CountAsync("evaluation_evidence", $"metric = 'p95-latency' AND query = '{P95}'"));
        Assert.Equal(2L, await service.CountAsync("evaluation_evidence", "metric = 'error-rate' AND query = 'errors{deployment=\"dep-2\"}'"));

        // A row from before migrations 0012 and 0013 holds its own text and its state as JSON: read the same way.
        await service.Database.ExecuteAsync($$"""
            INSERT INTO evaluations (deployment_id, metric, at, statistic, verdict, explanation, query, state, evaluated_at)
            VALUES ('dep-1', 'p95-latency', '{{Start.AddMinutes(3):O}}', 0, 'healthy', 'old', 'old text',
                    '{"cusum":1.5,"accumulatingSince":null,"intervalsAboveMax":0,"blindIntervals":0,"evaluations":3,"lastAt":"{{Start.AddMinutes(3):O}}","slowCusum":0.5,"sinceDeploySum":2.25,"sinceDeployLooks":3}', now())
            """);
        Assert.Equal("old text", await service.Database.ScalarAsync<string>("SELECT query FROM evaluation_evidence WHERE explanation = 'old'"));
        var latest = (await WithStoreAsync(service, db => EvaluationStore.LatestAsync(db, ["dep-1"], CancellationToken.None)))["dep-1"];
        Assert.Equal(new DetectorState(1.5, null, 0, 0, 3, Start.AddMinutes(3), 0.5, 2.25, 3), latest["p95-latency"].State);
        Assert.Equal(Start.AddMinutes(2), latest["error-rate"].At);
        Assert.Equal(Healthy("error-rate", Start.AddMinutes(2)).State, latest["error-rate"].State);
        var refused = await Assert.ThrowsAsync<Npgsql.PostgresException>(() => service.Database.ExecuteAsync($$"""
            INSERT INTO evaluations (deployment_id, metric, at, statistic, verdict, explanation, state, evaluated_at)
            VALUES ('dep-1', 'p95-latency', '{{Start.AddMinutes(4):O}}', 0, 'healthy', 'none', '{}', now())
            """));
        Assert.Equal("evaluations_query_text_or_pointer", refused.ConstraintName);
    }

    private static MetricEvaluation Healthy(string metric, DateTimeOffset at) =>
        new(metric, MetricKind.Latency, at, Verdict.Healthy, 0.2, 0.2, 0.24, 0, 5.3,
            new DetectorState(0.75, at.AddMinutes(-1), 0, 0, at.Minute, at, 0.25, -1.5, at.Minute), $"{metric} at {at:HH:mm}");

    private static Task<HashSet<string>> InsertEvaluationsAsync(TestService service, IReadOnlyList<(string, WatchEvaluation)> rows) =>
        WithStoreAsync(service, async db =>
        {
            await using var transaction = await db.Database.BeginTransactionAsync();
            var inserted = await EvaluationStore.InsertAsync(db, rows, Start, CancellationToken.None);
            await transaction.CommitAsync();
            return inserted;
        });

    /// <summary>Two hours of latency samples at 1-minute steps, a baseline for the reduction tests.</summary>
    private static readonly IReadOnlyList<Observation> TwoHours =
        [.. Enumerable.Range(1, 120).Select(i => new Observation(Start.AddMinutes(i), 0.2 + (i % 7) * 1e-3, 1000))];

    private static Task SeedBaselinesAsync(TestService service, params (string Deployment, string Metric)[] baselines) =>
        WithStoreAsync(service, db => EvaluationStore.InsertBaselinesAsync(
            db, [.. baselines.Select(b => (b.Deployment, b.Metric, TwoHours))], Start, CancellationToken.None));

    private static Task StoreReducedAsync(TestService service, params (string Deployment, string Metric, byte[] Reduced)[] reductions) =>
        WithStoreAsync(service, db => EvaluationStore.StoreReducedAsync(db, reductions, CancellationToken.None));

    private static Task SeedDeploymentsAsync(TestService service, params string[] ids) =>
        service.Database.ExecuteAsync($"""
            INSERT INTO deployments (id, service, environment, state, runbook_version_id, created_at, updated_at)
            SELECT id, 'checkout', 'production', 'watching', (SELECT min(id) FROM runbook_versions), now(), now()
            FROM unnest(ARRAY['{string.Join("','", ids)}']) AS id
            """);

    private static async Task<T> WithStoreAsync<T>(TestService service, Func<RolloutGateDbContext, Task<T>> action)
    {
        await using var scope = service.Host.Services.CreateAsyncScope();
        return await action(scope.ServiceProvider.GetRequiredService<RolloutGateDbContext>());
    }

    private static Task WithStoreAsync(TestService service, Func<RolloutGateDbContext, Task> action) =>
        WithStoreAsync(service, async db =>
        {
            await action(db);
            return true;
        });
}
