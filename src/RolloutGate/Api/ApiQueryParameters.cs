namespace RolloutGate.Api;

/// <summary>
/// How a query of the HTTP API (a GET under <c>/api/</c>) is read before its endpoint sees it:
/// <list type="bullet">
/// <item>A parameter given more than once is refused with 400 naming it. The framework reads <c>?type=a&amp;type=b</c> as
/// the one text <c>"a,b"</c>: a filter that matches nothing, answered as an empty page that looks like a true one (and a
/// number or a time as one that cannot be read).</item>
/// <item>A parameter given empty (<c>?service=</c>, or <c>?service</c>) is read as not given, as the dashboard's filters
/// read an empty field. A URL built from a template with a filter left blank, such as CONTRACT section 5's own
/// <c>?service=&amp;environment=&amp;state=</c>, otherwise asked for the deployments of the service "" (an empty page
/// that looks like a true one) or was refused for <c>state</c> or <c>limit</c>, each filter differently. Not so the
/// audit verify's <c>anchor</c>, which asks for a check rather than narrowing a list: <c>verify?anchor=$ANCHOR</c> with
/// the variable unset stays a 400, never a verify that passes without the check it was asked for.</item>
/// </list>
/// </summary>
public static class ApiQueryParameters
{
    /// <summary>The parameters whose empty value is read as given (and refused by their endpoint), not as none.</summary>
    private static readonly HashSet<string> EmptyIsAnAnswer = new(["anchor"], StringComparer.OrdinalIgnoreCase);

    private static bool Blank(KeyValuePair<string, Microsoft.Extensions.Primitives.StringValues> parameter) =>
        string.IsNullOrEmpty(parameter.Value) && !EmptyIsAnAnswer.Contains(parameter.Key);

    public static IApplicationBuilder UseApiQueryParameters(this IApplicationBuilder app) =>
        app.Use(async (context, next) =>
        {
            var request = context.Request;
            if (HttpMethods.IsGet(request.Method) && request.Path.StartsWithSegments("/api", StringComparison.OrdinalIgnoreCase))
            {
                if (request.Query.FirstOrDefault(parameter => parameter.Value.Count > 1) is { Key: { } name } repeated)
                {
                    await Problems.BadRequest($"the query parameter '{name}' is given {repeated.Value.Count} times; give each at most once")
                        .ExecuteAsync(context);
                    return;
                }

                if (request.Query.Any(Blank))
                {
                    request.QueryString = QueryString.Create(request.Query.Where(parameter => !Blank(parameter)));
                }
            }

            await next(context);
        });
}
