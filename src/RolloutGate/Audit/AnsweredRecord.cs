namespace RolloutGate.Audit;

/// <summary>
/// The write that puts an answer already decided on the record (a refused webhook, a refused or no-effect Slack action):
/// it does not end with the request. Cut short by the request's cancellation, a sender that hung up once it had sent its
/// request (a pipeline's own timeout, Slack giving up after 3 s while the audit trail was busy) left the refusal off the
/// record, which CONTRACT section 7 makes an event, and a Slack user without the private answer that tells them why.
/// </summary>
public static class AnsweredRecord
{
    /// <summary>How long the write may take: shorter than the host's shutdown timeout (25 s, RolloutGateApplication), so that a stop lets it finish.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    /// <summary>The write's own cancellation: <see cref="Timeout"/> on <paramref name="time"/>, whatever happens to the request.</summary>
    public static CancellationTokenSource Cancellation(TimeProvider time) => new(Timeout, time);
}
