using Microsoft.AspNetCore.Diagnostics;
using Npgsql;

namespace RolloutGate.Api;

/// <summary>
/// Turns two kinds of bad input that surface as exceptions into 400 problem+json, so that no input yields a 500:
/// a query parameter the framework cannot bind (a date that is not a date, a number out of range), with the
/// framework's own words naming the parameter; and text PostgreSQL cannot store, a NUL character (U+0000) above all,
/// which it refuses only once the text reaches it. The request's transaction has been rolled back by then: nothing
/// was changed. Everything else goes on to the default handler (a 500, logged).
/// </summary>
public sealed partial class InputExceptionHandler(IProblemDetailsService problems, ILogger<InputExceptionHandler> logger) : IExceptionHandler
{
    /// <summary>
    /// Whether PostgreSQL would refuse <paramref name="text"/>: it cannot store U+0000 in text. Boundaries that can name
    /// the offending field check this first and say so; what slips past them ends here as a 400 all the same.
    /// </summary>
    public static bool HoldsNul(string? text) => text is not null && text.Contains('\0', StringComparison.Ordinal);

    /// <summary>PostgreSQL's codes for text it cannot store: character_not_in_repertoire (NUL), untranslatable_character.</summary>
    private static readonly HashSet<string> UnstorableText = ["22021", "22P05"];

    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        string detail;
        if (exception is BadHttpRequestException badRequest)
        {
            detail = Readable(badRequest.Message);
        }
        else if (Unstorable(exception) is { } postgres)
        {
            LogUnstorable(logger, httpContext.Request.Method, httpContext.Request.Path, postgres.SqlState, postgres.MessageText);
            detail = "the request holds text that cannot be stored (a NUL character, U+0000, or an invalid character); nothing was changed";
        }
        else
        {
            return false;
        }

        httpContext.Response.StatusCode = StatusCodes.Status400BadRequest;
        return await Problems.WriteAsync(problems, new ProblemDetailsContext
        {
            HttpContext = httpContext,
            Exception = exception,
            ProblemDetails = { Status = StatusCodes.Status400BadRequest, Title = "Malformed request", Detail = detail },
        });
    }

    /// <summary>
    /// The framework's words for a parameter it could not bind (<c>Failed to bind parameter "Nullable&lt;int&gt; limit"
    /// from "abc".</c>) without the .NET type: the parameter, the value given and what it must be (for a whole number too
    /// large for it, <c>limit=2147483648</c>, its largest size). Other messages as they are.
    /// </summary>
    internal static string Readable(string message)
    {
        if (UnboundParameter().Match(message) is not { Success: true } match)
        {
            return message;
        }

        var type = match.Groups["type"].Value;
        var expected = type.Contains(nameof(IsoTime), StringComparison.Ordinal) ? "an ISO 8601 time such as 2026-11-21T10:00:00Z"
            : type.Contains("int", StringComparison.Ordinal) ? WholeNumber(match.Groups["value"].Value, int.MaxValue)
            : type.Contains("long", StringComparison.Ordinal) ? WholeNumber(match.Groups["value"].Value, long.MaxValue)
            : type.Contains("bool", StringComparison.Ordinal) ? "true or false"
            : null;
        var given = $"{match.Groups["name"].Value} '{match.Groups["value"].Value}' cannot be read";
        return expected is null ? $"{given}." : $"{given}: it must be {expected}.";
    }

    /// <summary>What a number parameter must be; for a whole number given too large, its largest value.</summary>
    private static string WholeNumber(string given, long largest)
    {
        var digits = given.TrimStart('-', '+');
        return digits.Length > 0 && digits.All(char.IsAsciiDigit)
            ? $"a whole number no larger than {largest.ToString(System.Globalization.CultureInfo.InvariantCulture)} in size"
            : "a whole number";
    }

    [System.Text.RegularExpressions.GeneratedRegex("^Failed to bind parameter \"(?<type>.+) (?<name>[^ \"]+)\" from \"(?<value>.*)\"\\.?$", System.Text.RegularExpressions.RegexOptions.CultureInvariant)]
    private static partial System.Text.RegularExpressions.Regex UnboundParameter();

    private static PostgresException? Unstorable(Exception? exception) =>
        InChain<PostgresException>(exception, postgres => UnstorableText.Contains(postgres.SqlState));

    /// <summary>The first exception of type <typeparamref name="T"/> in <paramref name="exception"/>'s chain of inner exceptions that <paramref name="matches"/>.</summary>
    public static T? InChain<T>(Exception? exception, Func<T, bool> matches)
        where T : Exception
    {
        for (; exception is not null; exception = exception.InnerException)
        {
            if (exception is T found && matches(found))
            {
                return found;
            }
        }

        return null;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Method} {Path} refused with 400: PostgreSQL cannot store its text ({SqlState}: {Reason})")]
    private static partial void LogUnstorable(ILogger logger, string method, string path, string sqlState, string reason);
}
