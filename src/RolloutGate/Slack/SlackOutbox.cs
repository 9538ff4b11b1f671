using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Slack;

/// <summary>What an outbox row asks the dispatcher to do.</summary>
public static class OutboxKinds
{
    /// <summary>Post the deployment's root message, or edit it (chat.update) once it exists.</summary>
    public const string SlackRoot = "slack.root";

    /// <summary>A reply in the deployment's thread.</summary>
    public const string SlackReply = "slack.reply";

    /// <summary>A message only one user sees (chat.postEphemeral).</summary>
    public const string SlackEphemeral = "slack.ephemeral";

    /// <summary>Edit a reply whose buttons no longer apply (chat.update): they give way to a line saying what settled it.</summary>
    public const string SlackSettle = "slack.settle";
}

/// <summary>The payload of slack.root and slack.reply rows: the message, in the runbook's decision channel.</summary>
public sealed record OutboxMessage(string Channel, string Text, IReadOnlyList<object>? Blocks);

/// <summary>The payload of slack.settle rows: the reply (its outbox row) whose buttons <see cref="Note"/> replaces.</summary>
public sealed record OutboxSettle(long ReplyId, string Note);

/// <summary>The payload of slack.ephemeral rows.</summary>
public sealed record OutboxEphemeral(string Channel, string User, string Text, string? ThreadTs);

/// <summary>An outbox row to write (<see cref="SlackOutbox.EnqueueAllAsync"/>): its payload is written as JSON.</summary>
public sealed record OutboxRow(string? DeploymentId, string Kind, string IdempotencyKey, object Payload);

/// <summary>
/// Writes outbox rows with the caller's DbContext, so they commit in the caller's transaction. A row whose idempotency
/// key is already stored is not written again.
/// </summary>
public static class SlackOutbox
{
    public static Task EnqueueAsync(RolloutGateDbContext db, string? deploymentId, string kind, string idempotencyKey, object payload,
        DateTimeOffset now, CancellationToken cancellationToken) =>
        EnqueueAllAsync(db, [new OutboxRow(deploymentId, kind, idempotencyKey, payload)], now, cancellationToken);

    /// <summary>
    /// Writes the rows in one statement, their ids in the order given (rows go out in order per deployment). The audit
    /// trail's subscribers write under its lock: a statement per row held it for every message of every deployment that
    /// a sweep's regressions announce at once.
    /// </summary>
    public static Task EnqueueAllAsync(RolloutGateDbContext db, IReadOnlyList<OutboxRow> rows, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (db.Database.CurrentTransaction is null)
        {
            throw new InvalidOperationException("outbox rows are written inside the transaction of the change that causes them");
        }

        if (rows.Count == 0)
        {
            return Task.CompletedTask;
        }

        var deployments = rows.Select(r => r.DeploymentId).ToArray();
        var kinds = rows.Select(r => r.Kind).ToArray();
        var payloads = rows.Select(r => JsonSerializer.Serialize(r.Payload, SlackApiClient.Json)).ToArray();
        var keys = rows.Select(r => r.IdempotencyKey).ToArray();
        return db.Database.ExecuteSqlAsync($"""
            INSERT INTO outbox (deployment_id, kind, payload, idempotency_key, created_at, next_attempt_at)
            SELECT r.deployment_id, r.kind, r.payload::jsonb, r.idempotency_key, {now}, {now}
            FROM unnest({deployments}::text[], {kinds}::text[], {payloads}::text[], {keys}::text[]) WITH ORDINALITY
                 AS r (deployment_id, kind, payload, idempotency_key, n)
            ORDER BY r.n
            ON CONFLICT (idempotency_key) DO NOTHING
            """, cancellationToken);
    }

    /// <summary>
    /// Settles every reply of the deployment that still offers buttons (a recommendation, a failed action's retry): each
    /// is edited once, its buttons replaced by <paramref name="note"/>. Rows go out in order per deployment, so a reply
    /// is posted (or given up) before it is edited.
    /// </summary>
    public static async Task EnqueueSettlesAsync(RolloutGateDbContext db, string deploymentId, string note, DateTimeOffset now,
        CancellationToken cancellationToken)
    {
        var replies = await db.Database.SqlQuery<long>($"""
            SELECT id AS "Value" FROM outbox
            WHERE deployment_id = {deploymentId} AND kind = {OutboxKinds.SlackReply} AND abandoned_at IS NULL
              AND jsonb_path_exists(payload, '$.blocks[*] ? (@.type == "actions")')
            ORDER BY id
            """).ToListAsync(cancellationToken);
        await EnqueueAllAsync(db,
            [.. replies.Select(reply => new OutboxRow(deploymentId, OutboxKinds.SlackSettle, $"slack:settle:{reply}", new OutboxSettle(reply, note)))],
            now, cancellationToken);
    }

    /// <summary>
    /// Those of the deployments with a root message delivered or still to be, in one query: one given up (abandoned) does
    /// not count, since a reply behind it would have no thread to go into.
    /// </summary>
    public static async Task<HashSet<string>> WithRootAsync(RolloutGateDbContext db, IReadOnlyList<string> deploymentIds, CancellationToken cancellationToken)
    {
        var ids = deploymentIds.ToArray();
        var rooted = await db.Database.SqlQuery<string>($"""
            SELECT DISTINCT deployment_id AS "Value" FROM outbox
            WHERE deployment_id = ANY({ids}) AND kind = {OutboxKinds.SlackRoot} AND abandoned_at IS NULL
            """).ToListAsync(cancellationToken);
        return rooted.ToHashSet(StringComparer.Ordinal);
    }
}
