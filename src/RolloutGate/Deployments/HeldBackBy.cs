using RolloutGate.Core.Deployments;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Runbooks;
using RolloutGate.Slack;

namespace RolloutGate.Deployments;

/// <summary>
/// The one line a <c>predeploy</c> denied by the one-change-at-a-time rule carries (<see cref="PreDeployGate"/>): which
/// change holds the service and environment, in which state since when, and what clears it, in that state. The person who
/// reads it is often not the one who started that change (the on-call engineer, the next morning, in a pipeline's log), and
/// the commonest cause is a change whose pipeline failed between its gate step and its deploy step without sending
/// <c>cancelled</c>: it stays <c>allowed</c> until someone ends it, and nothing else would say how.
/// Each piece of advice is one that works in that state (the state machine allows it, or the event is the pipeline's):
/// <list type="bullet">
/// <item><c>checking</c>: its <c>cancelled</c> event (none is ever committed in this state: a predeploy is created and decided
/// in one transaction; said all the same, should one be found).</item>
/// <item><c>allowed</c>: its <c>cancelled</c> event or a stop, or its <c>deployed</c> event if it did go out.</item>
/// <item><c>watching</c> (under <c>watch.onNewerDeploy: keep</c>, or it would not hold the next change): the end of its
/// watch, or a stop; <c>onNewerDeploy: stop</c> lets later changes through while an earlier one only watches.</item>
/// <item><c>regressed</c>: a decision (rollback or dismiss), or a stop.</item>
/// <item><c>rolling-back</c>: waiting while its rollback action is under way (a stop would cut it short); once the action
/// failed, a retry or a stop; without an action in its runbook, the pipeline's <c>rolledback</c> or a stop.</item>
/// </list>
/// The commands are the real ones: <c>gate</c>'s form (which needs the service and environment beside the id) and the
/// operator routes of CONTRACT section 5, with the id escaped as a URL path segment, and the slash command with the id
/// quoted as the command reads it back (<see cref="SlashCommandText.Quote"/>).
/// </summary>
public static class HeldBackBy
{
    /// <summary>
    /// Whether <paramref name="change"/> denies the next predeploy of its service and environment (one change at a time):
    /// it is in flight, unless it is only watching under a runbook version that ends its watch when the next change is
    /// deployed (<c>watch.onNewerDeploy: stop</c>, <see cref="NewerDeploys"/>). The gate's rule, and the dashboard's line.
    /// </summary>
    public static bool HoldsBackTheNext(RunbookCatalog runbooks, DeploymentRow change) =>
        DeploymentState.Active.Contains(change.State)
        && !(change.State == DeploymentState.Watching && NewerDeploys.EndWatchOf(runbooks, change));

    /// <summary>
    /// <see cref="Detail"/> for <paramref name="blocking"/>, with its rollback action read from <paramref name="db"/> when
    /// it is rolling back: the deny's line, and the same line on the change's dashboard page.
    /// </summary>
    public static async Task<string> DetailAsync(RolloutGateDbContext db, DeploymentRow blocking, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var rollbackAction = blocking.State == DeploymentState.RollingBack
            ? (await RollbackActionView.ForAsync(db, [blocking.Id], cancellationToken)).GetValueOrDefault(blocking.Id)
            : null;
        return Detail(blocking, rollbackAction, now);
    }

    /// <summary>
    /// The deny's detail for <paramref name="blocking"/>, read at <paramref name="now"/>; <paramref name="rollbackAction"/>
    /// is its rollback action when it is <c>rolling-back</c> and has one on record.
    /// </summary>
    public static string Detail(DeploymentRow blocking, RollbackActionView? rollbackAction, DateTimeOffset now)
    {
        var held = $"deployment '{blocking.Id}' of {blocking.Service} in {blocking.Environment} is still {blocking.State}";
        string Since(DateTimeOffset at) => $"{IsoTimes.Utc(at)}, {IsoTimes.Relative(at, now)}";
        var route = $"POST /api/v1/deployments/{Uri.EscapeDataString(blocking.Id)}";
        var stop = $"stop it ({route}/stop with an operator token, or /rolloutgate stop {SlashCommandText.Quote(blocking.Id)} in Slack)";
        string Gate(string @event) =>
            $"rolloutgate gate {@event} --deployment-id {Shell(blocking.Id)} --service {Shell(blocking.Service)} --environment {Shell(blocking.Environment)}";

        return blocking.State switch
        {
            DeploymentState.Checking =>
                $"{held} (its predeploy came at {Since(blocking.CreatedAt)} and has no verdict yet): if its pipeline gave up on it, "
                + $"send its cancelled event ({Gate("cancelled")})",
            DeploymentState.Allowed =>
                $"{held} (allowed at {Since(blocking.UpdatedAt)}, no deployed event since): if it will not be deployed, "
                + $"send its cancelled event ({Gate("cancelled")}) or {stop}; if it was deployed, send its deployed event",
            DeploymentState.Watching =>
                $"{held} (deployed at {Since(blocking.DeployedAt ?? blocking.UpdatedAt)}, watched until {IsoTimes.Utc(blocking.WatchUntil ?? now)}, "
                + $"{IsoTimes.Relative(blocking.WatchUntil ?? now, now)}): wait for its watch to end or {stop}; "
                + "a runbook with watch.onNewerDeploy: stop lets the next change through while an earlier one only watches",
            DeploymentState.Regressed =>
                $"{held} (regressed at {Since(blocking.RegressedAt ?? blocking.UpdatedAt)}) and waits for a decision: roll it back or keep it "
                + $"({route}/rollback or {route}/dismiss, or its buttons in the decision channel), or {stop}",
            DeploymentState.RollingBack => rollbackAction switch
            {
                { Outcome: "failed", Action: DeploymentDecisions.NoActionConfigured } =>
                    $"{held} (rollback decided at {Since(blocking.UpdatedAt)}) and its runbook has no rollback action: roll it back "
                    + $"in the pipeline and send its rolledback event ({Gate("rolledback")}), or {stop}",
                { Outcome: "failed", Action: DeploymentDecisions.UnreadableRunbook } =>
                    $"{held} (rollback decided at {Since(blocking.UpdatedAt)}) and its runbook version no longer parses, so its rollback "
                    + $"action is unknown: roll it back by hand or in the pipeline and send its rolledback event ({Gate("rolledback")}), or {stop}",
                { Outcome: "failed" } =>
                    $"{held} (rollback decided at {Since(blocking.UpdatedAt)}) and its rollback action failed "
                    + $"(GET /api/v1/deployments/{Uri.EscapeDataString(blocking.Id)} says why): retry it ({route}/rollback) or {stop}",
                _ =>
                    $"{held} (rollback decided at {Since(blocking.UpdatedAt)}): its rollback is under way; the next change waits for it to finish",
            },
            _ => held,
        };
    }

    /// <summary>
    /// A word of the suggested command as a POSIX shell reads it back: as it is when it holds only characters no shell
    /// treats specially (ids such as gh-run-8812 or deploy:42), else in single quotes, each quote inside written '\''. A
    /// deployment id may hold spaces, quotes or $ (the webhook refuses only '/' and control characters), and a command
    /// pasted from a deny must not split it or expand it.
    /// </summary>
    internal static string Shell(string word) =>
        word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || "-_.:@%+=,".Contains(c))
            ? word
            : "'" + word.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
