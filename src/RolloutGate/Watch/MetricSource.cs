using RolloutGate.Core.Analysis;
using RolloutGate.Core.Checks;
using RolloutGate.Core.Runbooks;
using RolloutGate.Core.Watch;

namespace RolloutGate.Watch;

/// <summary>A runbook metric ready to evaluate: its spec, the test it needs and its queries.</summary>
public sealed record WatchMetric(MetricSpec Spec, MetricKind Kind, MetricQuery Query)
{
    public string Name => Spec.Name;
}

/// <summary>A runbook's watch, resolved once: the metrics with their queries and the detector's options.</summary>
public sealed record WatchPlan(WatchSpec Watch, IReadOnlyList<WatchMetric> Metrics, DetectorOptions Options)
{
    /// <summary>
    /// The runbook's <c>watch.timezone</c>, resolved: the clock on which a baseline's "same time of day" is read (null for
    /// UTC). The parser has checked that it resolves.
    /// </summary>
    public TimeZoneInfo? TimeZone { get; } = Watch.TimeZone is { } id ? FreezeCalendar.ZoneById(id) : null;

    /// <summary>
    /// The watch of a change in <paramref name="environment"/>: its queries, and the namespace and workload its presets
    /// select, rendered for it (<see cref="QueryPlaceholders"/>, <see cref="RunbookMesh.For"/>), so two changes of one
    /// runbook in two environments never send, nor share the answer to, the same query.
    /// </summary>
    public static WatchPlan From(Runbook runbook, string environment)
    {
        var watch = QueryPlaceholders.ForEnvironment(runbook, environment).Watch;
        var mesh = runbook.Mesh.For(environment);
        return new(
            watch,
            [.. watch.Metrics.Select(m => new WatchMetric(m, MetricKinds.FromPreset(m.Preset), MetricQueries.For(m, mesh, watch.Interval)))],
            DetectorOptions.ForWatch(watch));
    }
}

/// <summary>One interval of one metric as the source saw it, and a remark the explanation must carry.</summary>
/// <param name="Note">For example that a latency lies beyond the histogram's last finite bucket, or that the query was rejected.</param>
public sealed record MetricObservation(Observation Observation, string? Note = null);

/// <summary>
/// Where the watch reads its metrics: Prometheus at time t for the live watch and a backtest against Prometheus, or
/// recorded values (CSV) for a backtest. The evaluation code is the same for all.
/// </summary>
public interface IMetricSource
{
    /// <summary>
    /// The metrics, of one watch or of many, for the interval ending at <paramref name="at"/>, in the order given. Throws
    /// when the source cannot answer (never "no data"); a query the source rejects is no data for its metric, with the
    /// rejection in the note.
    /// </summary>
    Task<IReadOnlyList<MetricObservation>> ObserveAsync(IReadOnlyList<WatchMetric> metrics, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>The intervals from <paramref name="from"/> to <paramref name="to"/>, one per <paramref name="step"/>, for the baseline.</summary>
    Task<IReadOnlyList<Observation>> BaselineAsync(
        WatchMetric metric, DateTimeOffset from, DateTimeOffset to, TimeSpan step, CancellationToken cancellationToken);
}
