using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using RolloutGate.Audit;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Tests.Dashboard;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Watch;

namespace RolloutGate.Tests.Watch;

/// <summary>
/// Retention (RolloutGate:Watch:EvaluationRetentionDays): the evaluations between verdict changes of deployments whose
/// watch ended long enough ago are deleted, the changes and each metric's last are kept, and the deletion is audited.
/// </summary>
public sealed class EvaluationRetentionTests
{
    private static readonly Dictionary<string, string?> NinetyDays = new() { ["RolloutGate:Watch:EvaluationRetentionDays"] = "90" };

    [Fact]
    public async Task Thin_KeepsEveryVerdictChangeAndEachMetricsLastOfAnOldWatch_AuditsItOnce_AndLeavesNewerAndUndecidedOnesAlone()
    {
        await using var service = await TestService.StartAsync([("checkout.yaml", TestRunbooks.Minimal())], NinetyDays);
        foreach (var id in new[] { "old", "recent", "undecided" })
        {
            (await service.Webhooks.SendEventAsync("predeploy", id)).EnsureSuccessStatusCode();
            (await service.Webhooks.SendEventAsync("deployed", id)).EnsureSuccessStatusCode();
            // Out of the watch's hands before it sees them: these rows stand for watches long over.
            await service.Database.ExecuteAsync($"UPDATE deployments SET state = 'completed' WHERE id = '{id}'");
            await EvaluationSeed.InsertAsync(service, id, "error-rate", [0.010, 0.011, 0.012, 0.030, 0.035], regressedFrom: 3);
            await EvaluationSeed.InsertAsync(service, id, "p95-latency", [0.2, 0.21, 0.22]);
            await service.Database.ExecuteAsync(
                $"INSERT INTO watch_baselines (deployment_id, metric, captured_at, samples) VALUES ('{id}', 'error-rate', now(), '\\x0100000000')");
        }

        // A change cancelled before it was deployed: never watched, nothing to delete.
        (await service.Webhooks.SendEventAsync("predeploy", "never-watched")).EnsureSuccessStatusCode();
        await service.Database.ExecuteAsync("""
            UPDATE deployments SET state = 'cancelled', updated_at = now() - interval '91 days' WHERE id = 'never-watched';
            UPDATE deployments SET updated_at = now() - interval '91 days' WHERE id = 'old';
            UPDATE deployments SET updated_at = now() - interval '89 days' WHERE id = 'recent';
            UPDATE deployments SET state = 'regressed', updated_at = now() - interval '200 days' WHERE id = 'undecided';
            """);
        var retention = service.Host.Services.GetRequiredService<EvaluationRetention>();

        var pass = await retention.ThinAsync(CancellationToken.None);

        Assert.Equal(new RetentionPass(1, 3, 1), pass);
        // Minute 1 set each verdict, minute 4 changed error-rate's, and the last of each stays.
        Assert.Equal(["error-rate 1 healthy", "error-rate 4 regressed", "error-rate 5 regressed", "p95-latency 1 healthy", "p95-latency 3 healthy"],
            await EvaluationsAsync(service, "old"));
        Assert.Equal(8, (await EvaluationsAsync(service, "recent")).Length);
        Assert.Equal(8, (await EvaluationsAsync(service, "undecided")).Length);
        Assert.Equal(["recent", "undecided"],
            await service.Database.ScalarAsync<string[]>("SELECT array_agg(deployment_id ORDER BY deployment_id) FROM watch_baselines") ?? []);

        using var reader = service.Reader();
        var events = await reader.GetFromJsonAsync<JsonElement>("/api/v1/audit/events?type=evaluations.thinned");
        var thinned = Assert.Single(events.GetProperty("events").EnumerateArray());
        Assert.Equal("old", thinned.GetProperty("deploymentId").GetString());
        Assert.Equal("rolloutgate", thinned.GetProperty("actor").GetString());
        var data = thinned.GetProperty("data");
        Assert.Equal(90, data.GetProperty("retentionDays").GetInt32());
        Assert.Equal(3, data.GetProperty("evaluationsRemoved").GetInt32());
        Assert.Equal(5, data.GetProperty("evaluationsKept").GetInt32());
        Assert.Equal(1, data.GetProperty("baselinesRemoved").GetInt32());
        Assert.True((await reader.GetFromJsonAsync<JsonElement>("/api/v1/audit/verify")).GetProperty("ok").GetBoolean());

        // The deployment's view still shows its latest evaluation, and its page says what retention did.
        var view = await reader.GetFromJsonAsync<JsonElement>("/api/v1/deployments/old");
        var latest = view.GetProperty("latestEvaluation").GetProperty("metrics").EnumerateArray()
            .Single(m => m.GetProperty("name").GetString() == "error-rate");
        Assert.Equal(0.035, latest.GetProperty("value").GetDouble());
        Assert.Equal("regressed", latest.GetProperty("verdict").GetString());
        using var browser = service.Host.CreateClient(new WebApplicationFactoryClientOptions { HandleCookies = true });
        var page = await browser.GetStringAsync($"/dashboard/deployments/old?token={RolloutGateHost.ReaderToken}");
        Assert.Contains("Retention deleted 3 evaluation(s) between verdict changes", page, StringComparison.Ordinal);
        Assert.Contains("3 evaluation(s)", page, StringComparison.Ordinal);
        Assert.DoesNotContain("Retention deleted", await browser.GetStringAsync("/dashboard/deployments/recent"), StringComparison.Ordinal);
        // Visited, but nothing was deleted: its page says it was never watched, and not that retention deleted anything.
        Assert.True(await service.Database.ScalarAsync<bool>("SELECT evaluations_thinned_at IS NOT NULL FROM deployments WHERE id = 'never-watched'"));
        var neverWatched = await browser.GetStringAsync("/dashboard/deployments/never-watched");
        Assert.Contains("this change was never watched", neverWatched, StringComparison.Ordinal);
        Assert.DoesNotContain("Retention deleted", neverWatched, StringComparison.Ordinal);

        // A deployment is thinned once: the next pass finds nothing, and no second event is written.
        Assert.Equal(new RetentionPass(0, 0, 0), await retention.ThinAsync(CancellationToken.None));
        Assert.Single((await reader.GetFromJsonAsync<JsonElement>("/api/v1/audit/events?type=evaluations.thinned")).GetProperty("events").EnumerateArray());
    }

    [Fact]
    public async Task Thin_IsOffUnlessConfigured()
    {
        await using var service = await TestService.StartAsync();
        (await service.Webhooks.SendEventAsync("predeploy", "kept-forever")).EnsureSuccessStatusCode();
        (await service.Webhooks.SendEventAsync("deployed", "kept-forever")).EnsureSuccessStatusCode();
        await service.Database.ExecuteAsync("UPDATE deployments SET state = 'completed' WHERE id = 'kept-forever'");
        await EvaluationSeed.InsertAsync(service, "kept-forever", "p95-latency", [0.2, 0.2, 0.2, 0.2]);
        await service.Database.ExecuteAsync("UPDATE deployments SET updated_at = now() - interval '10 years' WHERE id = 'kept-forever'");

        Assert.Equal(new RetentionPass(0, 0, 0), await service.Host.Services.GetRequiredService<EvaluationRetention>().ThinAsync(CancellationToken.None));
        Assert.Equal(4, (await EvaluationsAsync(service, "kept-forever")).Length);
    }

    [Fact]
    public async Task APassThatFails_IsTriedAgainInFiveMinutesRatherThanAnHour()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var logs = new LogCapture();
        var services = new ServiceCollection();
        services.AddLogging(logging => logging.AddProvider(logs));
        // Port 1 on the loopback: nothing listens, so every pass fails at once as the database being unavailable.
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(
            new Dictionary<string, string?> { ["ConnectionStrings:RolloutGate"] = "Host=127.0.0.1;Port=1;Username=rolloutgate" }).Build());
        services.AddRolloutGateDatabase();
        await using var provider = services.BuildServiceProvider();
        var outage = new DatabaseOutageLog(provider.GetRequiredService<ILogger<DatabaseOutageLog>>(), clock);
        using var retention = new EvaluationRetention(provider.GetRequiredService<IServiceScopeFactory>(), new AuditTrail(clock, []),
            new FixedOptions(new WatchOptions { EvaluationRetentionDays = 90 }), clock, outage, provider.GetRequiredService<ILogger<EvaluationRetention>>());
        int Failures() => logs.Lines.Count(line => line.Contains("Evaluation retention: the database is unavailable", StringComparison.Ordinal));

        await retention.StartAsync(CancellationToken.None);
        // The first pass is a minute after the start, the clock moved minute by minute (the pass may not be waiting yet
        // when it moves); the next, after a failure, within 10 minutes, not in an hour.
        await AdvanceUntilAsync(clock, () => Failures() == 1, TimeSpan.FromMinutes(5), logs);
        await AdvanceUntilAsync(clock, () => Failures() >= 2, TimeSpan.FromMinutes(10), logs);
        await retention.StopAsync(CancellationToken.None);

    }

    private static async Task AdvanceUntilAsync(FakeTimeProvider clock, Func<bool> done, TimeSpan atMost, LogCapture logs)
    {
        for (var moved = TimeSpan.Zero; !done() && moved < atMost; moved += TimeSpan.FromMinutes(1))
        {
            clock.Advance(TimeSpan.FromMinutes(1));
            for (var i = 0; i < 20 && !done(); i++)
            {
                await Task.Delay(100);
            }
        }

        Assert.True(done(), $"not done within {atMost} of the service's clock; logged: {string.Join(" | ", logs.Lines)}");
    }

    private sealed class FixedOptions(WatchOptions value) : IOptionsMonitor<WatchOptions>
    {
        public WatchOptions CurrentValue => value;

        public WatchOptions Get(string? name) => value;

        public IDisposable? OnChange(Action<WatchOptions, string?> listener) => null;
    }

    /// <summary>"metric minute verdict" of each stored evaluation, minutes counted from the deploy.</summary>
    private static async Task<string[]> EvaluationsAsync(TestService service, string id) =>
        await service.Database.ScalarAsync<string[]>($"""
            SELECT coalesce(array_agg(e.metric || ' ' || extract(epoch FROM e.at - d.deployed_at)::int / 60 || ' ' || e.verdict
                                      ORDER BY e.metric, e.at), '{"{}"}')
            FROM evaluations e JOIN deployments d ON d.id = e.deployment_id WHERE e.deployment_id = '{id}'
            """) ?? [];
}
