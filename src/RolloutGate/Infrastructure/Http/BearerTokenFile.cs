namespace RolloutGate.Infrastructure.Http;

/// <summary>
/// A bearer token kept in a file (a projected service-account token, a mounted secret), read again for every request:
/// such files are rotated on disk while the service runs, so a rotated token is used from the next request on.
/// </summary>
public static class BearerTokenFile
{
    /// <summary>
    /// The token in <paramref name="file"/>, without surrounding white space. A file that cannot be read, is empty, or
    /// holds a control character inside its token (which cannot be sent as a header value) throws
    /// <see cref="HttpRequestException"/> naming the file, as an unreachable server would, so the caller reports it the
    /// same way instead of failing with an exception it does not expect.
    /// </summary>
    public static async Task<string> ReadAsync(string file, CancellationToken cancellationToken)
    {
        string token;
        try
        {
            token = (await File.ReadAllTextAsync(file, cancellationToken)).Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new HttpRequestException($"the bearer token file {file} cannot be read: {ex.Message}", ex);
        }

        if (token.Length == 0)
        {
            throw new HttpRequestException($"the bearer token file {file} is empty");
        }

        // A line break inside the token (two tokens, a PEM block) cannot be sent as a header value.
        return token.Any(char.IsControl)
            ? throw new HttpRequestException($"the bearer token file {file} holds a line break or another control character inside its token")
            : token;
    }
}
