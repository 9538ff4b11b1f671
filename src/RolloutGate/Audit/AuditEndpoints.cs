using System.Text.Json;
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

    /// <summary>Recomputes the whole chain in id order; the first event whose hashes do not follow is reported.</summary>
    private static async Task<IResult> VerifyAsync(RolloutGateDbContext db, CancellationToken cancellationToken)
    {
        var running = AuditChain.Genesis;
        long lastId = 0;
        long count = 0;
        while (true)
        {
            var batch = await db.AuditEvents.AsNoTracking()
                .Where(e => e.Id > lastId).OrderBy(e => e.Id).Take(VerifyBatch)
                .ToListAsync(cancellationToken);
            if (batch.Count == 0)
            {
                return TypedResults.Ok(new AuditVerification(true, count, null));
            }

            var broken = AuditChain.FirstBroken(batch.Select(e => (AuditTrail.ToChained(e), e.PrevHash, e.Hash)), ref running);
            if (broken is not null)
            {
                // The events of this batch before the broken one verified too.
                return TypedResults.Ok(new AuditVerification(false, count + batch.TakeWhile(e => e.Id != broken).Count(), broken));
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

/// <summary>On failure, <see cref="Events"/> counts the events verified before the first broken one.</summary>
public sealed record AuditVerification(
    bool Ok,
    long Events,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] long? FirstBrokenId);
