using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Deployments;
using RolloutGate.Rollbacks;
using RolloutGate.Tests.Infrastructure;
using RolloutGate.Webhooks;

namespace RolloutGate.Tests.Rollbacks;

/// <summary>
/// A replica killed with SIGKILL while its rollback webhook is on its way: nothing runs on the way out, so its claim is
/// neither released nor renewed, and the receiver may or may not have acted. Another process carries the rollback out
/// again with the same delivery id once the claim's lease has run out, records it once, and the audit trail says that
/// an earlier attempt was cut off.
/// </summary>
public sealed class RollbackKillTests : IAsyncLifetime
{
    private const string Secret = "rollback-hook-secret";

    private readonly ConcurrentQueue<(string Delivery, bool Signed)> received = new();
    private readonly TaskCompletionSource firstArrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource heldArrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource releaseHeld = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource stopping = new();
    private WebApplication receiver = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        receiver = builder.Build();
        // The first delivery is never answered: the replica sending it is killed meanwhile. Every later one is accepted.
        receiver.MapPost("/hooks/rollback", async (HttpRequest request) =>
        {
            using var buffer = new MemoryStream();
            await request.Body.CopyToAsync(buffer);
            var timestamp = request.Headers[WebhookAuthenticator.TimestampHeader].ToString();
            var signed = request.Headers[WebhookAuthenticator.SignatureHeader].ToString() == WebhookAuthenticator.SignatureHeaderValue(Secret, timestamp, buffer.ToArray());
            received.Enqueue((request.Headers[DeploymentEndpoints.DeliveryHeader].ToString(), signed));
            if (firstArrived.TrySetResult())
            {
                await Task.Delay(Timeout.Infinite, stopping.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            }

            return Results.Ok();
        });
        // A receiver that holds the first delivery until the test releases it, and accepts every later one at once.
        receiver.MapPost("/hooks/held", async (HttpRequest request) =>
        {
            received.Enqueue((request.Headers[DeploymentEndpoints.DeliveryHeader].ToString(), true));
            if (heldArrived.TrySetResult())
            {
                await releaseHeld.Task.WaitAsync(stopping.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            }

            return Results.Ok();
        });
        // A receiver that takes 4 s to answer: longer than the claim's lease in SeveralDueAtOnce below.
        receiver.MapPost("/hooks/slow", async (HttpRequest request) =>
        {
            received.Enqueue((request.Headers[DeploymentEndpoints.DeliveryHeader].ToString(), true));
            await Task.Delay(TimeSpan.FromSeconds(4));
            return Results.Ok();
        });
        await receiver.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await stopping.CancelAsync();
        await receiver.DisposeAsync();
        stopping.Dispose();
    }

    /// <summary>
    /// Bound: the second process starts (a few seconds) and its dispatcher, polling every 2 s, takes the claim over once
    /// its lease (<see cref="RollbackResilienceOptions.DefaultClaimLease"/>, 30 s) has run out since the killed one claimed or last
    /// renewed it: well under the 90 s this waits.
    /// </summary>
    [Fact]
    public async Task KilledWhileTheWebhookIsUnanswered_AnotherProcessSendsItAgainWithTheSameDeliveryIdAndRecordsItOnce()
    {
        await using var database = await TestDatabase.CreateAsync();
        using var runbooks = new TestRunbooks(("checkout.yaml", Runbook(receiver.Urls.Single() + "/hooks/rollback")));
        await using (var first = await ServiceProcess.StartAsync(database, runbooks.Folder))
        {
            using var client = first.Client();
            Assert.Equal(HttpStatusCode.Accepted, (await new WebhookClient(client).SendEventAsync("deployed", "rb-kill")).StatusCode);
            using var operatorClient = first.Client(RolloutGateHost.OperatorToken);
            var decided = await operatorClient.PostAsJsonAsync(new Uri("/api/v1/deployments/rb-kill/rollback", UriKind.Relative), new { actor = "bob", reason = "p95 up" });
            Assert.Equal(HttpStatusCode.OK, decided.StatusCode);

            await firstArrived.Task.WaitAsync(TimeSpan.FromSeconds(60));
            await first.KillAsync();
        }

        Assert.Equal("rolling-back", await database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-kill'"));
        await using var second = await ServiceProcess.StartAsync(database, runbooks.Folder);
        var deadline = TimeProvider.System.GetUtcNow() + TimeSpan.FromSeconds(90);
        while (await database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-kill'") == "rolling-back" && TimeProvider.System.GetUtcNow() < deadline)
        {
            await Task.Delay(250);
        }

        Assert.Equal("rolled-back", await database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-kill'"));
        // Sent twice, as promised: at least once, with one delivery id the receiver can deduplicate on, signed each time.
        Assert.Equal([("rb-kill:rollback", true), ("rb-kill:rollback", true)], received.ToArray());
        Assert.Equal(1L, await database.ScalarAsync<long>("SELECT count(*) FROM audit_events WHERE deployment_id = 'rb-kill' AND type = 'rollback.action'"));
        Assert.Equal(1L, await database.ScalarAsync<long>(
            "SELECT count(*) FROM audit_events WHERE deployment_id = 'rb-kill' AND type = 'deployment.state-changed' AND data::jsonb->>'to' = 'rolled-back'"));
        // The record says an earlier attempt was cut off, by whom and since when.
        var interrupted = await database.ScalarAsync<string>(
            "SELECT data::jsonb->>'interrupted' FROM audit_events WHERE deployment_id = 'rb-kill' AND type = 'rollback.action'");
        Assert.NotNull(interrupted);
        Assert.Contains("ended without an outcome", interrupted, StringComparison.Ordinal);
        Assert.Contains("the same idempotency key (rb-kill:rollback)", interrupted, StringComparison.Ordinal);
        using var reader = second.Client(RolloutGateHost.ReaderToken);
        var verified = await reader.GetJsonAsync("/api/v1/audit/verify");
        Assert.True(verified.GetProperty("ok").GetBoolean());
    }

    /// <summary>
    /// The other side of the lease: an action that runs longer than the lease (a slow receiver, retries) keeps its claim,
    /// renewed while it runs, and another replica dispatching meanwhile does not carry it out again. Here with a 5 s lease
    /// renewed every 200 ms, and a receiver that holds the delivery until the other replica has dispatched once the
    /// database's clock is past the claim's first lease: not renewed, the claim had run out by then and was taken over.
    /// Neither the receiver's hold nor the other replica's poll is a fixed duration, so a late thread cannot move either
    /// to the wrong side of the lease; only renewals missing for the whole 5 s would lose it.
    /// </summary>
    [Fact]
    public async Task ActionLongerThanTheLease_ClaimRenewed_TheOtherReplicaDoesNotTakeItOver()
    {
        var lease = TimeSpan.FromSeconds(5);
        await using var service = await TestService.StartAsync(
            [("checkout.yaml", Runbook(receiver.Urls.Single() + "/hooks/held"))], settings: null, services =>
            {
                services.Configure<RollbackResilienceOptions>(options =>
                {
                    options.ClaimLease = lease;
                    options.ClaimRenewal = TimeSpan.FromMilliseconds(200);
                });
                PollOnlyAtStart(services);
            });
        Assert.Equal(HttpStatusCode.Accepted, (await service.Webhooks.SendEventAsync("deployed", "rb-slow")).StatusCode);
        await service.RegressAsync("rb-slow", "p95-latency");
        await service.DecideAsync("rb-slow", "rollback", "bob");
        var claiming = Replica(service, TimeProvider.System);
        var other = Replica(service, TimeProvider.System);

        var first = claiming.DispatchDueAsync(CancellationToken.None);
        await heldArrived.Task.WaitAsync(TimeSpan.FromSeconds(60));
        // claimed_at is when the claim was taken; renewals move claimed_until only.
        while (!await service.Database.ScalarAsync<bool>(
            $"SELECT clock_timestamp() > claimed_at + interval '{lease.TotalSeconds} seconds' FROM rollback_actions WHERE deployment_id = 'rb-slow'"))
        {
            await Task.Delay(100);
        }

        var second = await other.DispatchDueAsync(CancellationToken.None);
        releaseHeld.SetResult();

        Assert.Equal(1, await first.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal(0, second);
        Assert.Equal("rolled-back", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-slow'"));
        Assert.Single(received);
        Assert.Equal(1L, await service.CountAsync("audit_events", "deployment_id = 'rb-slow' AND type = 'rollback.action' AND NOT data::jsonb ? 'interrupted'"));
        Assert.DoesNotContain(service.Host.Logs.Lines, line =>
            line.Contains("carrying the action out again", StringComparison.Ordinal) || line.Contains("another replica took it over", StringComparison.Ordinal));
    }

    /// <summary>
    /// One dispatch carries out several rollbacks one after another; each claim's lease starts when that claim is taken.
    /// Dated from the start of the dispatch instead, the second claim here (taken after the first action's 4 s, with a
    /// 1 s lease) was born run out: any replica polling then would carry that action out a second time.
    /// </summary>
    [Fact]
    public async Task SeveralDueAtOnce_EachClaimDatedWhenItIsTaken()
    {
        // Only the explicit dispatch below carries rollbacks out, both in one pass.
        var url = receiver.Urls.Single() + "/hooks/slow";
        await using var service = await TestService.StartAsync(
            [("checkout.yaml", Runbook(url)), ("payments.yaml", Runbook(url).Replace("checkout", "payments", StringComparison.Ordinal))],
            settings: null, services =>
            {
                services.Configure<RollbackResilienceOptions>(options => options.ClaimLease = TimeSpan.FromSeconds(1));
                PollOnlyAtStart(services);
            });
        foreach (var (id, name) in new[] { ("rb-one", "checkout"), ("rb-two", "payments") })
        {
            Assert.Equal(HttpStatusCode.Accepted, (await service.Webhooks.SendEventAsync("deployed", id, service: name)).StatusCode);
            await service.RegressAsync(id, "p95-latency");
            await service.DecideAsync(id, "rollback", "bob");
        }

        var dispatcher = service.Host.Services.GetRequiredService<RollbackDispatcher>();
        Assert.Equal(2, await dispatcher.DispatchDueAsync(CancellationToken.None));

        Assert.Equal(2L, await service.CountAsync("deployments", "id IN ('rb-one', 'rb-two') AND state = 'rolled-back'"));
        // The later claim was taken after the earlier action had finished, not dated before it.
        Assert.True(await service.Database.ScalarAsync<bool>(
            "SELECT max(claimed_at) >= min(finished_at) FROM rollback_actions WHERE deployment_id IN ('rb-one', 'rb-two')"));
    }

    /// <summary>
    /// Beside an older replica (before migration 0020), which takes a claim over once its claimed_at is 10 minutes old and
    /// leaves claimed_until as it found it: the older replica's claim, taken a minute ago over one whose lease ran out long
    /// before, is under way, and is not taken over for that stale lease.
    /// </summary>
    [Fact]
    public async Task ClaimTakenOverByAnOlderReplica_ItsStaleLeaseIsNotTakenOver()
    {
        await using var service = await TestService.StartAsync(
            [("checkout.yaml", Runbook(receiver.Urls.Single() + "/hooks/slow"))], settings: null, PollOnlyAtStart);
        Assert.Equal(HttpStatusCode.Accepted, (await service.Webhooks.SendEventAsync("deployed", "rb-mixed")).StatusCode);
        await service.RegressAsync("rb-mixed", "p95-latency");
        await service.DecideAsync("rb-mixed", "rollback", "bob");
        await service.Database.ExecuteAsync("""
            INSERT INTO rollback_actions (deployment_id, claimed_at, claimed_by, claimed_until)
            VALUES ('rb-mixed', now() - interval '1 minute', 'older-replica', now() - interval '12 minutes')
            """);

        Assert.Equal(0, await service.Host.Services.GetRequiredService<RollbackDispatcher>().DispatchDueAsync(CancellationToken.None));

        Assert.Empty(received);
        Assert.Equal("older-replica", await service.Database.ScalarAsync<string>("SELECT claimed_by FROM rollback_actions WHERE deployment_id = 'rb-mixed'"));
    }

    /// <summary>
    /// Two replicas whose clocks differ by 40 s, more than the 30 s lease: one claims a rollback and its webhook is under
    /// way (and its claim renewed), then the other dispatches. Whichever of the two runs ahead, the other's claim is live
    /// and is not taken over: one delivery, one outcome. Compared on each replica's own clock, the replica ahead saw the
    /// live claim as run out (or the one behind wrote it run out already) and delivered the rollback a second time.
    /// </summary>
    [Theory]
    [InlineData(0, 40)]
    [InlineData(-40, 0)]
    public async Task ReplicaClocksFortySecondsApart_TheLiveClaimIsNotTakenOver(int claimingOffsetSeconds, int otherOffsetSeconds)
    {
        await using var service = await TestService.StartAsync(
            [("checkout.yaml", Runbook(receiver.Urls.Single() + "/hooks/held"))], settings: null, PollOnlyAtStart);
        Assert.Equal(HttpStatusCode.Accepted, (await service.Webhooks.SendEventAsync("deployed", "rb-skew")).StatusCode);
        await service.RegressAsync("rb-skew", "p95-latency");
        await service.DecideAsync("rb-skew", "rollback", "bob");
        var claiming = Replica(service, new ShiftedClock(TimeProvider.System.GetUtcNow().AddSeconds(claimingOffsetSeconds)));
        var other = Replica(service, new ShiftedClock(TimeProvider.System.GetUtcNow().AddSeconds(otherOffsetSeconds)));

        var first = claiming.DispatchDueAsync(CancellationToken.None);
        await heldArrived.Task.WaitAsync(TimeSpan.FromSeconds(60));
        var second = await other.DispatchDueAsync(CancellationToken.None);
        releaseHeld.SetResult();

        Assert.Equal(1, await first.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal(0, second);
        Assert.Single(received);
        Assert.Equal("rolled-back", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-skew'"));
        Assert.Equal(1L, await service.CountAsync("audit_events", "deployment_id = 'rb-skew' AND type = 'rollback.action' AND NOT data::jsonb ? 'interrupted'"));
    }

    /// <summary>Another replica's dispatcher (its own claim id) in <paramref name="service"/>'s process, on <paramref name="clock"/>.</summary>
    private static RollbackDispatcher Replica(TestService service, TimeProvider clock) =>
        ActivatorUtilities.CreateInstance<RollbackDispatcher>(service.Host.Services, clock);

    /// <summary>The dispatcher polls once at start and never again (its timers never fire): a test dispatches explicitly.</summary>
    private static void PollOnlyAtStart(IServiceCollection services) =>
        services.AddSingleton(provider => ActivatorUtilities.CreateInstance<RollbackDispatcher>(provider, new TimersNeverFire()));

    /// <summary>The system clock, whose timers never fire.</summary>
    private sealed class TimersNeverFire : TimeProvider
    {
        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            System.CreateTimer(callback, state, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>The minimal runbook, rolling back with a <c>webhook</c> action to <paramref name="url"/>.</summary>
    private static string Runbook(string url) => TestRunbooks.Minimal().Replace(
        "istio:\n        virtualService: checkout\n        stableSubset: stable",
        $"webhook:\n        url: {url}\n        secret: {Secret}",
        StringComparison.Ordinal);
}
