namespace RolloutGate.Cli;

/// <summary>URLs on the command line (gate and audit --url): the base URL of a RolloutGate, perhaps behind a path prefix.</summary>
public static class CommandUrls
{
    /// <summary>
    /// <paramref name="relativePath"/> (no leading slash) under <paramref name="baseUrl"/>, keeping the base's path:
    /// <c>https://host/rolloutgate</c> and <c>api/v1/deployments</c> give <c>https://host/rolloutgate/api/v1/deployments</c>.
    /// </summary>
    public static Uri Under(Uri baseUrl, string relativePath) =>
        new(baseUrl.AbsoluteUri.EndsWith('/') ? baseUrl : new Uri(baseUrl.AbsoluteUri + "/"), relativePath);
}
