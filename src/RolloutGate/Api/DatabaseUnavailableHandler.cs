using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;
using Npgsql;
using RolloutGate.Infrastructure;

namespace RolloutGate.Api;

/// <summary>
/// Answers a request that failed because PostgreSQL could not be reached (or refused work for a while: shutting down,
/// too many connections, a pool with no free connection) with 503 and Retry-After instead of a 500, so that callers
/// retry: the CD gate retries a 503, and a webhook retried with its delivery id is applied once. Whether the failed
/// request was recorded is not known here (the connection may have died at commit), so the answer says so. A Slack slash
/// command gets its answer as a private message, since Slack shows a 503 only as a bare failure. Logged as one warning
/// line, not a stack trace: during an outage every request fails the same way.
/// </summary>
public sealed partial class DatabaseUnavailableHandler(IProblemDetailsService problems, ILogger<DatabaseUnavailableHandler> logger) : IExceptionHandler
{
    public const int RetryAfterSeconds = 30;

    /// <summary>idle_in_transaction_session_timeout's SQLSTATE (Npgsql's PostgresErrorCodes has no name for it).</summary>
    private const string IdleInTransactionSessionTimeout = "25P03";

    /// <summary>What a Slack user is told privately when their command or button press failed this way.</summary>
    public const string SlackAnswer = "RolloutGate cannot reach its database right now, so nothing was done. Try again in a minute.";

    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (Unavailable(exception) is not { } database)
        {
            return false;
        }

        // The path is decoded: /api/v1/deployments/x%0A... holds a line break, which would start a line of its own.
        LogUnavailable(logger, httpContext.Request.Method, LogText.OneLine(httpContext.Request.Path.Value ?? ""), database.Message);
        if (httpContext.Request.Path.StartsWithSegments("/slack/commands", StringComparison.Ordinal))
        {
            httpContext.Response.StatusCode = StatusCodes.Status200OK;
            httpContext.Response.ContentType = "application/json";
            await httpContext.Response.WriteAsync(JsonSerializer.Serialize(new
            {
                response_type = "ephemeral",
                text = SlackAnswer,
            }), cancellationToken);
            return true;
        }

        httpContext.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        httpContext.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return await Problems.WriteAsync(problems, new ProblemDetailsContext
        {
            HttpContext = httpContext,
            Exception = exception,
            ProblemDetails =
            {
                Status = StatusCodes.Status503ServiceUnavailable,
                Title = "Database unavailable",
                Detail = $"RolloutGate cannot reach its database, so this request may not have been recorded; retry in {RetryAfterSeconds} s "
                    + "(a webhook retried with the same delivery id is applied once)",
            },
        });
    }

    /// <summary>
    /// The transient database failure in <paramref name="exception"/>'s chain, if any. A session PostgreSQL ended because
    /// it waited idle in its transaction (idle_in_transaction_session_timeout: a replica frozen or cut off for longer, see
    /// DatabaseExtensions.LostClientOptions) is one as well: its transaction was rolled back, and a retry is applied.
    /// </summary>
    public static NpgsqlException? Unavailable(Exception? exception) =>
        InputExceptionHandler.InChain<NpgsqlException>(exception, npgsql =>
            npgsql.IsTransient || npgsql is PostgresException { SqlState: IdleInTransactionSessionTimeout });

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Method} {Path} answered 503: the database is unavailable ({Reason})")]
    private static partial void LogUnavailable(ILogger logger, string method, string path, string reason);
}
