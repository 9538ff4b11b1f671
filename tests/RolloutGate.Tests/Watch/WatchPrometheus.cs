using RolloutGate.Tests.Prometheus;

namespace RolloutGate.Tests.Watch;

/// <summary>
/// A Prometheus of the test class's own, backfilled with <see cref="MeshTraffic"/> series: 1-minute samples over about
/// 26 hours, ending a couple of minutes before now, with a deploy at <see cref="DeployedAt"/> (a whole minute about 2h ago).
/// A 2-hour watch of these workloads ends at <see cref="WatchUntil"/>, before the data does, so the whole watch is catch-up.
/// </summary>
public sealed class WatchPrometheus : IAsyncLifetime
{
    public const string Namespace = "shop";

    public static readonly IReadOnlyList<Workload> Workloads =
    [
        new("istio", Namespace, "healthy", TrafficShape.Healthy, TrafficShape.Healthy),
        new("istio", Namespace, "slow", TrafficShape.Healthy, TrafficShape.Healthy with { LatencyShares = TrafficShape.SlowLatency }),
        new("istio", Namespace, "failing", TrafficShape.Healthy, TrafficShape.Healthy with { ErrorRatio = 0.05 }),
        new("istio", Namespace, "costly", TrafficShape.Healthy, TrafficShape.Healthy with { CpuCores = 1.5 }),
        new("istio", Namespace, "idle", TrafficShape.Healthy, TrafficShape.Healthy with { RequestsPerMinute = 0 }),
        new("linkerd", "pay", "ledger", TrafficShape.Healthy, TrafficShape.Healthy),
        // One service in two environments, a namespace each, in one Prometheus: only staging's errors rise at the deploy.
        new("istio", "shop-staging", "cart", TrafficShape.Healthy, TrafficShape.Healthy with { ErrorRatio = 0.05 }),
        new("istio", "shop-production", "cart", TrafficShape.Healthy, TrafficShape.Healthy),
    ];

    private PrometheusProcess? prometheusProcess;

    public static DateTimeOffset Now { get; } = DateTimeOffset.FromUnixTimeSeconds(TimeProvider.System.GetUtcNow().ToUnixTimeSeconds() / 60 * 60);

    public static DateTimeOffset DeployedAt { get; } = Now.AddMinutes(-125);

    public static DateTimeOffset WatchUntil => DeployedAt.AddHours(2);

    public string Url { get; private set; } = "";

    public async Task InitializeAsync()
    {
        prometheusProcess = await PrometheusProcess.BackfilledAsync(
            MeshTraffic.OpenMetrics(Workloads, DeployedAt.AddHours(-24).AddMinutes(-30), Now.AddMinutes(-2), DeployedAt));
        Url = prometheusProcess.Url;
    }

    public Task DisposeAsync()
    {
        prometheusProcess?.Dispose();
        return Task.CompletedTask;
    }
}
