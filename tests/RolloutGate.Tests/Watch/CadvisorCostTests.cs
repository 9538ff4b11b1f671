using Microsoft.Extensions.DependencyInjection;
using RolloutGate.Core.Runbooks;
using RolloutGate.Prometheus;
using RolloutGate.Tests.Prometheus;
using RolloutGate.Watch;

namespace RolloutGate.Tests.Watch;

/// <summary>
/// cost-per-request against what a kubelet's cAdvisor exports for a namespace with workloads whose names begin alike:
/// <c>cart</c> (a Deployment), <c>cart-worker</c> (a Deployment) and <c>cart-db</c> (a StatefulSet, pod <c>cart-db-0</c>),
/// each pod with its pause container (<c>container="POD"</c>) and its pod-level cgroup (<c>container=""</c>).
/// </summary>
public sealed class CadvisorCostTests : IAsyncLifetime
{
    private const double CpuCoreHour = 0.031;
    private const double MemoryGiBHour = 0.0042;
    private static readonly DateTimeOffset DeployedAt = WatchPrometheus.DeployedAt;

    private static readonly Workload[] Workloads =
    [
        new("istio", WatchPrometheus.Namespace, "cart", TrafficShape.Healthy, TrafficShape.Healthy),
        new("istio", WatchPrometheus.Namespace, "cart-worker", TrafficShape.Healthy with { CpuCores = 1.5 }, TrafficShape.Healthy with { CpuCores = 1.5 }, "cart-worker-6b8c9d5f4-q2w8z"),
        new("istio", WatchPrometheus.Namespace, "cart-db", TrafficShape.Healthy with { CpuCores = 1 }, TrafficShape.Healthy with { CpuCores = 1 }, "cart-db-0"),
    ];

    private PrometheusProcess prometheus = null!;

    public async Task InitializeAsync() =>
        prometheus = await PrometheusProcess.BackfilledAsync(MeshTraffic.OpenMetrics(Workloads, DeployedAt.AddHours(-1), DeployedAt.AddHours(1), DeployedAt, podCgroups: true));

    public Task DisposeAsync()
    {
        prometheus.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task CostPerRequest_WorkloadsNamedAlike_EachCountsItsOwnPodsAppContainersOnly()
    {
        await using var provider = PrometheusTestServer.Services(options => options.Prometheus.Url = prometheus.Url);
        var client = provider.GetRequiredService<IPrometheusClient>();
        var costs = Workloads
            .Select(w => WatchPlan.From(RunbookParser.Parse(WatchTests.Runbook(w.Name), $"{w.Name}.yaml").Runbook!, "production").Metrics.Single(m => m.Name == "cost-per-request"))
            .ToList();
        var at = DeployedAt.AddMinutes(30);

        // All three in one batch, as the watch asks when they are due at the same t.
        var seen = await new PrometheusMetricSource(client).ObserveAsync(costs, at, CancellationToken.None);

        foreach (var (workload, metric, observed) in Workloads.Zip(costs, seen))
        {
            // Its app container alone: not the other workloads' pods, the pause container or the pod's cgroup total.
            var expected = (workload.After.CpuCores * CpuCoreHour + MeshTraffic.MemoryBytes / (1024 * 1024 * 1024) * MemoryGiBHour) / 3600 / 20;
            Assert.Equal(expected, observed.Observation.Value!.Value, expected * 1e-9);
            var evidence = Assert.Single(await client.QueryAsync(metric.Query.Value, at, CancellationToken.None));
            Assert.Equal(expected, evidence.Value, expected * 1e-9);
        }
    }
}
