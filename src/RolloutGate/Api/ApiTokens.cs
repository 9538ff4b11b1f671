using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using RolloutGate.Infrastructure;

namespace RolloutGate.Api;

public enum ApiRole
{
    /// <summary>Queries and reports.</summary>
    Reader,

    /// <summary>Stop, rollback and dismiss over HTTP; an operator may also read.</summary>
    Operator,
}

/// <summary>Bearer-token checks for the query and operator APIs, compared in constant time.</summary>
public static class ApiTokens
{
    /// <summary>
    /// Whether <paramref name="presented"/> is one of the <paramref name="accepted"/> tokens. Their SHA-256 digests are
    /// compared, not the tokens: <see cref="CryptographicOperations.FixedTimeEquals"/> returns at once for inputs of
    /// different lengths, so comparing the tokens themselves let the time of a refusal tell a token's length.
    /// </summary>
    public static bool Matches(string? presented, IEnumerable<string> accepted)
    {
        if (string.IsNullOrEmpty(presented))
        {
            return false;
        }

        var presentedDigest = SHA256.HashData(Encoding.UTF8.GetBytes(presented));
        var match = false;
        foreach (var token in accepted)
        {
            // No early exit: every configured token is compared, so timing says nothing about which one matched.
            match |= !string.IsNullOrEmpty(token)
                && CryptographicOperations.FixedTimeEquals(presentedDigest, SHA256.HashData(Encoding.UTF8.GetBytes(token)));
        }

        return match;
    }

    public static string? BearerToken(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        const string prefix = "Bearer ";
        return header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) ? header[prefix.Length..].Trim() : null;
    }

    /// <summary>
    /// Requires a reader (or operator) token, or an operator token, on every endpoint of a group: marks them for
    /// <see cref="UseApiTokens"/>, which checks the token before anything of the request is read.
    /// </summary>
    public static TBuilder RequireApiToken<TBuilder>(this TBuilder builder, ApiRole role)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new ApiTokenRequirement(role));

    /// <summary>
    /// Answers 401 to a request for an endpoint marked with <see cref="RequireApiToken"/> (every mark of a nested group)
    /// without the token it needs. A middleware after routing rather than an endpoint filter: a filter runs after the
    /// request's parameters are bound, so a caller without a token was told what was wrong with its query (400) before
    /// that it may not ask at all.
    /// </summary>
    public static IApplicationBuilder UseApiTokens(this IApplicationBuilder app) =>
        app.Use(async (context, next) =>
        {
            foreach (var requirement in context.GetEndpoint()?.Metadata.GetOrderedMetadata<ApiTokenRequirement>() ?? [])
            {
                var options = context.RequestServices.GetRequiredService<IOptions<RolloutGateOptions>>().Value.Api;
                var accepted = requirement.Role == ApiRole.Operator ? options.OperatorTokens : options.ReaderTokens.Concat(options.OperatorTokens);
                if (!Matches(BearerToken(context.Request), accepted))
                {
                    if (BrowserPage.For(context) is { } page)
                    {
                        context.Response.Redirect(page);
                        return;
                    }

                    await Problems.Unauthorized(requirement.Role == ApiRole.Operator
                        ? "an operator token is required (Authorization: Bearer <token> from RolloutGate__Api__OperatorTokens)"
                        : "a reader token is required (Authorization: Bearer <token> from RolloutGate__Api__ReaderTokens)").ExecuteAsync(context);
                    return;
                }
            }

            await next(context);
        });
}

/// <summary>The token an endpoint needs (<see cref="ApiTokens.RequireApiToken"/>).</summary>
public sealed record ApiTokenRequirement(ApiRole Role);

/// <summary>
/// The page a person's browser is sent to from an API address that has one, such as the link to a deployment in a Slack
/// message (<c>/api/v1/deployments/{id}</c>): a browser sends no bearer token, and a 401 in JSON tells a person nothing.
/// The page asks for the reader token and keeps it in a cookie (<see cref="Web.HtmlPages.ReaderRefusal"/>). Only for a
/// GET without an <c>Authorization</c> header that prefers HTML (a browser's navigation: <c>Accept: text/html,...</c>);
/// a client of the API (curl and most libraries send <c>*/*</c>, or ask for JSON) still gets its 401.
/// </summary>
/// <param name="Prefix">The page's address, to which the route's <c>id</c> is added, escaped.</param>
public sealed record BrowserPage(string Prefix)
{
    /// <summary>Where to send <paramref name="context"/>'s request, or null when it is not a browser's or has no page.</summary>
    public static string? For(HttpContext context)
    {
        var request = context.Request;
        if (context.GetEndpoint()?.Metadata.GetMetadata<BrowserPage>() is not { } page || !HttpMethods.IsGet(request.Method)
            || request.Headers.Authorization.Count > 0 || request.RouteValues["id"] is not string id
            || !request.GetTypedHeaders().Accept.Any(type => type.MediaType.Equals("text/html", StringComparison.OrdinalIgnoreCase)))
        {
            return null;
        }

        return $"{request.PathBase}{page.Prefix}{Uri.EscapeDataString(id)}";
    }
}
