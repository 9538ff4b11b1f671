namespace RolloutGate.Audit;

/// <summary>
/// What happened, before it is chained. <paramref name="Data"/> is serialised as JSON with the service's
/// web defaults; never put a secret in it.
/// </summary>
public sealed record AuditEntry(string Type, string? DeploymentId, string? Service, string? Actor, object Data);

/// <summary>The event types of the audit trail; reports and filters rely on these names.</summary>
public static class AuditEventTypes
{
    public const string WebhookPrefix = "webhook.";

    /// <summary>An authenticated webhook delivery that was refused (400, 409, 422): what was sent and the answer.</summary>
    public const string WebhookRefused = "webhook.refused";

    /// <summary>
    /// A delivery id given again with another body: answered with its first answer and not applied (a sender reusing
    /// ids for new events); what was sent and the answer.
    /// </summary>
    public const string WebhookReplayedOtherBody = "webhook.replayed-other-body";

    public const string CheckResult = "check.result";
    public const string StateChanged = "deployment.state-changed";

    /// <summary>
    /// A change deployed without the gate's allow, and watched all the same: <c>overridden</c> (after a deny, with the
    /// checks that failed) or <c>skipped</c> (no predeploy: the runbook's checks were not run).
    /// </summary>
    public const string GateBypassed = "deployment.gate-bypassed";
    public const string RunbookLoaded = "runbook.loaded";
    public const string RunbookRejected = "runbook.rejected";
    public const string RunbookRemoved = "runbook.removed";
    public const string Evaluation = "evaluation.verdict-changed";
    public const string Decision = "decision";

    /// <summary>A decision over HTTP or in the local inbox that the deployment's state does not allow (409): who, what, why not.</summary>
    public const string DecisionRefused = "decision.refused";

    public const string SlackAction = "slack.action";
    public const string Refusal = "refusal";
    public const string RollbackAction = "rollback.action";
    public const string SlackMessageAbandoned = "slack.message-abandoned";

    /// <summary>A <c>rollback.mode: auto</c> regression held for a person: the fleet's automatic rollbacks per hour were used up.</summary>
    public const string RollbackHeld = "rollback.held";

    /// <summary>Retention deleted a deployment's evaluations between verdict changes (RolloutGate:Watch:EvaluationRetentionDays).</summary>
    public const string EvaluationsThinned = "evaluations.thinned";

    /// <summary>The demo workload's fault changed (<c>/demo/faults</c>, demo mode only): what the demo's watch sees changes with it.</summary>
    public const string DemoFault = "demo.fault";

    public static string Webhook(string webhookEvent) => WebhookPrefix + webhookEvent;
}
