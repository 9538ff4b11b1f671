using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using RolloutGate.Core.Audit;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Audit;

/// <summary>
/// Appends hash-chained events inside the caller's transaction, so an event is committed exactly when the change
/// it records is. A transaction-scoped advisory lock serialises appenders: the previous hash read under it is the
/// newest committed one, and ids are drawn in chain order. Subscribers see the appended events in the same transaction,
/// so what an event causes (a Slack message in the outbox) is committed exactly when the event is.
/// </summary>
public sealed class AuditTrail(TimeProvider time, IEnumerable<IAuditSubscriber> subscribers)
{
    /// <summary>"RGAUDIT\0" as a 64-bit number; distinct from the migration lock.</summary>
    private const long AppendLockKey = 0x5247_4155_4449_5400;

    /// <summary>How an event's data is written as JSON, so that a reader of the data reads it back the same way.</summary>
    public static readonly JsonSerializerOptions DataJson = new(JsonSerializerDefaults.Web);

    public async Task<IReadOnlyList<AuditEventRow>> AppendAsync(RolloutGateDbContext db, IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken)
    {
        if (entries.Count == 0)
        {
            return [];
        }

        if (db.Database.CurrentTransaction is null)
        {
            throw new InvalidOperationException("audit events are appended inside the transaction of the change they record");
        }

        // Everything from here to the commit holds the lock, so it takes as few round trips as it can: the previous hash
        // and the ids in one statement (not in the lock's statement: that one's snapshot predates the wait for the lock).
        await db.Database.ExecuteSqlRawAsync($"SELECT pg_advisory_xact_lock({AppendLockKey})", cancellationToken);
        var head = await db.Database.SqlQueryRaw<ChainHead>(
                """
                SELECT (SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1) AS "Previous",
                       array(SELECT nextval('audit_events_id_seq') FROM generate_series(1, {0})) AS "Ids"
                """, entries.Count)
            .SingleAsync(cancellationToken);
        var previous = head.Previous ?? AuditChain.Genesis;
        var ids = head.Ids.Order().ToArray();

        var at = AuditChain.ToStoredPrecision(time.GetUtcNow());
        var rows = new List<AuditEventRow>(entries.Count);
        for (var i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            var chained = new ChainedEvent(ids[i], at, entry.Type, entry.DeploymentId, entry.Service, entry.Actor,
                JsonSerializer.Serialize(entry.Data, DataJson));
            var hash = AuditChain.Hash(previous, chained);
            rows.Add(new AuditEventRow
            {
                Id = chained.Id,
                At = chained.At,
                Type = chained.Type,
                DeploymentId = chained.DeploymentId,
                Service = chained.Service,
                Actor = chained.Actor,
                Data = chained.Data,
                PrevHash = previous,
                Hash = hash,
            });
            previous = hash;
        }

        db.AuditEvents.AddRange(rows);
        await db.SaveChangesAsync(cancellationToken);
        foreach (var subscriber in subscribers)
        {
            await subscriber.OnAppendedAsync(db, rows, cancellationToken);
        }

        return rows;
    }

    public static ChainedEvent ToChained(AuditEventRow row) =>
        new(row.Id, row.At, row.Type, row.DeploymentId, row.Service, row.Actor, row.Data);

    /// <summary>The newest event's hash (null before the first event) and the ids drawn for the events to append.</summary>
    private sealed record ChainHead(string? Previous, long[] Ids);
}

/// <summary>
/// Reacts to audit events inside the transaction that appends them: whatever it writes commits or rolls back with them.
/// This is how side effects are enqueued without touching each writer of a state change, verdict or decision.
/// </summary>
public interface IAuditSubscriber
{
    Task OnAppendedAsync(RolloutGateDbContext db, IReadOnlyList<AuditEventRow> appended, CancellationToken cancellationToken);
}
