using System.Text.RegularExpressions;

namespace RolloutGate.Core.Runbooks;

/// <summary>
/// URLs from runbooks and configuration: as messages, answers, logs and the audit trail show them, and as requests are
/// made of them (a path under a configured base URL, the credentials of their user info).
/// </summary>
public static partial class Urls
{
    /// <summary>
    /// <paramref name="text"/> without its user info and query (or fragment), either of which may carry a credential
    /// (<c>https://user:token@host/hook?key=…</c>): what was dropped after the path shows as <c>?…</c>. Text that is
    /// not a URL at all (a runbook's mistake, quoted in its error) loses the same parts as far as they can be told apart.
    /// </summary>
    public static string Shown(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        // Cut first: not every scheme has a query (in ftp:// a '?' belongs to the path, so the parsed path would keep it).
        var cut = text.IndexOfAny(['?', '#']);
        var dropped = cut < 0 ? "" : "?…";
        var head = cut < 0 ? text : text[..cut];
        if (Uri.TryCreate(head, UriKind.Absolute, out var uri) && !string.IsNullOrEmpty(uri.Host))
        {
            return uri.GetComponents(UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.UriEscaped) + dropped;
        }

        return UserInfo().Replace(head, "$1") + dropped;
    }

    /// <summary>Whether <paramref name="text"/> is an absolute http or https URL with a host: runbook URLs and configured addresses.</summary>
    public static bool IsAbsoluteHttp(string text) =>
        Uri.TryCreate(text, UriKind.Absolute, out var uri)
        && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
        && !string.IsNullOrEmpty(uri.Host);

    /// <summary>A configured address (Prometheus's, the Kubernetes API's) as <see cref="Shown(string)"/> shows it; "" for none.</summary>
    public static string Shown(Uri? address) => address is null ? "" : Shown(address.ToString());

    /// <summary>
    /// What <see cref="Shown(string)"/> leaves out of <paramref name="url"/> and an answer from that address may echo (a
    /// web framework's "Cannot POST /hook?key=…" page, a proxy that repeats the request it refused), each as written and
    /// unescaped: the query, each of its values of at least six characters (shorter ones such as
    /// <c>ref=main</c> would cut words out of the answer and hold no credential), the user info and its password.
    /// </summary>
    public static IReadOnlyList<string> Hidden(string url)
    {
        ArgumentNullException.ThrowIfNull(url);
        var parts = new List<string>();
        var cut = url.IndexOfAny(['?', '#']);
        if (cut >= 0)
        {
            var query = url[(cut + 1)..].Split('#')[0];
            parts.Add(query);
            parts.AddRange(query.Split('&').Select(pair => pair.Split('=', 2) is [_, var value] ? value : "").Where(value => value.Length >= 6));
        }

        var userInfo = UserInfo().Match(cut < 0 ? url : url[..cut]);
        if (userInfo.Success && userInfo.Value.TrimStart('/').TrimEnd('@') is { Length: > 0 } user)
        {
            parts.Add(user);
            parts.Add(user.Split(':', 2) is [_, var password] ? password : "");
        }

        return [.. parts.Concat(parts.Select(Uri.UnescapeDataString)).Where(part => part.Length > 0).Distinct(StringComparer.Ordinal)];
    }

    /// <summary>
    /// <paramref name="relativePath"/> (no leading slash, perhaps with its own query) under <paramref name="baseUrl"/>,
    /// keeping the base's path prefix whether or not it ends in '/' and its query, the relative path's query parameters
    /// after the base's: <c>http://host/prometheus?tenant=a</c> and <c>api/v1/query?x=1</c> give
    /// <c>http://host/prometheus/api/v1/query?tenant=a&amp;x=1</c>. Not the user info (sent as credentials instead, see
    /// <see cref="BasicCredentials"/>) nor a fragment, which is never sent.
    /// </summary>
    public static Uri Under(Uri baseUrl, string relativePath)
    {
        ArgumentNullException.ThrowIfNull(baseUrl);
        ArgumentNullException.ThrowIfNull(relativePath);
        var split = relativePath.IndexOf('?', StringComparison.Ordinal);
        var path = split < 0 ? relativePath : relativePath[..split];
        var query = string.Join('&', new[] { baseUrl.Query.TrimStart('?'), split < 0 ? "" : relativePath[(split + 1)..] }.Where(part => part.Length > 0));
        var head = baseUrl.GetComponents(UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.UriEscaped).TrimEnd('/');
        return new Uri($"{head}/{path}{(query.Length > 0 ? "?" + query : "")}", UriKind.Absolute);
    }

    /// <summary>
    /// The <c>Authorization: Basic</c> value of <paramref name="url"/>'s user info (<c>https://user:pass@host/…</c>), each part
    /// unescaped as curl does (<c>%40</c> for an '@' in the password), a missing password empty; null without user info.
    /// .NET's HttpClient sends none of it by itself.
    /// </summary>
    public static string? BasicCredentials(string? url)
    {
        if (url is null || !Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.UserInfo.Length == 0)
        {
            return null;
        }

        var (user, password) = uri.UserInfo.Split(':', 2) is [var name, var secret] ? (name, secret) : (uri.UserInfo, "");
        return BasicCredentials(Uri.UnescapeDataString(user), Uri.UnescapeDataString(password));
    }

    /// <summary>The <c>Authorization: Basic</c> value of <paramref name="user"/> and <paramref name="password"/> (RFC 7617, UTF-8).</summary>
    public static string BasicCredentials(string user, string? password) =>
        Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{user}:{password}"));

    /// <summary>Whether <paramref name="url"/> carries user info (<c>https://user:pass@host/…</c>).</summary>
    public static bool HasUserInfo(string? url) =>
        url is not null && Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.UserInfo.Length > 0;

    /// <summary>
    /// <paramref name="text"/> with every occurrence of each of <paramref name="secrets"/> (none empty) written as
    /// <c>[redacted]</c>, the longest first so that one containing another goes whole.
    /// </summary>
    public static string Redacted(string text, IEnumerable<string?> secrets)
    {
        ArgumentNullException.ThrowIfNull(text);
        foreach (var secret in secrets.OfType<string>().Where(secret => secret.Length > 0).OrderByDescending(secret => secret.Length))
        {
            text = text.Replace(secret, "[redacted]", StringComparison.Ordinal);
        }

        return text;
    }

    /// <summary>What stands between the start (or <c>//</c>) and an <c>@</c> before any further <c>/</c>.</summary>
    [GeneratedRegex("(^|//)[^/@]*@", RegexOptions.CultureInvariant)]
    private static partial Regex UserInfo();
}
