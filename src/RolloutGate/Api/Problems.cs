using Microsoft.AspNetCore.Http.HttpResults;

namespace RolloutGate.Api;

/// <summary>application/problem+json answers with a title per status and the specific reason as detail.</summary>
public static class Problems
{
    public static ProblemHttpResult BadRequest(string detail, IDictionary<string, object?>? extensions = null) =>
        Make(StatusCodes.Status400BadRequest, "Malformed request", detail, extensions);

    public static ProblemHttpResult Unauthorized(string detail) =>
        Make(StatusCodes.Status401Unauthorized, "Not authenticated", detail);

    public static ProblemHttpResult NotFound(string detail) =>
        Make(StatusCodes.Status404NotFound, "Not found", detail);

    public static ProblemHttpResult Conflict(string detail, IDictionary<string, object?>? extensions = null) =>
        Make(StatusCodes.Status409Conflict, "Conflict", detail, extensions);

    public static ProblemHttpResult PayloadTooLarge(string detail) =>
        Make(StatusCodes.Status413PayloadTooLarge, "Payload too large", detail);

    public static ProblemHttpResult Unprocessable(string detail) =>
        Make(StatusCodes.Status422UnprocessableEntity, "Not governed", detail);

    private static ProblemHttpResult Make(int status, string title, string detail, IDictionary<string, object?>? extensions = null) =>
        TypedResults.Problem(detail: detail, statusCode: status, title: title, extensions: extensions);
}
