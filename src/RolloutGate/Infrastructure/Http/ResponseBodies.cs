using System.Text;
using RolloutGate.Core.Runbooks;

namespace RolloutGate.Infrastructure.Http;

/// <summary>Reading only the start of an answer from another service: a huge or endless body must not fill memory or hold the caller.</summary>
internal static class ResponseBodies
{
    /// <summary>
    /// The body's first <paramref name="maxBytes"/> bytes as UTF-8 text, and whether it goes on past them (one byte more is
    /// read to tell). Returns once that much has arrived or the body has ended. Cut short, the text ends before a character
    /// the cut split (<see cref="Text"/>).
    /// </summary>
    public static async Task<(string Text, bool More)> StartAsync(HttpResponseMessage response, int maxBytes, CancellationToken cancellationToken)
    {
        var buffer = new byte[maxBytes + 1];
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        var read = await stream.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken);
        return read > maxBytes ? (Text(buffer.AsSpan(0, maxBytes)), true) : (Encoding.UTF8.GetString(buffer, 0, read), false);
    }

    /// <summary>
    /// The whole body, or null when it is longer than <paramref name="maxBytes"/> (<see cref="BoundedBody.ReadAsync"/>): then
    /// its start instead, as UTF-8 text, the first <see cref="MaxExcerptBytes"/> (at most <paramref name="maxBytes"/>), which
    /// is what an error answer past the limit can be quoted by (<see cref="Excerpt"/>). Read with
    /// <see cref="HttpCompletionOption.ResponseHeadersRead"/>: otherwise the client has read the whole body before this is called.
    /// </summary>
    public static async Task<(ReadOnlyMemory<byte>? Whole, string Start)> WholeAsync(HttpResponseMessage response, int maxBytes, CancellationToken cancellationToken)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        // The start first, kept: past the limit, the rest is not read (or not kept).
        var start = new byte[Math.Min(maxBytes, MaxExcerptBytes)];
        var read = await stream.ReadAtLeastAsync(start, start.Length, throwOnEndOfStream: false, cancellationToken);
        var whole = await BoundedBody.ReadAsync(stream, start.AsMemory(0, read), response.Content.Headers.ContentLength, maxBytes, cancellationToken);
        return whole is null ? (null, Text(start.AsSpan(0, read))) : (whole, string.Empty);
    }

    /// <summary>How many characters of another service's error answer are quoted.</summary>
    public const int MaxExcerptLength = 300;

    /// <summary>How many bytes of an answer are read to quote <see cref="MaxExcerptLength"/> characters: up to four UTF-8 bytes a character.</summary>
    public const int MaxExcerptBytes = MaxExcerptLength * 4;

    /// <summary>
    /// <c>": "</c> and the start of an error answer, which usually says why it refused (<c>""</c> when it has no body): its
    /// first bytes only, so that a large or endless error page neither fills memory nor holds the caller, cut at
    /// <see cref="MaxExcerptLength"/> characters and ended with <c>…</c> when there was more. Without <paramref name="hidden"/>,
    /// what the request carried that the quote must not show (credentials, the parts of a URL that
    /// <see cref="Urls.Shown(string)"/> leaves out): an error page may repeat the request, and the quote goes to the log,
    /// the audit trail and Slack. Read with <see cref="HttpCompletionOption.ResponseHeadersRead"/>: otherwise the client has
    /// read the whole body before this is called.
    /// </summary>
    public static async Task<string> ExcerptAsync(HttpResponseMessage response, IEnumerable<string?> hidden, CancellationToken cancellationToken)
    {
        var (start, beyond) = await StartAsync(response, MaxExcerptBytes, cancellationToken);
        var text = Urls.Redacted(start, hidden).Trim();
        return text.Length == 0 ? string.Empty : ": " + Excerpt(text, beyond);
    }

    /// <summary>
    /// Another service's error text as it is quoted: its first <see cref="MaxExcerptLength"/> characters, ended with <c>…</c>
    /// when there was more (or when <paramref name="more"/> says the text is itself only the start). Redact before cutting:
    /// a credential cut in two is no longer found whole. Never cut between the two halves of a surrogate pair (an emoji):
    /// half of one is no text, and the JSON of an answer, of the audit trail and of Slack shows it as U+FFFD, the
    /// replacement character.
    /// </summary>
    public static string Excerpt(string text, bool more = false)
    {
        if (!more && text.Length <= MaxExcerptLength)
        {
            return text;
        }

        return string.Concat(text.AsSpan(0, TextCut.End(text, MaxExcerptLength)), "…");
    }

    /// <summary>
    /// The start of a body as UTF-8 text, without the character its last bytes may have cut in two: decoded, the first
    /// bytes of one would be U+FFFD, the replacement character, at the end of the quote.
    /// </summary>
    private static string Text(ReadOnlySpan<byte> start)
    {
        var text = new char[Encoding.UTF8.GetMaxCharCount(start.Length)];
        return new string(text, 0, Encoding.UTF8.GetDecoder().GetChars(start, text, flush: false));
    }
}
