using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using RolloutGate.Audit;
using RolloutGate.Deployments;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Runbooks;

namespace RolloutGate.Slack;

/// <summary>Where to show a Slack user a message only they see, for requests whose HTTP answer Slack does not display.</summary>
public sealed record EphemeralTarget(string Channel, string User);

/// <summary>
/// What a Slack user may do, whether by button or slash command. Each call is one short database transaction (well inside
/// Slack's 3 seconds); Slack messages it causes go through the outbox. The answer is the text shown to that user alone.
/// </summary>
public sealed partial class SlackActions(
    RolloutGateDbContext db,
    DeploymentDecisions decisions,
    AuditTrail audit,
    RunbookCatalog runbooks,
    SlackApiClient slack,
    IOptionsMonitor<RolloutGateOptions> options,
    TimeProvider time,
    ILogger<SlackActions> logger)
{
    public const string Source = "slack";

    /// <summary>How long <see cref="TellNowAsync"/> waits for Slack: the request it answers must itself be answered within 3 s.</summary>
    public static readonly TimeSpan TellNowTimeout = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Decides <paramref name="kind"/> (stop, rollback, dismiss) for a deployment as Slack user <paramref name="userId"/>.
    /// Only the runbook's owner and approvers may; anyone else is refused, and the refusal is audited. A second press
    /// finds the state already changed and changes nothing; so does an unknown deployment id. Every answer but a success is
    /// audited and, given <paramref name="ephemeral"/>, also sent to the user privately. <paramref name="reason"/> is what
    /// the user typed after the id.
    /// </summary>
    public async Task<string> DecideAsync(string userId, string kind, string deploymentId, string? reason, EphemeralTarget? ephemeral,
        CancellationToken cancellationToken)
    {
        var deployment = await db.Deployments.AsNoTracking().Include(d => d.RunbookVersion)
            .SingleOrDefaultAsync(d => d.Id == deploymentId, cancellationToken);
        if (deployment is null)
        {
            // Said privately like any other answer to a press: Slack shows nothing of the HTTP answer to a button.
            var unknown = $"Deployment {SlackMessages.Typed(deploymentId)} is unknown.";
            await RecordAsync(new AuditEntry(AuditEventTypes.SlackAction, null, null, userId,
                new { action = kind, deploymentId, outcome = "unknown deployment", source = Source }), unknown, ephemeral);
            return unknown;
        }

        Core.Runbooks.Runbook runbook;
        try
        {
            runbook = runbooks.VersionOf(deployment);
        }
        catch (StoredRunbookUnreadableException ex)
        {
            // The change recorded a version an older RolloutGate accepted and this one refuses: who may decide is unknown,
            // so nobody may here, as a stranger may not; an operator still can, over the HTTP API. Let through, the
            // exception was a 500, which Slack shows as its bare failure.
            var unreadable = $"Who may {kind} {SlackMessages.Escape(deploymentId)} cannot be read: {SlackMessages.Escape(ex.Message)}; nothing changed. "
                + $"An operator can {kind} it over the HTTP API: POST /api/v1/deployments/{Uri.EscapeDataString(deploymentId)}/{kind}";
            await RecordAsync(new AuditEntry(AuditEventTypes.Refusal, deployment.Id, deployment.Service, userId,
                new { action = kind, reason = ex.Message, source = Source }), unreadable, ephemeral);
            return unreadable;
        }

        if (!runbook.MayDecide(userId))
        {
            var refusal = $"Only the owner and approvers of runbook {runbook.Name} may {kind} {SlackMessages.Escape(deploymentId)}; nothing changed.";
            await RecordAsync(new AuditEntry(AuditEventTypes.Refusal, deployment.Id, deployment.Service, userId,
                new { action = kind, reason = $"not an owner or approver of runbook {runbook.Name}", source = Source }), refusal, ephemeral);
            return refusal;
        }

        var result = await decisions.DecideAsync(deploymentId, kind, userId, reason ?? "via Slack", Source, cancellationToken);
        if (result is Ok<StateResponse> ok)
        {
            return $"Done: {SlackMessages.Escape(deployment.Service)} {SlackMessages.Escape(deploymentId)} is now {ok.Value!.State}.";
        }

        var current = await db.Deployments.AsNoTracking().Where(d => d.Id == deploymentId).Select(d => d.State).SingleAsync(cancellationToken);
        var last = await db.Decisions.AsNoTracking().Where(d => d.DeploymentId == deploymentId)
            .OrderByDescending(d => d.At).ThenByDescending(d => d.Id).FirstOrDefaultAsync(cancellationToken);
        var already = last is null
            ? $"{Capitalised(kind)} does not apply to {SlackMessages.Escape(deploymentId)} while it is {current}; nothing changed."
            : $"Already {Past(last.Kind)} by {SlackMessages.Who(last.Actor)} ({SlackMessages.Escape(deploymentId)} is {current}); nothing changed.";
        await RecordAsync(new AuditEntry(AuditEventTypes.SlackAction, deployment.Id, deployment.Service, userId,
            new { action = kind, outcome = "no effect", state = current, source = Source }), already, ephemeral);
        return already;
    }

    /// <summary>
    /// Whether the verified Slack request of signature <paramref name="signature"/> (X-Slack-Signature) is received for the
    /// first time. Slack signs each request it sends anew, over its timestamp and body, so one seen before is the same
    /// request sent again by someone who saw it, within the five minutes its timestamp is accepted: a decision replayed
    /// after its rollback action failed would retry that action in the user's name. Claimed in the database (a unique
    /// key, so two copies at once take turns), where other instances and a restart find it; a request is accepted at most
    /// <see cref="SlackRequestVerifier.Tolerance"/> after its timestamp, which is at most as much after its arrival, so
    /// rows older than three times that are deleted as new ones come. <paramref name="what"/> names it in the log.
    /// </summary>
    public async Task<bool> FirstTimeAsync(string signature, string userId, string what, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var claimed = await db.Database.ExecuteSqlAsync($"""
            WITH expired AS (DELETE FROM slack_requests WHERE received_at < {now - 3 * SlackRequestVerifier.Tolerance})
            INSERT INTO slack_requests (signature, received_at) VALUES ({signature}, {now})
            ON CONFLICT DO NOTHING
            """, cancellationToken);
        if (claimed == 0)
        {
            LogRepeated(logger, userId, what);
        }

        return claimed == 1;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "A Slack request from user {User} ({What}) was already received: the same signature, so the same timestamp and body, which Slack signs anew for each request it sends. Nothing is done again; it is a captured request sent again")]
    private static partial void LogRepeated(ILogger logger, string user, string what);

    /// <summary>
    /// Shows <paramref name="target"/>'s user <paramref name="text"/> at once, without the outbox: for when the database
    /// that holds the outbox cannot be reached. Best effort, within <see cref="TellNowTimeout"/>; a failure is logged.
    /// Without a bot token there is no one in Slack to tell.
    /// </summary>
    public async Task TellNowAsync(EphemeralTarget target, string text, CancellationToken cancellationToken)
    {
        if (!slack.IsConfigured)
        {
            return;
        }

        using var timeout = new CancellationTokenSource(TellNowTimeout, time);
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            await slack.PostEphemeralAsync(target.Channel, target.User, text, null, bounded.Token);
        }
        catch (Exception ex) when (ex is SlackApiException or SlackUnavailableException or SlackRateLimitedException
            || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            LogTellNowFailed(logger, target.User, target.Channel, ex.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not tell Slack user {User} in {Channel} that the database is unavailable: {Error}")]
    private static partial void LogTellNowFailed(ILogger logger, string user, string channel, string error);

    private static string Capitalised(string kind) => string.Concat(kind[..1].ToUpperInvariant(), kind[1..]);

    /// <summary>
    /// The most decisions a status answer lists, newest first; past it the rest are counted in one last line that links
    /// to the deployment, whose page has them all. A deployment can gather hundreds (a rollback retried again and again),
    /// and the answer is one text Slack asks to keep within <see cref="BlockKitLimits.Text"/>.
    /// </summary>
    public const int MaxListedDecisions = 10;

    /// <summary>How many of a service's latest deployments a status answer lists, newest first.</summary>
    public const int MaxListedDeployments = 5;

    /// <summary>
    /// <c>status &lt;deploymentId&gt;</c> (its newest decisions too) or <c>status &lt;service&gt;</c> (its latest deployments),
    /// within <see cref="BlockKitLimits.Text"/>: past it the longest lines are shortened (<see cref="SlackMessages.Shorten(IReadOnlyList{LineParts}, int, int)"/>),
    /// a deployment's link and state kept whole and its service, version and environment cut. A service's deployments
    /// whose links do not all fit whole (five 256-character ids of '&amp;', each link 2,100 characters) are listed as far
    /// as theirs do, newest first, and the rest counted in one last line that links to the service's list.
    /// </summary>
    public async Task<string> StatusAsync(string target, CancellationToken cancellationToken)
    {
        var publicUrl = options.CurrentValue.PublicUrl;
        var deployment = await db.Deployments.AsNoTracking().SingleOrDefaultAsync(d => d.Id == target, cancellationToken);
        if (deployment is not null)
        {
            var decided = db.Decisions.AsNoTracking().Where(d => d.DeploymentId == deployment.Id);
            var count = await decided.CountAsync(cancellationToken);
            var listed = count <= MaxListedDecisions ? count : MaxListedDecisions - 1;
            var newest = await decided.OrderByDescending(d => d.At).ThenByDescending(d => d.Id).Take(listed).ToListAsync(cancellationToken);
            List<LineParts> lines = [StatusLine(deployment, publicUrl), .. newest.Select(d => LineParts.Plain($"• {d.Kind} by {SlackMessages.Who(d.Actor)}"))];
            if (count > listed)
            {
                // The status line has the link whole; this one may lose it when the answer must be shortened.
                lines.Add(LineParts.Plain($"• and {count - listed} earlier decisions: see {SlackMessages.LinkTo(publicUrl, deployment.Id)}"));
            }

            return Fitted(lines);
        }

        var latest = await db.Deployments.AsNoTracking().Where(d => d.Service == target)
            .OrderByDescending(d => d.CreatedAt).ThenBy(d => d.Id).Take(MaxListedDeployments).ToListAsync(cancellationToken);
        if (latest.Count == 0)
        {
            return $"No deployment or service is called {SlackMessages.Typed(target)}.";
        }

        // Every deployment listed keeps its link, which opens the whole of it: fewer are listed rather than one without.
        for (var listed = latest.Count; ; listed--)
        {
            List<LineParts> lines = [LineParts.Plain($"Latest deployments of {SlackMessages.Escape(target)}:"), .. latest.Take(listed).Select(d => StatusLine(d, publicUrl, "• "))];
            if (listed < latest.Count)
            {
                lines.Add(new LineParts($"• and {latest.Count - listed} more: see <{SlackMessages.ServiceLink(publicUrl, target)}|the list>", ""));
            }

            if (listed == 0 || SlackMessages.KeepsWhole(lines, BlockKitLimits.Text, BlockKitLimits.Text))
            {
                return Fitted(lines);
            }
        }

        static string Fitted(IReadOnlyList<LineParts> lines) =>
            string.Join("\n", SlackMessages.Shorten(lines, BlockKitLimits.Text, BlockKitLimits.Text));
    }

    /// <summary>A deployment's link, service, version, environment and state; shortened, only the service, version and environment are cut.</summary>
    private static LineParts StatusLine(DeploymentRow d, string publicUrl, string bullet = "") => new(
        $"{bullet}{SlackMessages.LinkTo(publicUrl, d.Id)} ",
        $"{SlackMessages.Escape(d.Service)} `{SlackMessages.Escape(d.Version ?? "?")}` in {SlackMessages.Escape(d.Environment)}",
        $": *{d.State}*");

    /// <summary>
    /// Puts an answer that changes nothing on the record, with its private message to the user: written even when Slack
    /// has given up on the request meanwhile (<see cref="AnsweredRecord"/>), since the answer is decided.
    /// </summary>
    private async Task RecordAsync(AuditEntry entry, string text, EphemeralTarget? ephemeral)
    {
        using var bounded = AnsweredRecord.Cancellation(time);
        var cancellationToken = bounded.Token;
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var rows = await audit.AppendAsync(db, [entry], cancellationToken);
        if (ephemeral is not null)
        {
            await SlackOutbox.EnqueueAsync(db, entry.DeploymentId, OutboxKinds.SlackEphemeral, $"slack:ephemeral:{rows[0].Id}",
                new OutboxEphemeral(ephemeral.Channel, ephemeral.User, text, null), time.GetUtcNow(), cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    private static string Past(string kind) => kind switch
    {
        DecisionKinds.Rollback => "rolled back",
        DecisionKinds.Dismiss => "kept",
        DecisionKinds.Stop => "stopped",
        _ => kind,
    };
}
