using RolloutGate.Core.Runbooks;
using RolloutGate.Prometheus;

namespace RolloutGate.Checks;

/// <summary>
/// Holds a PromQL value at time t against the runbook's min and/or max. The query must give a scalar or a single
/// sample: no data, NaN and an infinity fail (nothing to judge is not a green light), several series are an error in the query.
/// Prometheus errors propagate and become "error" results.
/// </summary>
internal sealed class PrometheusCheck(IPrometheusClient prometheus) : IPreDeployCheck
{
    public string Kind => "prometheus";

    public async Task<CheckResult> RunAsync(CheckSpec check, CheckContext context, CancellationToken cancellationToken)
    {
        var spec = check.Prometheus ?? throw new ArgumentException($"check '{check.Name}' is not a prometheus check", nameof(check));
        var samples = await prometheus.QueryAsync(spec.Query, context.At, cancellationToken);
        if (samples.Count == 0)
        {
            return CheckResult.Fail(check.Name, "query returned no data");
        }

        if (samples.Count > 1)
        {
            var names = string.Join(", ", samples.Take(3).Select(s => s.SeriesName));
            return CheckResult.Error(check.Name, $"query returned {samples.Count} series ({names}{(samples.Count > 3 ? ", ..." : string.Empty)}); it must return one value");
        }

        var value = samples[0].Value;
        var bounds = Bounds(spec);
        if (double.IsNaN(value))
        {
            return CheckResult.Fail(check.Name, $"query returned NaN (a division by zero: no traffic?), which cannot be held against {bounds}");
        }

        // x / 0 is not a measurement either, although +Inf is above any min and -Inf below any max.
        if (double.IsInfinity(value))
        {
            return CheckResult.Fail(check.Name, $"query returned {CheckFormat.Number(value)} (a division by zero), which cannot be held against {bounds}");
        }

        var shown = CheckFormat.Value(value, spec.Min, spec.Max);
        if (spec.Min is { } min && value < min)
        {
            return CheckResult.Fail(check.Name, $"value {shown} is below min {CheckFormat.Number(min)}");
        }

        if (spec.Max is { } max && value > max)
        {
            return CheckResult.Fail(check.Name, $"value {shown} is above max {CheckFormat.Number(max)}");
        }

        return CheckResult.Pass(check.Name, $"value {shown} is within {bounds}");
    }

    private static string Bounds(PrometheusCheckSpec spec) => (spec.Min, spec.Max) switch
    {
        ({ } min, { } max) => $"min {CheckFormat.Number(min)} and max {CheckFormat.Number(max)}",
        ({ } min, null) => $"min {CheckFormat.Number(min)}",
        (null, { } max) => $"max {CheckFormat.Number(max)}",
        _ => "no bounds",
    };
}
