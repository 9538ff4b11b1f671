using Npgsql;

namespace RolloutGate.Operations;

public static class HealthEndpoints
{
    /// <summary>
    /// <c>/healthz</c>: the process answers. <c>/readyz</c>: the database answers and every <see cref="IReadinessCheck"/> is
    /// ready (the runbooks are loaded, from a folder that exists).
    /// </summary>
    public static IEndpointRouteBuilder MapHealthEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", () => TypedResults.Ok(new HealthReport("ok", null))).ExcludeFromDescription();
        app.MapGet("/readyz", async Task<IResult> (NpgsqlDataSource dataSource, IEnumerable<IReadinessCheck> checks, CancellationToken cancellationToken) =>
        {
            var problems = new List<string>();
            try
            {
                await using var command = dataSource.CreateCommand("SELECT 1");
                await command.ExecuteScalarAsync(cancellationToken);
            }
            catch (NpgsqlException ex)
            {
                problems.Add($"database unreachable: {ex.Message}");
            }

            foreach (var check in checks)
            {
                if (check.Problem() is { } problem)
                {
                    problems.Add(problem);
                }
            }

            return problems.Count == 0
                ? TypedResults.Ok(new HealthReport("ready", null))
                : TypedResults.Json(new HealthReport("not ready", problems), statusCode: StatusCodes.Status503ServiceUnavailable);
        }).ExcludeFromDescription();
        return app;
    }
}

/// <summary>Something /readyz waits for; returns null when ready, otherwise what is missing.</summary>
public interface IReadinessCheck
{
    string? Problem();
}

public sealed record HealthReport(string Status, IReadOnlyList<string>? Problems);
