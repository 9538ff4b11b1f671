using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using RolloutGate.Audit;
using RolloutGate.Decisions;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Slack;

/// <summary>
/// Delivers the outbox: at least once, in order per deployment, safe with several replicas. Each row is claimed with
/// <c>FOR UPDATE SKIP LOCKED</c> and only when no older row of its deployment is pending, delivered while the claim is
/// held, and marked delivered in the same transaction. A failure keeps the row with its error and tries again later
/// (exponential backoff with jitter, or Slack's Retry-After), so a Slack outage delays messages and loses none.
/// A row that can never be delivered is given up instead, so that it stops holding back its deployment's later messages:
/// at once when Slack refuses its content (<see cref="RefusedContent"/>) or its payload cannot be read, and after
/// <see cref="SlackOptions.AbandonAfter"/> of failures otherwise. It keeps its payload and last error, gets
/// <c>abandoned_at</c>, is audited (<see cref="AuditEventTypes.SlackMessageAbandoned"/>) and logged as an error.
/// Without a bot token the messages go to the log instead: the local decision inbox.
/// </summary>
public sealed partial class SlackOutboxDispatcher(
    IServiceScopeFactory scopes,
    IOptionsMonitor<RolloutGateOptions> options,
    AuditTrail audit,
    TimeProvider time,
    ILogger<SlackOutboxDispatcher> logger) : BackgroundService
{
    /// <summary>
    /// Slack's answers for a message it will never accept, whenever it is sent again (chat.postMessage and chat.update:
    /// no text, text too long, blocks or attachments it cannot read). Errors a person can fix (a channel to join, a
    /// token to renew) are not among them: those rows wait for the fix.
    /// </summary>
    public static readonly IReadOnlySet<string> RefusedContent = new HashSet<string>(StringComparer.Ordinal)
    {
        "no_text", "msg_too_long", "invalid_blocks", "invalid_blocks_format", "too_many_attachments", "invalid_attachments",
    };

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await DispatchDueAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                LogDispatchFailed(logger, ex);
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
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var now = time.GetUtcNow();
        var claimed = await db.Database.SqlQuery<ClaimedRow>($"""
            SELECT o.id AS "Id", o.deployment_id AS "DeploymentId", o.kind AS "Kind", o.payload::text AS "Payload",
                   o.attempts AS "Attempts", o.delivered_ts AS "DeliveredTs", o.created_at AS "CreatedAt"
            FROM outbox o
            WHERE o.delivered_at IS NULL AND o.abandoned_at IS NULL AND o.next_attempt_at <= {now}
              AND NOT EXISTS (SELECT 1 FROM outbox older
                              WHERE older.deployment_id = o.deployment_id AND older.delivered_at IS NULL
                                AND older.abandoned_at IS NULL AND older.id < o.id)
            ORDER BY o.id
            LIMIT 1
            FOR UPDATE SKIP LOCKED
            """).ToListAsync(cancellationToken);
        if (claimed.Count == 0)
        {
            return null;
        }

        var row = claimed[0];
        // Claimed, the row is delivered and recorded even if the host is stopping meanwhile: a message Slack has posted
        // but that is not marked delivered would be posted again after the restart. The Slack client's own timeouts
        // (SlackResilience) bound the wait.
        var uninterrupted = CancellationToken.None;
        try
        {
            var ts = await DeliverAsync(db, slack, row, uninterrupted);
            await db.Database.ExecuteSqlAsync(
                $"UPDATE outbox SET delivered_at = {time.GetUtcNow()}, delivered_ts = {ts}, attempts = attempts + 1, last_error = NULL WHERE id = {row.Id}",
                uninterrupted);
            await transaction.CommitAsync(uninterrupted);
            return true;
        }
        catch (Exception ex) when (ex is SlackApiException or SlackUnavailableException or SlackRateLimitedException or JsonException)
        {
            if (GiveUpReason(ex, row) is { } reason)
            {
                await AbandonAsync(db, row, ex.Message, reason, uninterrupted);
                await transaction.CommitAsync(uninterrupted);
                LogAbandoned(logger, row.Kind, row.Id, row.DeploymentId, row.Attempts + 1, reason, ex.Message);
                return false;
            }

            var wait = ex is SlackRateLimitedException limited ? limited.RetryAfter : Backoff(row.Attempts + 1);
            var next = time.GetUtcNow() + wait;
            await db.Database.ExecuteSqlAsync(
                $"UPDATE outbox SET attempts = attempts + 1, last_error = {ex.Message}, next_attempt_at = {next} WHERE id = {row.Id}",
                uninterrupted);
            await transaction.CommitAsync(uninterrupted);
            LogDeliveryFailed(logger, row.Kind, row.Id, row.DeploymentId, row.Attempts + 1, wait, ex.Message);
            return false;
        }
    }

    private async Task<string?> DeliverAsync(RolloutGateDbContext db, SlackApiClient slack, ClaimedRow row, CancellationToken cancellationToken)
    {
        if (row.Kind == OutboxKinds.SlackEphemeral)
        {
            var ephemeral = JsonSerializer.Deserialize<OutboxEphemeral>(row.Payload, SlackApiClient.Json)!;
            if (!slack.IsConfigured)
            {
                LogInbox(logger, row.Kind, row.DeploymentId, ephemeral.User, ephemeral.Text);
                return null;
            }

            await slack.PostEphemeralAsync(ephemeral.Channel, ephemeral.User, ephemeral.Text, ephemeral.ThreadTs, cancellationToken);
            return null;
        }

        var message = JsonSerializer.Deserialize<OutboxMessage>(row.Payload, SlackApiClient.Json)!;
        if (!slack.IsConfigured)
        {
            LogInbox(logger, row.Kind, row.DeploymentId, message.Channel, message.Text);
            return null;
        }

        var thread = row.DeploymentId is null ? null : (await db.Database.SqlQuery<SlackThread>($"""
            SELECT channel AS "Channel", root_ts AS "RootTs" FROM slack_threads WHERE deployment_id = {row.DeploymentId}
            """).ToListAsync(cancellationToken)).SingleOrDefault();
        if (row.Kind == OutboxKinds.SlackRoot)
        {
            if (thread is not null)
            {
                await slack.UpdateAsync(thread.Channel, thread.RootTs, message.Text, message.Blocks, cancellationToken);
                return thread.RootTs;
            }

            var root = await slack.PostMessageAsync(new SlackMessage(message.Channel, message.Text, message.Blocks), cancellationToken);
            await db.Database.ExecuteSqlAsync($"""
                INSERT INTO slack_threads (deployment_id, channel, root_ts, created_at)
                VALUES ({row.DeploymentId}, {root.Channel}, {root.Ts}, {time.GetUtcNow()})
                ON CONFLICT (deployment_id) DO NOTHING
                """, cancellationToken);
            return root.Ts;
        }

        // A reply that Slack already has (its ts was recorded) is not posted again.
        if (row.DeliveredTs is not null)
        {
            return row.DeliveredTs;
        }

        var reply = thread is null
            ? new SlackMessage(message.Channel, message.Text, message.Blocks)
            : new SlackMessage(thread.Channel, message.Text, message.Blocks, thread.RootTs);
        return (await slack.PostMessageAsync(reply, cancellationToken)).Ts;
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

    private async Task AbandonAsync(RolloutGateDbContext db, ClaimedRow row, string error, string reason, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await db.Database.ExecuteSqlAsync(
            $"UPDATE outbox SET attempts = attempts + 1, last_error = {error}, abandoned_at = {now} WHERE id = {row.Id}",
            cancellationToken);
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

    private sealed record ClaimedRow(
        long Id, string? DeploymentId, string Kind, string Payload, int Attempts, string? DeliveredTs, DateTimeOffset CreatedAt);

    private sealed record SlackThread(string Channel, string RootTs);

    [LoggerMessage(Level = LogLevel.Information, Message = "Decision inbox ({Kind}) for deployment {DeploymentId} to {Recipient}: {Text}")]
    private static partial void LogInbox(ILogger logger, string kind, string? deploymentId, string recipient, string text);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Outbox {Kind} row {Id} for deployment {DeploymentId} failed (attempt {Attempts}); next try in {Wait}: {Error}")]
    private static partial void LogDeliveryFailed(ILogger logger, string kind, long id, string? deploymentId, int attempts, TimeSpan wait, string error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Outbox {Kind} row {Id} for deployment {DeploymentId} given up after {Attempts} attempts: {Reason}. Last error: {Error}")]
    private static partial void LogAbandoned(ILogger logger, string kind, long id, string? deploymentId, int attempts, string reason, string error);

    [LoggerMessage(Level = LogLevel.Error, Message = "The outbox dispatcher failed; it tries again at its next interval")]
    private static partial void LogDispatchFailed(ILogger logger, Exception exception);
}
