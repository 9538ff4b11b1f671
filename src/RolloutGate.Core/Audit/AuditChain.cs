using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace RolloutGate.Core.Audit;

/// <summary>One audit event as it is chained: everything but its own hash.</summary>
public sealed record ChainedEvent(
    long Id,
    DateTimeOffset At,
    string Type,
    string? DeploymentId,
    string? Service,
    string? Actor,
    string Data);

/// <summary>
/// The audit hash chain: hash(n) = sha256(hash(n-1) + "\n" + canonical(n)), with 64 zeros before the first event.
/// The canonical form is a JSON array with a version tag, so that a future change of form cannot silently
/// collide with this one; <c>at</c> enters as unix microseconds, PostgreSQL's own precision.
/// Editing any field of any event, or deleting any event but the newest, breaks every hash after it. Deleting the newest,
/// or recomputing every hash after an edit, leaves a chain that holds: an event's id and hash kept elsewhere (verify's
/// head, checked later as an anchor) is what shows that.
/// </summary>
public static class AuditChain
{
    public const string Genesis = "0000000000000000000000000000000000000000000000000000000000000000";

    private const string FormTag = "rolloutgate.audit/v1";

    public static string Hash(string previousHash, ChainedEvent auditEvent)
    {
        ArgumentNullException.ThrowIfNull(auditEvent);
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256 + auditEvent.Data.Length);
        System.Buffers.BuffersExtensions.Write(buffer, Encoding.ASCII.GetBytes(previousHash + "\n"));
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            writer.WriteStringValue(FormTag);
            writer.WriteNumberValue(auditEvent.Id);
            writer.WriteNumberValue(ToUnixMicroseconds(auditEvent.At));
            writer.WriteStringValue(auditEvent.Type);
            WriteNullable(writer, auditEvent.DeploymentId);
            WriteNullable(writer, auditEvent.Service);
            WriteNullable(writer, auditEvent.Actor);
            writer.WriteStringValue(auditEvent.Data);
            writer.WriteEndArray();
        }

        return Convert.ToHexStringLower(SHA256.HashData(buffer.WrittenSpan));
    }

    /// <summary>Truncates to the microsecond, so a time hashes the same before and after a round trip through PostgreSQL.</summary>
    public static DateTimeOffset ToStoredPrecision(DateTimeOffset at) =>
        new(at.UtcTicks - (at.UtcTicks % 10), TimeSpan.Zero);

    /// <summary>
    /// Walks events in id order and returns the id of the first one whose stored hashes do not follow from the
    /// events before it, or null when the whole chain holds.
    /// </summary>
    public static long? FirstBroken(IEnumerable<(ChainedEvent Event, string PrevHash, string Hash)> events, ref string runningHash)
    {
        ArgumentNullException.ThrowIfNull(events);
        foreach (var (auditEvent, prevHash, hash) in events)
        {
            if (!string.Equals(prevHash, runningHash, StringComparison.Ordinal)
                || !string.Equals(hash, Hash(prevHash, auditEvent), StringComparison.Ordinal))
            {
                return auditEvent.Id;
            }

            runningHash = hash;
        }

        return null;
    }

    private static long ToUnixMicroseconds(DateTimeOffset at) =>
        (at.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10;

    private static void WriteNullable(Utf8JsonWriter writer, string? value)
    {
        if (value is null)
        {
            writer.WriteNullValue();
        }
        else
        {
            writer.WriteStringValue(value);
        }
    }
}
