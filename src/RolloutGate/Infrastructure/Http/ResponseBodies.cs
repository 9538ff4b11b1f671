using System.Text;

namespace RolloutGate.Infrastructure.Http;

/// <summary>Reading only the start of an answer from another service: a huge or endless body must not fill memory or hold the caller.</summary>
internal static class ResponseBodies
{
    /// <summary>
    /// The body's first <paramref name="maxBytes"/> bytes as UTF-8 text, and whether it goes on past them (one byte more is
    /// read to tell). Returns once that much has arrived or the body has ended.
    /// </summary>
    public static async Task<(string Text, bool More)> StartAsync(HttpResponseMessage response, int maxBytes, CancellationToken cancellationToken)
    {
        var buffer = new byte[maxBytes + 1];
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        var read = await stream.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken);
        return (Encoding.UTF8.GetString(buffer, 0, Math.Min(read, maxBytes)), read > maxBytes);
    }
}
