namespace RolloutGate.Prometheus;

/// <summary>Something went wrong asking Prometheus; never a reason to treat a check as passed.</summary>
public abstract class PrometheusException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Prometheus answered, and refused or failed the query (bad PromQL, execution error, query timeout); or answered it with
/// what a metric or check cannot use (<see cref="Unusable"/>).
/// </summary>
public sealed class PrometheusQueryException : PrometheusException
{
    /// <summary>The <see cref="ErrorType"/> of an answer RolloutGate refuses itself (<see cref="Unusable"/>).</summary>
    public const string UnusableErrorType = "unusable";

    public PrometheusQueryException(string query, string errorType, string error)
        : this(query, errorType, error, $"Prometheus rejected the query '{query}': {errorType}: {error}")
    {
    }

    private PrometheusQueryException(string query, string errorType, string error, string message)
        : base(message)
    {
        Query = query;
        ErrorType = errorType;
        Error = error;
    }

    public string Query { get; }

    /// <summary>Prometheus's errorType, e.g. <c>bad_data</c>, <c>execution</c>, <c>timeout</c>; or <see cref="UnusableErrorType"/>.</summary>
    public string ErrorType { get; }

    public string Error { get; }

    /// <summary>
    /// Whether asking the same query again cannot help: bad PromQL (<c>bad_data</c>), an execution error (<c>execution</c>:
    /// a type mismatch, too many samples), or an answer of a kind the query always gives (<see cref="Unusable"/>). Any other
    /// error type is the server failing for now and may pass next time: a
    /// query timeout or cancellation, <c>unavailable</c>, or <c>internal</c> (Prometheus's storage errors; Mimir's and
    /// Thanos's stores not answering), so the interval is asked again rather than judged blind, and a baseline read
    /// meanwhile is read again rather than stored empty.
    /// </summary>
    public bool IsPermanent => ErrorType is "bad_data" or "execution" or UnusableErrorType;

    /// <summary>
    /// Prometheus answered <paramref name="query"/> with something no metric or check can use, which asking again gives
    /// again: a range vector or a string where a number is needed, native histograms, an answer past
    /// <c>RolloutGate:Prometheus:MaxAnswerBytes</c>. <paramref name="what"/> says what, after "the query '...' ".
    /// </summary>
    public static PrometheusQueryException Unusable(string query, string what) =>
        new(query, UnusableErrorType, what, $"the query '{query}' {what}");
}

/// <summary>
/// Prometheus could not be reached, answered with something that is not its API, or answered with data it says may be
/// incomplete (warnings, a partial response): asked again later, never judged as it stands.
/// </summary>
public sealed class PrometheusUnavailableException(string message, Exception? inner = null) : PrometheusException(message, inner);
