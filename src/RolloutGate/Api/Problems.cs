using Microsoft.AspNetCore.Http.HttpResults;
using RolloutGate.Core.Runbooks;

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

    public static ProblemHttpResult UriTooLong(string detail) =>
        Make(StatusCodes.Status414UriTooLong, "URI too long", detail);

    public static ProblemHttpResult HeadersTooLarge(string detail) =>
        Make(StatusCodes.Status431RequestHeaderFieldsTooLarge, "Request headers too large", detail);

    public static ProblemHttpResult Unprocessable(string detail) =>
        Make(StatusCodes.Status422UnprocessableEntity, "Not governed", detail);

    /// <summary>
    /// The 400 for a query window whose <c>from</c> comes after its <c>to</c> (swapped, say), or null: such a window holds
    /// nothing, and was answered as an empty page or report as if nothing had happened in it.
    /// </summary>
    public static ProblemHttpResult? BackwardsWindow(IsoTime? from, IsoTime? to) =>
        from?.Value > to?.Value ? BadRequest($"from ({from.Value.Value:O}) is after to ({to!.Value.Value:O}); the window from..to holds nothing") : null;

    /// <summary>
    /// The detail of a 404 or 405 that no endpoint wrote (<c>UseStatusCodePages</c>): the request's method and path (its
    /// first 200 characters), as the routing saw them; null for any other status.
    /// </summary>
    public static string? RouteDetail(HttpContext http)
    {
        var path = http.Request.PathBase.Add(http.Request.Path).Value ?? "/";
        var shown = TextCut.Shorten(path, 200);
        return http.Response.StatusCode switch
        {
            StatusCodes.Status404NotFound => $"nothing answers {http.Request.Method} {shown}; README.md lists the endpoints",
            StatusCodes.Status405MethodNotAllowed => $"{shown} does not take {http.Request.Method}",
            _ => null,
        };
    }

    /// <summary>
    /// Writes an exception handler's problem as application/problem+json whatever the request's Accept asks for. The
    /// problem details service writes only a type that Accept allows, so a request for CSV (<c>Accept: text/csv</c>, as
    /// the list endpoints take) got its error's status with an empty body, and the exception was logged as unhandled.
    /// </summary>
    public static async ValueTask<bool> WriteAsync(IProblemDetailsService problems, ProblemDetailsContext context)
    {
        if (!await problems.TryWriteAsync(context))
        {
            await TypedResults.Problem(context.ProblemDetails).ExecuteAsync(context.HttpContext);
        }

        return true;
    }

    private static ProblemHttpResult Make(int status, string title, string detail, IDictionary<string, object?>? extensions = null) =>
        TypedResults.Problem(detail: detail, statusCode: status, title: title, extensions: extensions);
}
