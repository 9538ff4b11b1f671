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

    /// <summary>Requires a reader (or operator) token, or an operator token, on every endpoint of a group.</summary>
    public static TBuilder RequireApiToken<TBuilder>(this TBuilder builder, ApiRole role)
        where TBuilder : IEndpointConventionBuilder
    {
        builder.AddEndpointFilter(async (context, next) =>
        {
            var options = context.HttpContext.RequestServices.GetRequiredService<IOptions<RolloutGateOptions>>().Value.Api;
            var accepted = role == ApiRole.Operator ? options.OperatorTokens : options.ReaderTokens.Concat(options.OperatorTokens);
            if (!Matches(BearerToken(context.HttpContext.Request), accepted))
            {
                return Problems.Unauthorized(role == ApiRole.Operator
                    ? "an operator token is required (Authorization: Bearer <token> from RolloutGate__Api__OperatorTokens)"
                    : "a reader token is required (Authorization: Bearer <token> from RolloutGate__Api__ReaderTokens)");
            }

            return await next(context);
        });
        return builder;
    }
}
