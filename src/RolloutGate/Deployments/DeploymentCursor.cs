using System.Globalization;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Deployments;

/// <summary>
/// Keyset paging of the deployment lists, newest first (the deployments API and the dashboard): a page ends at its last
/// row's (created_at, id), and the next one holds the rows after it in (created_at DESC, id) order, so rows created
/// meanwhile shift nothing and none is shown twice or skipped. The cursor is that key as text, the time to the
/// microsecond (as PostgreSQL keeps it): <c>2026-11-21T10:00:00.123456Z_gh-run-8812</c>. The decision inbox pages the
/// same way by another time, when a deployment began to wait, oldest first.
/// </summary>
public static class DeploymentCursor
{
    private const string TimeFormat = "yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'";

    /// <summary>Where the page that ends with <paramref name="row"/> ends.</summary>
    public static string Of(DeploymentRow row) => Of(row.CreatedAt, row.Id);

    /// <summary>The same for a list ordered by another time of the deployment (the inbox: when it began to wait).</summary>
    public static string Of(DateTimeOffset at, string deploymentId) => at.UtcDateTime.ToString(TimeFormat, CultureInfo.InvariantCulture) + "_" + deploymentId;

    /// <summary>The key a cursor names; false for text that is no cursor. Any key is a place in the order, so a cursor
    /// made by hand only chooses where its page starts.</summary>
    public static bool TryParse(string text, out (DateTimeOffset At, string Id) cursor)
    {
        cursor = (DateTimeOffset.MinValue, "");
        var split = text.IndexOf('_', StringComparison.Ordinal);
        if (split < 0 || !DateTimeOffset.TryParseExact(text[..split], TimeFormat, CultureInfo.InvariantCulture,
                DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var at))
        {
            return false;
        }

        cursor = (at, text[(split + 1)..]);
        return true;
    }

    /// <summary>The deployments after <paramref name="cursor"/> in newest-first order.</summary>
    public static IQueryable<DeploymentRow> After(this IQueryable<DeploymentRow> query, (DateTimeOffset At, string Id) cursor)
    {
        var (at, id) = cursor;
        return query.Where(d => d.CreatedAt < at || (d.CreatedAt == at && string.Compare(d.Id, id) > 0));
    }

    /// <summary>Newest first, in the order the cursor follows.</summary>
    public static IOrderedQueryable<DeploymentRow> NewestFirst(this IQueryable<DeploymentRow> query) =>
        query.OrderByDescending(d => d.CreatedAt).ThenBy(d => d.Id);
}
