namespace RolloutGate.Core.Runbooks;

/// <summary>
/// Text cut to a length, as errors, pages, messages and the command line quote it: never between the two halves of a
/// surrogate pair (an emoji). Half of one is no text: JSON (an answer, the audit trail, Slack) writes it as U+FFFD, the
/// replacement character, and so does a page or a terminal in UTF-8.
/// </summary>
public static class TextCut
{
    /// <summary>
    /// Where to cut <paramref name="text"/> to keep at most <paramref name="max"/> characters: at
    /// <paramref name="max"/> (at the end when the text is shorter), or one before when that would leave the first half
    /// of a surrogate pair.
    /// </summary>
    public static int End(string text, int max)
    {
        var end = Math.Clamp(max, 0, text.Length);
        return end > 0 && char.IsHighSurrogate(text[end - 1]) ? end - 1 : end;
    }

    /// <summary>
    /// <paramref name="text"/> when it has at most <paramref name="max"/> characters, else its start up to
    /// <see cref="End"/> followed by <paramref name="ellipsis"/>.
    /// </summary>
    public static string Shorten(string text, int max, string ellipsis = "…") =>
        text.Length <= max ? text : string.Concat(text.AsSpan(0, End(text, max)), ellipsis);
}
