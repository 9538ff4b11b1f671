using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.EntityFrameworkCore;
using RolloutGate.Api;
using RolloutGate.Core.Audit;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Audit;

public static class AuditEndpoints
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 1000;
    private const int VerifyBatch = 5000;

    public static IEndpointRouteBuilder MapAuditApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/audit").WithTags("Audit").RequireApiToken(ApiRole.Reader);
        group.MapGet("/events", ListEventsAsync);
        group.MapGet("/verify", VerifyAsync);
        return app;
    }

    /// <summary>Events in id order, filtered; <c>next</c> is the cursor to pass as <c>after</c> for the following page.</summary>
    private static async Task<IResult> ListEventsAsync(
        HttpRequest request,
        RolloutGateDbContext db,
        string? deploymentId,
        string? service,
        string? actor,
        string? type,
        IsoTime? from,
        IsoTime? to,
        int? limit,
        long? after,
        CancellationToken cancellationToken)
    {
        var take = limit ?? DefaultLimit;
        if (take is < 1 or > MaxLimit)
        {
            return Problems.BadRequest($"limit must be between 1 and {MaxLimit}");
        }

        // Event ids start at 1, so 0 is the start of the trail; a negative cursor was read as 0 and answered 200.
        if (after is < 0)
        {
            return Problems.BadRequest($"after '{after}' is not a cursor: pass the next of the previous page as it was given (an event id), or 0 for the first page");
        }

        if (Problems.BackwardsWindow(from, to) is { } backwards)
        {
            return backwards;
        }

        var query = db.AuditEvents.AsNoTracking();
        if (deploymentId is not null)
        {
            query = query.Where(e => e.DeploymentId == deploymentId);
        }

        if (service is not null)
        {
            query = query.Where(e => e.Service == service);
        }

        if (actor is not null)
        {
            query = query.Where(e => e.Actor == actor);
        }

        if (type is not null)
        {
            // "webhook." selects every webhook event; a full name selects one type.
            query = type.EndsWith('.') ? query.Where(e => e.Type.StartsWith(type)) : query.Where(e => e.Type == type);
        }

        if (from is not null)
        {
            query = query.Where(e => e.At >= from.Value.Value.ToUniversalTime());
        }

        if (to is not null)
        {
            query = query.Where(e => e.At < to.Value.Value.ToUniversalTime());
        }

        if (after is not null)
        {
            query = query.Where(e => e.Id > after.Value);
        }

        var rows = await query.OrderBy(e => e.Id).Take(take + 1).ToListAsync(cancellationToken);
        var page = rows.Take(take).ToList();
        long? next = rows.Count > take ? page[^1].Id : null;

        if (Csv.IsRequested(request))
        {
            // CSV has no room for the cursor: the next page is named in a Link header (RFC 8288), as JSON names it in next.
            if (next is { } cursor)
            {
                request.HttpContext.Response.Headers.Link = NextPageLink(request, cursor.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            return Csv.Result(
                ["id", "at", "type", "deploymentId", "service", "actor", "data", "hash"],
                page.Select(e => (IReadOnlyList<object?>)[e.Id, e.At, e.Type, e.DeploymentId, e.Service, e.Actor, e.Data, e.Hash]));
        }

        return TypedResults.Ok(new AuditEventPage(page.Select(ToView).ToList(), next?.ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }

    /// <summary>A Link header (RFC 8288) naming the next page: this request's path and query with <c>after</c> set to <paramref name="cursor"/>.</summary>
    internal static string NextPageLink(HttpRequest request, string cursor)
    {
        var query = Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery(request.QueryString.Value);
        query["after"] = cursor;
        return $"<{Microsoft.AspNetCore.WebUtilities.QueryHelpers.AddQueryString(request.PathBase + request.Path, query)}>; rel=\"next\"";
    }

    /// <summary>
    /// Recomputes the whole chain in id order; the first event whose hashes do not follow is reported, and else the head
    /// (the newest event verified, its id and hash). A chain rewritten whole, or cut short at its end, still holds by
    /// itself: whoever can write the table can recompute every hash after an edit. An <c>anchor</c> (<c>ID:HASH</c>, a
    /// head kept somewhere the database's writers cannot reach) catches both: that event must still be there with that
    /// hash, and since each hash covers every event before it, the trail up to it is then the one that was anchored.
    /// </summary>
    private static async Task<IResult> VerifyAsync(RolloutGateDbContext db, string? anchor, CancellationToken cancellationToken)
    {
        AuditHead? anchored = null;
        if (anchor is not null && !AuditHead.TryParse(anchor, out anchored))
        {
            return Problems.BadRequest(
                $"anchor '{anchor}' is not ID:HASH (an event's id and its 64 hexadecimal digits of hash, as an earlier verify's head gives them)");
        }

        var running = AuditChain.Genesis;
        long lastId = 0;
        long count = 0;
        string? anchoredFound = null;
        while (true)
        {
            var batch = await db.AuditEvents.AsNoTracking()
                .Where(e => e.Id > lastId).OrderBy(e => e.Id).Take(VerifyBatch)
                .ToListAsync(cancellationToken);
            if (batch.Count == 0)
            {
                var head = count == 0 ? null : new AuditHead(lastId, running);
                var check = anchored is null ? null : new AnchorCheck(anchored.Id, anchored.Hash, anchoredFound == anchored.Hash, anchoredFound);
                return TypedResults.Ok(new AuditVerification(check?.Holds ?? true, count, null) { Head = head, Anchor = check });
            }

            var broken = AuditChain.FirstBroken(batch.Select(e => (AuditTrail.ToChained(e), e.PrevHash, e.Hash)), ref running);
            if (broken is not null)
            {
                // The events of this batch before the broken one verified too.
                return TypedResults.Ok(new AuditVerification(false, count + batch.TakeWhile(e => e.Id != broken).Count(), broken));
            }

            if (anchored is not null && batch.Find(e => e.Id == anchored.Id) is { } found)
            {
                anchoredFound = found.Hash;
            }

            count += batch.Count;
            lastId = batch[^1].Id;
        }
    }

    private static AuditEventView ToView(AuditEventRow row)
    {
        using var data = JsonDocument.Parse(row.Data);
        return new(row.Id, row.At, row.Type, row.DeploymentId, row.Service, row.Actor, data.RootElement.Clone(), row.Hash);
    }
}

public sealed record AuditEventView(long Id, DateTimeOffset At, string Type, string? DeploymentId, string? Service, string? Actor, JsonElement Data, string Hash);

public sealed record AuditEventPage(IReadOnlyList<AuditEventView> Events, string? Next);

/// <summary>
/// On failure, <see cref="Events"/> counts the events verified before the first broken one. <see cref="Head"/> is the
/// newest event of a chain that holds (none for an empty trail); <see cref="Anchor"/> answers the anchor asked for.
/// </summary>
public sealed record AuditVerification(
    bool Ok,
    long Events,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? FirstBrokenId)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public AuditHead? Head { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public AnchorCheck? Anchor { get; init; }
}

/// <summary>An event of the chain by its id and hash: a verify's head, or the anchor a later verify is asked to find.</summary>
public sealed record AuditHead(long Id, string Hash)
{
    /// <summary><c>ID:HASH</c>, as <c>audit verify</c> prints a head; the hash's hexadecimal digits in either case.</summary>
    public static bool TryParse(string text, [NotNullWhen(true)] out AuditHead? head)
    {
        head = null;
        var parts = text.Trim().Split(':');
        if (parts.Length != 2
            || !long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var id) || id < 1
            || parts[1].Length != AuditChain.Genesis.Length || !parts[1].All(char.IsAsciiHexDigit))
        {
            return false;
        }

        head = new AuditHead(id, parts[1].ToLowerInvariant());
        return true;
    }

    public override string ToString() => $"{Id.ToString(CultureInfo.InvariantCulture)}:{Hash}";
}

/// <summary>The anchor asked for (<see cref="Id"/>, <see cref="Hash"/>), and the hash that event has now (<see cref="Found"/>; none when it is gone).</summary>
public sealed record AnchorCheck(long Id, string Hash, bool Holds, string? Found);
