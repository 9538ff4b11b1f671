using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Kubernetes;
using RolloutGate.Rollbacks;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Rollbacks;

/// <summary>Decided rollbacks are carried out exactly once, also when two replicas share the database, and recorded also when the host stops meanwhile.</summary>
public sealed class RollbackDispatcherTests
{
    [Fact]
    public async Task TwoReplicas_OneDecidedRollback_OnePatchOneOutcome_RolledBack()
    {
        await using var kubernetes = await HalfCanaryAsync();
        var settings = Settings(kubernetes);
        await using var first = await TestService.StartAsync([("checkout.yaml", TestRunbooks.Minimal())], settings);
        await using var second = new RolloutGateHost(first.Database, new Dictionary<string, string?>(settings)
        {
            ["RolloutGate:RunbooksPath"] = first.Runbooks.Folder,
        });
        using var _ = second.CreateClient();

        await first.Webhooks.SendEventAsync("deployed", "rb-1");
        await first.RegressAsync("rb-1", "p95-latency");
        await first.DecideAsync("rb-1", "rollback", "bob");

        // Both replicas' dispatchers poll on their own; make them also race explicitly.
        var dispatched = await Task.WhenAll(
            first.Host.Services.GetRequiredService<RollbackDispatcher>().DispatchDueAsync(CancellationToken.None),
            second.Services.GetRequiredService<RollbackDispatcher>().DispatchDueAsync(CancellationToken.None));
        for (var i = 0; i < 50 && await first.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-1'") != "rolled-back"; i++)
        {
            await Task.Delay(200);
        }

        Assert.Equal("rolled-back", await first.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-1'"));
        Assert.InRange(dispatched.Sum(), 0, 1);
        // One read and one patch: a second execution would read again (and record a second outcome).
        Assert.Single(kubernetes.Requests, request => request.StartsWith("GET ", StringComparison.Ordinal));
        Assert.Single(kubernetes.Requests, request => request.StartsWith("PATCH ", StringComparison.Ordinal));
        Assert.Equal(1, await first.CountAsync("rollback_actions", "deployment_id = 'rb-1' AND succeeded"));
        Assert.Equal(1, await first.CountAsync("audit_events", "type = 'rollback.action' AND deployment_id = 'rb-1'"));
        AssertAllOnStable(kubernetes);
    }

    [Fact]
    public async Task HostStoppingWhileTheMeshIsPatched_TheRollbackIsStillRecorded()
    {
        await using var kubernetes = await HalfCanaryAsync();
        await using var service = await TestService.StartAsync([("checkout.yaml", TestRunbooks.Minimal())], Settings(kubernetes));
        var dispatcher = service.Host.Services.GetRequiredService<RollbackDispatcher>();
        var stopping = new TaskCompletionSource<Task>(TaskCreationOptions.RunContinuationsAsynchronously);
        kubernetes.AfterNextPatch(() => stopping.SetResult(dispatcher.StopAsync(CancellationToken.None)));

        await service.Webhooks.SendEventAsync("deployed", "rb-stop");
        await service.RegressAsync("rb-stop", "p95-latency");
        await service.DecideAsync("rb-stop", "rollback", "bob");

        // The dispatcher was told to stop while the patch was on its way back: traffic is on stable, so that must be on record.
        var stopped = await stopping.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await stopped.WaitAsync(TimeSpan.FromSeconds(60));
        AssertAllOnStable(kubernetes);
        Assert.Equal("rolled-back", await service.Database.ScalarAsync<string>("SELECT state FROM deployments WHERE id = 'rb-stop'"));
        Assert.Equal(1, await service.CountAsync("rollback_actions", "deployment_id = 'rb-stop' AND succeeded"));
        Assert.Equal(1, await service.CountAsync("audit_events", "type = 'rollback.action' AND deployment_id = 'rb-stop'"));
    }

    private static async Task<FakeKubernetesApiServer> HalfCanaryAsync()
    {
        var kubernetes = await FakeKubernetesApiServer.StartAsync();
        kubernetes.Store(KubernetesResource.IstioVirtualService, "shop", "checkout", JsonNode.Parse("""
            {"hosts":["checkout"],"http":[{"route":[
              {"destination":{"host":"checkout","subset":"stable"},"weight":50},
              {"destination":{"host":"checkout","subset":"canary"},"weight":50}]}]}
            """)!.AsObject());
        return kubernetes;
    }

    private static Dictionary<string, string?> Settings(FakeKubernetesApiServer kubernetes) => new()
    {
        ["RolloutGate:Kubernetes:ApiServer"] = kubernetes.Url,
        ["RolloutGate:Kubernetes:TokenFile"] = kubernetes.TokenFile,
    };

    private static void AssertAllOnStable(FakeKubernetesApiServer kubernetes)
    {
        var route = kubernetes.Stored(KubernetesResource.IstioVirtualService, "shop", "checkout")["spec"]!["http"]![0]!["route"]!.AsArray();
        Assert.Equal("stable", Assert.Single(route)!["destination"]!["subset"]!.GetValue<string>());
    }
}
