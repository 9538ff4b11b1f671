namespace RolloutGate.Api;

/// <summary>
/// Refuses a query of the HTTP API (a GET under <c>/api/</c>) that gives a parameter more than once, with 400 naming
/// it. The framework reads <c>?type=a&amp;type=b</c> as the one text <c>"a,b"</c>: a filter that matches nothing,
/// answered as an empty page that looks like a true one (and a number or a time as one that cannot be read).
/// </summary>
public static class RepeatedQueryParameters
{
    public static IApplicationBuilder UseRepeatedQueryParametersRefused(this IApplicationBuilder app) =>
        app.Use(async (context, next) =>
        {
            var request = context.Request;
            if (HttpMethods.IsGet(request.Method) && request.Path.StartsWithSegments("/api", StringComparison.OrdinalIgnoreCase)
                && request.Query.FirstOrDefault(parameter => parameter.Value.Count > 1) is { Key: { } name } repeated)
            {
                await Problems.BadRequest($"the query parameter '{name}' is given {repeated.Value.Count} times; give each at most once")
                    .ExecuteAsync(context);
                return;
            }

            await next(context);
        });
}
