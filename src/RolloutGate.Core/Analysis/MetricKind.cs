using RolloutGate.Core.Runbooks;

namespace RolloutGate.Core.Analysis;

/// <summary>What a watched metric measures; it decides which test applies and which direction is worse.</summary>
public enum MetricKind
{
    /// <summary>A latency quantile in seconds; higher is worse; tested on log-ratios to the seasonal reference.</summary>
    Latency,

    /// <summary>A fraction of failed requests; higher is worse; tested on error and request counts.</summary>
    ErrorRate,

    /// <summary>Requests per second; lower is worse (traffic lost after a deploy).</summary>
    RequestRate,

    /// <summary>Cost per request in currency units; higher is worse; tested like latency.</summary>
    CostPerRequest,
}

/// <summary>Maps a runbook preset (CONTRACT section 3) to the kind of test it needs.</summary>
public static class MetricKinds
{
    /// <summary>
    /// The kind for a preset name; a custom query (no preset) is tested like latency: a positive value where higher is worse,
    /// unless its runbook says <c>worse: lower</c> (see <see cref="LowerIsWorse"/>). Its unit is unknown, so explanations
    /// show its values as plain numbers, not seconds.
    /// </summary>
    public static MetricKind FromPreset(string? preset) => preset switch
    {
        "error-rate" => MetricKind.ErrorRate,
        "request-rate" => MetricKind.RequestRate,
        "cost-per-request" => MetricKind.CostPerRequest,
        _ => MetricKind.Latency,
    };

    /// <summary>
    /// Whether a drop is the regression: always for a request rate (traffic lost), and for a custom query whose runbook says
    /// <c>worse: lower</c> (orders per minute, a cache hit ratio); the parser refuses <c>worse</c> on the presets.
    /// </summary>
    internal static bool LowerIsWorse(this MetricKind kind, MetricSpec spec) => kind == MetricKind.RequestRate || spec.Worse == Worse.Lower;
}
