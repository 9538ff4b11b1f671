namespace RolloutGate.Prometheus;

/// <summary>Something went wrong asking Prometheus; never a reason to treat a check as passed.</summary>
public abstract class PrometheusException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Prometheus answered, and refused or failed the query (bad PromQL, execution error, query timeout).</summary>
public sealed class PrometheusQueryException(string query, string errorType, string error)
    : PrometheusException($"Prometheus rejected the query '{query}': {errorType}: {error}")
{
    public string Query { get; } = query;

    /// <summary>Prometheus's errorType, e.g. <c>bad_data</c>, <c>execution</c>, <c>timeout</c>.</summary>
    public string ErrorType { get; } = errorType;

    public string Error { get; } = error;

    /// <summary>
    /// Whether asking the same query again cannot help: bad PromQL (<c>bad_data</c>) or an execution error (<c>execution</c>:
    /// a type mismatch, too many samples). Any other error type is the server failing for now and may pass next time: a
    /// query timeout or cancellation, <c>unavailable</c>, or <c>internal</c> (Prometheus's storage errors; Mimir's and
    /// Thanos's stores not answering), so the interval is asked again rather than judged blind, and a baseline read
    /// meanwhile is read again rather than stored empty.
    /// </summary>
    public bool IsPermanent => ErrorType is "bad_data" or "execution";
}

/// <summary>
/// Prometheus could not be reached, answered with something that is not its API, or answered with data it says may be
/// incomplete (warnings, a partial response): asked again later, never judged as it stands.
/// </summary>
public sealed class PrometheusUnavailableException(string message, Exception? inner = null) : PrometheusException(message, inner);
