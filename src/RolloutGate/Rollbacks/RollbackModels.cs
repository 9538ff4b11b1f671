using RolloutGate.Core.Runbooks;

namespace RolloutGate.Rollbacks;

/// <summary>
/// One rollback to perform. <see cref="IdempotencyKey"/> is the same on every retry of this rollback (the outbox row's
/// id), so a receiver can tell a retry from a second rollback. <see cref="Mesh"/> gives the namespace of Kubernetes actions,
/// the one of <see cref="Environment"/>.
/// </summary>
public sealed record RollbackRequest(
    string DeploymentId,
    string Service,
    string Environment,
    string RollbackTo,
    string Reason,
    RollbackAction Action,
    MeshSpec Mesh,
    string IdempotencyKey)
{
    /// <summary>
    /// Awaited before each attempt begins, the first included; throws <see cref="OperationCanceledException"/> (with the
    /// action's token cancelled) to begin none. The dispatcher's check that the deployment was not stopped meanwhile.
    /// </summary>
    public Func<CancellationToken, Task>? BeforeEachAttempt { get; init; }

    /// <summary>The rollback a runbook prescribes; a runbook without <c>rollback.action</c> gets a request that fails plainly.</summary>
    public static RollbackRequest For(
        Runbook runbook, string deploymentId, string environment, string rollbackTo, string reason, string idempotencyKey) =>
        new(deploymentId, runbook.Service, environment, rollbackTo, reason, runbook.Rollback.Action ?? new RollbackAction(), runbook.Mesh.For(environment), idempotencyKey);
}

/// <summary>
/// What a rollback did. <see cref="Action"/> says what was acted on, for people
/// (<c>istio VirtualService shop/checkout: HTTP routes of checkout to subset stable</c>); <see cref="Detail"/> what came of it,
/// or why it failed; <see cref="Attempts"/> how many tries it took (0 when nothing was tried).
/// </summary>
public sealed record RollbackOutcome(bool Succeeded, string Action, string Detail, int Attempts);

public interface IRollbackExecutor
{
    /// <summary>
    /// Performs the rollback, retrying transient failures. Expected failures (unreachable, refused, not found, a resource
    /// that cannot be rewritten safely) come back as <see cref="RollbackOutcome.Succeeded"/> false with the reason;
    /// only the caller's cancellation throws.
    /// </summary>
    Task<RollbackOutcome> ExecuteAsync(RollbackRequest request, CancellationToken cancellationToken);
}

/// <summary>An attempt failed in a way the action understood; <see cref="Transient"/> says whether trying again may help.</summary>
public sealed class RollbackAttemptException(string message, bool transient, TimeSpan? retryAfter = null) : Exception(message)
{
    public bool Transient { get; } = transient;

    public TimeSpan? RetryAfter { get; } = retryAfter;
}

/// <summary>
/// The caller cancelled an action under way: what it was acting on and how many attempts it had begun, so that a caller
/// that cancelled on purpose can record what was tried.
/// </summary>
public sealed class RollbackCancelledException(string action, int attempts, OperationCanceledException cause)
    : OperationCanceledException($"{action}: cancelled after {attempts} attempt(s)", cause, cause.CancellationToken)
{
    public string Action { get; } = action;

    public int Attempts { get; } = attempts;
}
