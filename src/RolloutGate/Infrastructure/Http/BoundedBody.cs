namespace RolloutGate.Infrastructure.Http;

/// <summary>Reading a whole body, a request's or an answer's, only as far as a limit.</summary>
internal static class BoundedBody
{
    /// <summary>
    /// The whole of <paramref name="stream"/>, or null when it is longer than <paramref name="maxBytes"/>: then it is read no
    /// further than that (not at all when <paramref name="declaredLength"/>, its Content-Length, says so), so that a huge or
    /// endless body neither fills memory nor holds the caller.
    /// </summary>
    public static Task<ArraySegment<byte>?> ReadAsync(Stream stream, long? declaredLength, int maxBytes, CancellationToken cancellationToken) =>
        ReadAsync(stream, ReadOnlyMemory<byte>.Empty, declaredLength, maxBytes, cancellationToken);

    /// <summary>
    /// As <see cref="ReadAsync(Stream, long?, int, CancellationToken)"/>, for a body whose first bytes, <paramref name="start"/>
    /// (at most <paramref name="maxBytes"/>), were read from <paramref name="stream"/> already.
    /// </summary>
    public static async Task<ArraySegment<byte>?> ReadAsync(
        Stream stream, ReadOnlyMemory<byte> start, long? declaredLength, int maxBytes, CancellationToken cancellationToken)
    {
        if (declaredLength > maxBytes)
        {
            return null;
        }

        using var body = new MemoryStream();
        body.Write(start.Span);
        var buffer = new byte[Math.Min(maxBytes + 1L, 81_920)];
        int read;
        while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            if (body.Length + read > maxBytes)
            {
                return null;
            }

            body.Write(buffer, 0, read);
        }

        return new ArraySegment<byte>(body.GetBuffer(), 0, (int)body.Length);
    }
}
