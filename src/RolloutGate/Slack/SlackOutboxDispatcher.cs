using System.Globalization;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using RolloutGate.Audit;
using RolloutGate.Core.Runbooks;
using RolloutGate.Decisions;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Slack;

/// <summary>
/// Delivers the outbox: in order per deployment, safe with several replicas, and once. A row is claimed with a lease
/// (<see cref="ClaimLease"/>, on the database's clock, taken with <c>FOR UPDATE SKIP LOCKED</c> and committed) and only
/// when no older row of its deployment is pending; it is then delivered, and its outcome recorded. From the claim until
/// the outcome is known the attempt is in doubt (<c>outbox.in_doubt_since</c>): Slack may have posted the message even
/// though its answer never came (a timeout, a 5xx, a replica killed mid-call), and <c>chat.postMessage</c> takes no
/// idempotency key. So every message carries its outbox id in its metadata, and a message in doubt is first looked for
/// where it was posted: a root message in its channel (<c>conversations.history</c>), a reply in its deployment's
/// thread (<c>conversations.replies</c>), or in the channel when the deployment has no thread; found, it is recorded,
/// not posted again. A bot token reads both with the <c>channels:history</c> scope (<c>groups:history</c> in a private
/// channel) in a channel the bot is a member of: https://docs.slack.dev/reference/scopes/channels.history lists Bot
/// tokens, and conversations.history and conversations.replies among its methods, and
/// https://docs.slack.dev/reference/methods/conversations.replies names those scopes for a bot token. The same page's
/// remark that "bot user tokens" lack the permission in channels reads as the one for legacy bot user tokens:
/// https://docs.slack.dev/reference/methods/conversations.history gives those direct messages only, and a bot token any
/// conversation the bot is a member of. Both methods have Tier 3 rate limits (50+ a minute) for an internal
/// customer-built app, which is how RolloutGate is installed (deploy/slack/manifest.yaml), but one call a minute and 15
/// messages a page for an app distributed commercially outside the Slack Marketplace
/// (https://docs.slack.dev/apis/web-api/rate-limits). A look-up that is rate-limited waits for Slack's Retry-After and
/// looks again, the message still in doubt. When the app cannot read the channel (missing_scope, not_in_channel), the
/// message is posted again, with a warning: it may appear twice; a message lost would be worse. A failure keeps the row
/// with its error and tries again later (exponential backoff with jitter, or Slack's Retry-After), so a Slack outage
/// delays messages and loses none. A row that can never be delivered is given up instead, so that it stops holding back
/// its deployment's later messages: at once when Slack refuses its content (<see cref="RefusedContent"/>) or its
/// payload cannot be read, and after <see cref="SlackOptions.AbandonAfter"/> of failures otherwise. It keeps its
/// payload and last error, gets <c>abandoned_at</c>, is audited (<see cref="AuditEventTypes.SlackMessageAbandoned"/>)
/// and logged as an error. A root message someone deleted in Slack is forgotten (logged as a warning): the reply that
/// met it goes to the channel itself, and the next root message is posted anew and starts the deployment's thread
/// again.
/// Without a bot token the messages go to the log instead: the local decision inbox.
/// </summary>
public sealed partial class SlackOutboxDispatcher(
    IServiceScopeFactory scopes,
    IOptionsMonitor<RolloutGateOptions> options,
    AuditTrail audit,
    TimeProvider time,
    DatabaseOutageLog outage,
    ILogger<SlackOutboxDispatcher> logger) : BackgroundService
{
    /// <summary>
    /// Slack's answers for a message it will never accept, whenever it is sent again (chat.postMessage and chat.update:
    /// no text, text too long, blocks too long together (<c>msg_blocks_too_long</c>, see
    /// <see cref="BlockKitLimits.MessageText"/>), blocks or attachments it cannot read, arguments it refuses). Errors a
    /// person can fix (a channel to join, a token to renew) are not among them: those rows wait for the fix.
    /// </summary>
    public static readonly IReadOnlySet<string> RefusedContent = new HashSet<string>(StringComparer.Ordinal)
    {
        "no_text", "msg_too_long", "msg_blocks_too_long", "invalid_blocks", "invalid_blocks_format", "invalid_arguments",
        "too_many_attachments", "invalid_attachments",
    };

    /// <summary>
    /// How long a claim lasts. Longer than a delivery can take (a history lookup and a post, each within the Slack
    /// client's total timeout); once it has passed, another replica may take the row up. Measured on the database's clock.
    /// </summary>
    public static readonly TimeSpan ClaimLease = TimeSpan.FromMinutes(2);

    /// <summary>The metadata event type of the messages RolloutGate posts (see <see cref="Marker(long, string?)"/>).</summary>
    public const string MetadataEventType = "rolloutgate_message";

    /// <summary>
    /// How far before its first attempt a message in doubt is looked for: the attempt's time (the earlier of the database's
    /// clock and the replica's) and Slack's may differ.
    /// </summary>
    public static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(1);

    private const int HistoryPageSize = 200;

    /// <summary>
    /// How many messages are searched for a message in doubt before it is posted again: the channel's latest for a root,
    /// the thread's first since the attempt for a reply.
    /// </summary>
    private const int HistoryLimit = 1000;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await DispatchDueAsync(stoppingToken);
                outage.Answered("Slack outbox");
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                // Stopped while looking for work (nothing was claimed): a clean end, not a fault of the service.
                return;
            }
            catch (Exception ex)
            {
                if (!outage.Handled("Slack outbox", ex))
                {
                    LogDispatchFailed(logger, ex);
                }
            }

            try
            {
                await Task.Delay(options.CurrentValue.Slack.DispatchInterval, time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Delivers every row that is due now; returns how many were delivered.</summary>
    public async Task<int> DispatchDueAsync(CancellationToken cancellationToken)
    {
        var delivered = 0;
        while (await DispatchOneAsync(cancellationToken) is { } outcome)
        {
            delivered += outcome ? 1 : 0;
        }

        return delivered;
    }

    /// <summary>Null when nothing is due; otherwise whether the claimed row was delivered.</summary>
    private async Task<bool?> DispatchOneAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<RolloutGateDbContext>();
        // Typed HttpClients are short-lived by design: one per claimed row, never one for the life of the process.
        var slack = scope.ServiceProvider.GetRequiredService<SlackApiClient>();
        var now = time.GetUtcNow();
        // The claim is committed before Slack is called, with the attempt in doubt until its outcome is recorded: a
        // replica that dies meanwhile leaves a row that another takes up once the lease has passed, knowing that the
        // message may be in the channel already. The lease is written and compared on the database's clock, as the
        // rollback claims are (see RollbackDispatcher for why): with each replica's own, one running more than the lease
        // ahead took up a row another was delivering, or one running behind wrote leases already run out for the others.
        // in_doubt_since is the earlier of the database's clock and the replica's: it bounds the look-up in Slack's history
        // (on Slack's clock, with ClockSkew to spare), and on a replica's clock alone one running more than ClockSkew ahead
        // looked from after the message it had posted, missed it, and posted it again. Now only both clocks ahead miss it.
        // next_attempt_at stays the replica's (a replica ahead retries early, no harm).
        var claimed = await db.Database.SqlQuery<ClaimedRow>($"""
            WITH next AS (
                SELECT o.id, o.in_doubt_since
                FROM outbox o
                WHERE o.delivered_at IS NULL AND o.abandoned_at IS NULL AND o.next_attempt_at <= {now}
                  AND (o.claimed_until IS NULL OR o.claimed_until <= clock_timestamp())
                  AND NOT EXISTS (SELECT 1 FROM outbox older
                                  WHERE older.deployment_id = o.deployment_id AND older.delivered_at IS NULL
                                    AND older.abandoned_at IS NULL AND older.id < o.id)
                ORDER BY o.id
                LIMIT 1
                FOR UPDATE SKIP LOCKED)
            UPDATE outbox o SET claimed_until = clock_timestamp() + {ClaimLease}, in_doubt_since = coalesce(o.in_doubt_since, least(clock_timestamp(), {now}))
            FROM next
            WHERE o.id = next.id
            RETURNING o.claimed_until AS "Lease", o.id AS "Id", o.deployment_id AS "DeploymentId", o.kind AS "Kind", o.payload::text AS "Payload",
                      o.attempts AS "Attempts", o.delivered_ts AS "DeliveredTs", o.created_at AS "CreatedAt",
                      next.in_doubt_since AS "InDoubtSince"
            """).ToListAsync(cancellationToken);
        if (claimed.Count == 0)
        {
            return null;
        }

        var row = claimed[0];
        var lease = row.Lease;
        // Claimed, the row is delivered and recorded even if the host is stopping meanwhile: a message Slack has posted
        // but that is not marked delivered would be looked for and perhaps posted again after the restart. The Slack
        // client's own timeouts (SlackResilience) bound the wait.
        var uninterrupted = CancellationToken.None;
        Delivery delivery;
        try
        {
            delivery = await DeliverAsync(db, slack, row, uninterrupted);
        }
        catch (Exception ex) when (ex is SlackApiException or SlackUnavailableException or SlackRateLimitedException or JsonException)
        {
            await RecordFailureAsync(db, row, lease, ex);
            return false;
        }

        await using var transaction = await db.Database.BeginTransactionAsync(uninterrupted);
        if (!await ReleaseAsync(db, row, lease, $"""
                UPDATE outbox SET delivered_at = {time.GetUtcNow()}, delivered_ts = {delivery.Ts}, attempts = attempts + 1,
                                  last_error = NULL, claimed_until = NULL, in_doubt_since = NULL
                WHERE id = {row.Id} AND claimed_until = {lease}
                """))
        {
            return false;
        }

        if (delivery.NewRoot is { } root)
        {
            await db.Database.ExecuteSqlAsync($"""
                INSERT INTO slack_threads (deployment_id, channel, root_ts, created_at)
                VALUES ({row.DeploymentId}, {root.Channel}, {root.Ts}, {time.GetUtcNow()})
                ON CONFLICT (deployment_id) DO NOTHING
                """, uninterrupted);
        }

        await transaction.CommitAsync(uninterrupted);
        return true;
    }

    /// <summary>
    /// Records a failed attempt: the row is given up, or tried again later (after Slack's Retry-After, or a backoff). It
    /// stays in doubt unless this attempt certainly posted nothing and no earlier one was in doubt.
    /// </summary>
    private async Task RecordFailureAsync(RolloutGateDbContext db, ClaimedRow row, DateTimeOffset lease, Exception ex)
    {
        var uninterrupted = CancellationToken.None;
        await using var transaction = await db.Database.BeginTransactionAsync(uninterrupted);
        if (GiveUpReason(ex, row) is { } reason)
        {
            if (await ReleaseAsync(db, row, lease, $"""
                    UPDATE outbox SET attempts = attempts + 1, last_error = {ex.Message}, abandoned_at = {time.GetUtcNow()}, claimed_until = NULL
                    WHERE id = {row.Id} AND claimed_until = {lease}
                    """))
            {
                await AuditAbandonedAsync(db, row, ex.Message, reason, uninterrupted);
                await transaction.CommitAsync(uninterrupted);
                LogAbandoned(logger, row.Kind, row.Id, row.DeploymentId, row.Attempts + 1, reason, ex.Message);
            }

            return;
        }

        var wait = ex is SlackRateLimitedException limited ? limited.RetryAfter : Backoff(row.Attempts + 1);
        var next = time.GetUtcNow() + wait;
        var postedNothing = ex is SlackApiException or SlackRateLimitedException or JsonException or SlackUnavailableException { MayHaveArrived: false };
        if (await ReleaseAsync(db, row, lease, $"""
                UPDATE outbox SET attempts = attempts + 1, last_error = {ex.Message}, next_attempt_at = {next}, claimed_until = NULL,
                                  in_doubt_since = CASE WHEN {postedNothing} THEN {row.InDoubtSince} ELSE in_doubt_since END
                WHERE id = {row.Id} AND claimed_until = {lease}
                """))
        {
            await transaction.CommitAsync(uninterrupted);
            LogDeliveryFailed(logger, row.Kind, row.Id, row.DeploymentId, row.Attempts + 1, DurationText.Format(wait), ex.Message);
        }
    }

    /// <summary>
    /// Runs the statement that records the outcome and ends the claim; false (and logged) when the lease had passed and
    /// the row was claimed again meanwhile, whose outcome is then the new claimant's to record.
    /// </summary>
    private async Task<bool> ReleaseAsync(RolloutGateDbContext db, ClaimedRow row, DateTimeOffset lease, FormattableString statement)
    {
        if (await db.Database.ExecuteSqlAsync(statement, CancellationToken.None) == 1)
        {
            return true;
        }

        LogLeaseLost(logger, row.Kind, row.Id, row.DeploymentId, ClaimLease);
        return false;
    }

    private async Task<Delivery> DeliverAsync(RolloutGateDbContext db, SlackApiClient slack, ClaimedRow row, CancellationToken cancellationToken)
    {
        if (row.Kind == OutboxKinds.SlackEphemeral)
        {
            var ephemeral = JsonSerializer.Deserialize<OutboxEphemeral>(row.Payload, SlackApiClient.Json)!;
            if (!slack.IsConfigured)
            {
                LogInbox(logger, row.Kind, LogText.OneLine(row.DeploymentId), ephemeral.User, LogText.OneLine(ephemeral.Text));
                return new Delivery(null);
            }

            // An ephemeral message is in no history: one in doubt is sent again.
            await slack.PostEphemeralAsync(ephemeral.Channel, ephemeral.User, ephemeral.Text, ephemeral.ThreadTs, cancellationToken);
            return new Delivery(null);
        }

        if (row.Kind == OutboxKinds.SlackSettle)
        {
            return await SettleAsync(db, slack, row, cancellationToken);
        }

        var message = JsonSerializer.Deserialize<OutboxMessage>(row.Payload, SlackApiClient.Json)!;
        if (!slack.IsConfigured)
        {
            LogInbox(logger, row.Kind, LogText.OneLine(row.DeploymentId), message.Channel, LogText.OneLine(message.Text));
            return new Delivery(null);
        }

        var thread = row.DeploymentId is null ? null : (await db.Database.SqlQuery<SlackThread>($"""
            SELECT channel AS "Channel", root_ts AS "RootTs" FROM slack_threads WHERE deployment_id = {row.DeploymentId}
            """).ToListAsync(cancellationToken)).SingleOrDefault();
        var metadata = Marker(row);
        if (row.Kind == OutboxKinds.SlackRoot)
        {
            if (thread is not null)
            {
                try
                {
                    await slack.UpdateAsync(thread.Channel, thread.RootTs, message.Text, message.Blocks, cancellationToken);
                    return new Delivery(thread.RootTs);
                }
                catch (SlackApiException ex) when (ex.Error == VanishedRoot)
                {
                    // Deleted in Slack: the deployment gets a new root, and its later replies that thread.
                    await ForgetThreadAsync(db, row, thread, ex.Error);
                }
            }

            if (row.InDoubtSince is { } since && await FindPostedAsync(slack, row, message.Channel, null, since, metadata, cancellationToken) is { } found)
            {
                return new Delivery(found.Ts, found);
            }

            var root = await slack.PostMessageAsync(new SlackMessage(message.Channel, message.Text, message.Blocks, Metadata: metadata), cancellationToken);
            return new Delivery(root.Ts, root);
        }

        // A reply that Slack already has (its ts was recorded) is not posted again.
        if (row.DeliveredTs is not null)
        {
            return new Delivery(row.DeliveredTs);
        }

        // A reply in doubt is looked for where it went: in the deployment's thread, or in the channel itself when the
        // deployment has none (a reply whose thread was deleted in Slack goes there, below).
        if (row.InDoubtSince is { } inDoubt
            && await FindPostedAsync(slack, row, thread?.Channel ?? message.Channel, thread?.RootTs, inDoubt, metadata, cancellationToken) is { } posted)
        {
            return new Delivery(posted.Ts);
        }

        var loose = new SlackMessage(message.Channel, message.Text, message.Blocks, Metadata: metadata);
        if (thread is null)
        {
            return new Delivery((await slack.PostMessageAsync(loose, cancellationToken)).Ts);
        }

        try
        {
            return new Delivery((await slack.PostMessageAsync(loose with { Channel = thread.Channel, ThreadTs = thread.RootTs }, cancellationToken)).Ts);
        }
        catch (SlackApiException ex) when (ex.Error == VanishedThread)
        {
            // The root was deleted in Slack: this reply (which links to the deployment) goes to the channel itself, and
            // the deployment's next root message starts a new thread.
            await ForgetThreadAsync(db, row, thread, ex.Error);
            return new Delivery((await slack.PostMessageAsync(loose with { Channel = thread.Channel }, cancellationToken)).Ts);
        }
    }

    /// <summary>
    /// Edits a reply whose buttons no longer apply: the same text and sections, the note in place of the buttons. Its rows
    /// go out in order, so the reply was posted (its ts recorded) or given up; given up, or deleted in Slack since,
    /// there is nothing to edit. An edit is the same however often it is made, so one in doubt is simply made again.
    /// </summary>
    private async Task<Delivery> SettleAsync(RolloutGateDbContext db, SlackApiClient slack, ClaimedRow row, CancellationToken cancellationToken)
    {
        var settle = JsonSerializer.Deserialize<OutboxSettle>(row.Payload, SlackApiClient.Json)!;
        var reply = (await db.Database.SqlQuery<SettledReply>($"""
            SELECT o.payload::text AS "Payload", o.delivered_ts AS "Ts", t.channel AS "ThreadChannel"
            FROM outbox o LEFT JOIN slack_threads t ON t.deployment_id = o.deployment_id
            WHERE o.id = {settle.ReplyId}
            """).ToListAsync(cancellationToken)).SingleOrDefault();
        if (!slack.IsConfigured || reply?.Ts is null)
        {
            return new Delivery(null);
        }

        var message = JsonSerializer.Deserialize<OutboxMessage>(reply.Payload, SlackApiClient.Json)!;
        try
        {
            // The reply went to the thread's channel (Slack's id for it), or, without a thread, to the runbook's channel.
            await slack.UpdateAsync(reply.ThreadChannel ?? message.Channel, reply.Ts, message.Text, SlackMessages.Settled(message.Blocks, settle.Note),
                cancellationToken);
        }
        catch (SlackApiException ex) when (ex.Error == VanishedRoot)
        {
            LogSettleGone(logger, row.Id, row.DeploymentId, reply.Ts);
        }

        return new Delivery(reply.Ts);
    }

    private sealed record SettledReply(string Payload, string? Ts, string? ThreadChannel);

    [LoggerMessage(Level = LogLevel.Information, Message = "Outbox slack.settle row {Id} for deployment {DeploymentId}: the reply {Ts} whose buttons it would remove is gone from Slack; nothing to edit")]
    private static partial void LogSettleGone(ILogger logger, long id, string? deploymentId, string ts);

    /// <summary>What chat.update answers for a root message deleted in Slack.</summary>
    private const string VanishedRoot = "message_not_found";

    /// <summary>What chat.postMessage answers for a reply whose root was deleted in Slack.</summary>
    private const string VanishedThread = "thread_not_found";

    /// <summary>
    /// Forgets a deployment's root message that Slack no longer has (someone deleted it): without this, every later
    /// message of the deployment would wait behind the one that cannot reach it, for <see cref="SlackOptions.AbandonAfter"/>.
    /// </summary>
    private async Task ForgetThreadAsync(RolloutGateDbContext db, ClaimedRow row, SlackThread thread, string error)
    {
        await db.Database.ExecuteSqlAsync($"""
            DELETE FROM slack_threads WHERE deployment_id = {row.DeploymentId} AND root_ts = {thread.RootTs}
            """, CancellationToken.None);
        LogRootVanished(logger, row.Id, row.DeploymentId, thread.Channel, thread.RootTs, error);
    }

    /// <summary>What every message RolloutGate posts carries, so that a root in doubt can be found in its channel.</summary>
    public static SlackMetadata Marker(long outboxId, string? deploymentId) => new(MetadataEventType, new Dictionary<string, string>
    {
        ["deployment_id"] = deploymentId ?? "",
        ["outbox_id"] = outboxId.ToString(CultureInfo.InvariantCulture),
    });

    private static SlackMetadata Marker(ClaimedRow row) => Marker(row.Id, row.DeploymentId);

    /// <summary>
    /// Looks for the message of <paramref name="row"/> among the messages since its first attempt in doubt (less a minute
    /// for the clocks: the attempt's time is the earlier of the database's and the replica's, the messages' Slack's), by
    /// its metadata: in the channel's history, or in the thread of <paramref name="threadTs"/>; null when it is not there.
    /// When Slack does not let the app read them (the app lacks <c>channels:history</c>, or the bot is not in the
    /// channel), it says so and answers null: the message is posted, and may appear twice. A thread that is gone
    /// (thread_not_found: its root was deleted) has nothing to find; posting the reply meets it gone too, and the reply
    /// goes to the channel itself. A rate limit is not caught: the row waits for Slack's Retry-After, still in doubt.
    /// </summary>
    private async Task<SlackPosted?> FindPostedAsync(
        SlackApiClient slack, ClaimedRow row, string channel, string? threadTs, DateTimeOffset since, SlackMetadata metadata,
        CancellationToken cancellationToken)
    {
        var place = threadTs is null ? channel : $"{channel}, thread {threadTs}";
        var messages = threadTs is null
            ? slack.HistoryAsync(channel, since - ClockSkew, HistoryPageSize, cancellationToken)
            : slack.RepliesAsync(channel, threadTs, since - ClockSkew, HistoryPageSize, cancellationToken);
        var searched = 0;
        try
        {
            await foreach (var message in messages)
            {
                if (message.Carries(metadata))
                {
                    LogFoundInDoubt(logger, row.Kind, row.Id, row.DeploymentId, place, message.Ts);
                    return new SlackPosted(channel, message.Ts);
                }

                if (++searched >= HistoryLimit)
                {
                    break;
                }
            }
        }
        catch (SlackApiException ex) when (threadTs is not null && ex.Error == VanishedThread)
        {
            LogThreadGoneInDoubt(logger, row.Kind, row.Id, row.DeploymentId, place, ex.Error);
            return null;
        }
        catch (SlackApiException ex)
        {
            LogCannotLook(logger, row.Kind, row.Id, row.DeploymentId, place, ex.Error);
            return null;
        }

        LogNotFoundInDoubt(logger, row.Kind, row.Id, row.DeploymentId, place, searched);
        return null;
    }

    /// <summary>Why <paramref name="row"/> is given up after failing with <paramref name="ex"/>; null to try again later.</summary>
    private string? GiveUpReason(Exception ex, ClaimedRow row)
    {
        if (ex is SlackApiException api && RefusedContent.Contains(api.Error))
        {
            return $"Slack refuses its content ({api.Error})";
        }

        if (ex is JsonException)
        {
            return "its payload cannot be read";
        }

        var abandonAfter = options.CurrentValue.Slack.AbandonAfter;
        return time.GetUtcNow() - row.CreatedAt >= abandonAfter
            ? $"it has failed for longer than {abandonAfter} since it was written"
            : null;
    }

    private async Task AuditAbandonedAsync(RolloutGateDbContext db, ClaimedRow row, string error, string reason, CancellationToken cancellationToken)
    {
        var service = row.DeploymentId is null ? null : (await db.Database.SqlQuery<string>(
            $"SELECT service AS \"Value\" FROM deployments WHERE id = {row.DeploymentId}").ToListAsync(cancellationToken)).SingleOrDefault();
        await audit.AppendAsync(db, [new AuditEntry(AuditEventTypes.SlackMessageAbandoned, row.DeploymentId, service, DecisionPolicy.AutomaticActor, new
        {
            outboxId = row.Id,
            kind = row.Kind,
            attempts = row.Attempts + 1,
            error,
            reason,
        })], cancellationToken);
    }

    private TimeSpan Backoff(int attempts)
    {
        var slackOptions = options.CurrentValue.Slack;
        var exponential = slackOptions.RetryBaseDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempts - 1, 20));
        var capped = Math.Min(exponential, slackOptions.RetryMaxDelay.TotalMilliseconds);
        // Jitter spreads the retries of many rows (and replicas) after an outage.
        return TimeSpan.FromMilliseconds(capped * (0.8 + (0.4 * Random.Shared.NextDouble())));
    }

    /// <summary>A claimed row; <see cref="Lease"/> is its claimed_until as written, which the outcome's statement matches on.</summary>
    private sealed record ClaimedRow(
        DateTimeOffset Lease, long Id, string? DeploymentId, string Kind, string Payload, int Attempts, string? DeliveredTs, DateTimeOffset CreatedAt,
        DateTimeOffset? InDoubtSince);

    /// <summary>The ts the delivered row is recorded with, and the root message when this delivery made the thread.</summary>
    private sealed record Delivery(string? Ts, SlackPosted? NewRoot = null);

    private sealed record SlackThread(string Channel, string RootTs);

    [LoggerMessage(Level = LogLevel.Information, Message = "Decision inbox ({Kind}) for deployment {DeploymentId} to {Recipient}: {Text}")]
    private static partial void LogInbox(ILogger logger, string kind, string? deploymentId, string recipient, string text);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Outbox {Kind} row {Id} for deployment {DeploymentId} failed (attempt {Attempts}); next try in {Wait}: {Error}")]
    private static partial void LogDeliveryFailed(ILogger logger, string kind, long id, string? deploymentId, int attempts, string wait, string error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Outbox {Kind} row {Id} for deployment {DeploymentId} given up after {Attempts} attempts: {Reason}. Last error: {Error}")]
    private static partial void LogAbandoned(ILogger logger, string kind, long id, string? deploymentId, int attempts, string reason, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Outbox {Kind} row {Id} for deployment {DeploymentId}: its claim ran out ({Lease}) before its outcome was recorded; the replica that claimed it again records it")]
    private static partial void LogLeaseLost(ILogger logger, string kind, long id, string? deploymentId, TimeSpan lease);

    [LoggerMessage(Level = LogLevel.Information, Message = "Outbox {Kind} row {Id} for deployment {DeploymentId}: the message whose posting was in doubt is in {Place} (ts {Ts}); not posted again")]
    private static partial void LogFoundInDoubt(ILogger logger, string kind, long id, string? deploymentId, string place, string ts);

    [LoggerMessage(Level = LogLevel.Information, Message = "Outbox {Kind} row {Id} for deployment {DeploymentId}: the message whose posting was in doubt is not among the {Searched} messages of {Place} searched since its first attempt; posting it")]
    private static partial void LogNotFoundInDoubt(ILogger logger, string kind, long id, string? deploymentId, string place, int searched);

    [LoggerMessage(Level = LogLevel.Information, Message = "Outbox {Kind} row {Id} for deployment {DeploymentId}: the message whose posting was in doubt cannot be in {Place}, which is gone from Slack ({Error}); posting it")]
    private static partial void LogThreadGoneInDoubt(ILogger logger, string kind, long id, string? deploymentId, string place, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Outbox {Kind} row {Id} for deployment {DeploymentId}: cannot look in {Place} for the message whose posting was in doubt (Slack: {Error}; the bot must be in the channel, and the app needs channels:history, or groups:history for a private channel); posting it, so it may appear twice")]
    private static partial void LogCannotLook(ILogger logger, string kind, long id, string? deploymentId, string place, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Outbox row {Id} for deployment {DeploymentId}: its root message in {Channel} (ts {Ts}) is gone from Slack ({Error}: deleted?); the deployment's messages go on in a new root message")]
    private static partial void LogRootVanished(ILogger logger, long id, string? deploymentId, string channel, string ts, string error);

    [LoggerMessage(Level = LogLevel.Error, Message = "The outbox dispatcher failed; it tries again at its next interval")]
    private static partial void LogDispatchFailed(ILogger logger, Exception exception);
}
