namespace RolloutGate.Slack;

/// <summary>
/// The text of a <c>/rolloutgate</c> command as words: the verb, the deployment id or service it names, and the rest (a
/// decision's reason). Words are split at any whitespace, as Slack passes it typed (a tab, a non-breaking space). A
/// deployment id may hold spaces (the webhook refuses only '/', control characters, '.' and '..'), so the name may be
/// written between double quotes: straight ones or the curly ones (“ ”) Slack clients often put in their place, either
/// closing either. Inside them a backslash before a quote or a backslash stands for that character; any other is itself.
/// A name that does not begin with a quote is read as before, up to the next whitespace; so is the reason, quotes and all.
/// </summary>
public static class SlashCommandText
{
    private const string Quotes = "\"\u201c\u201d";

    /// <summary>A command read into words, or why it cannot be: <see cref="Refusal"/> is then the answer to show.</summary>
    /// <param name="Name">The deployment id or service after the verb; null when the text holds only the verb.</param>
    /// <param name="Rest">The words after the name, each once, in order.</param>
    public sealed record Words(string Verb, string? Name, IReadOnlyList<string> Rest, string? Refusal = null);

    public static Words Read(string text)
    {
        var at = SkipSpace(text, 0);
        var verbEnd = WordEnd(text, at);
        var verb = text[at..verbEnd].ToLowerInvariant();
        at = SkipSpace(text, verbEnd);
        if (at == text.Length)
        {
            return new Words(verb, null, []);
        }

        string name;
        if (Quotes.Contains(text[at], StringComparison.Ordinal))
        {
            var (quoted, closedAt) = Quoted(text, at + 1);
            if (closedAt < 0)
            {
                return new Words(verb, null, [], $"The quote before {SlackMessages.Typed(text[(at + 1)..].TrimEnd())} is never closed: "
                    + $"write an id with spaces between two quotes, such as `/rolloutgate {verb} \"run 8812\"`. Nothing changed.");
            }

            if (closedAt + 1 < text.Length && !char.IsWhiteSpace(text[closedAt + 1]))
            {
                return new Words(verb, null, [], $"The closing quote after {SlackMessages.Typed(quoted)} is followed by "
                    + $"{SlackMessages.Typed(text[(closedAt + 1)..WordEnd(text, closedAt + 1)])}: leave a space after it. Nothing changed.");
            }

            if (quoted.Length == 0)
            {
                return new Words(verb, null, [], "The quotes hold no deployment id. Nothing changed.");
            }

            name = quoted;
            at = closedAt + 1;
        }
        else
        {
            var nameEnd = WordEnd(text, at);
            name = text[at..nameEnd];
            at = nameEnd;
        }

        return new Words(verb, name, text[at..].Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
    }

    /// <summary>
    /// <paramref name="name"/> as a command must name it to be read back whole: as it is when it is one word that does not
    /// begin with a quote (gh-run-8812, deploy:42), else between straight double quotes, each quote or backslash inside
    /// after a backslash. What RolloutGate prints for someone to paste (a held-back predeploy's advice) is written so.
    /// </summary>
    public static string Quote(string name) =>
        name.Length > 0 && !Quotes.Contains(name[0], StringComparison.Ordinal) && !name.Any(char.IsWhiteSpace)
            ? name
            : "\"" + string.Concat(name.Select(c => c == '\\' || Quotes.Contains(c, StringComparison.Ordinal) ? $"\\{c}" : c.ToString())) + "\"";

    /// <summary>The text between the quote before <paramref name="from"/> and its closing quote, and where that is (-1 if none).</summary>
    private static (string Text, int ClosedAt) Quoted(string text, int from)
    {
        var name = new System.Text.StringBuilder();
        for (var i = from; i < text.Length; i++)
        {
            if (text[i] == '\\' && i + 1 < text.Length && (text[i + 1] == '\\' || Quotes.Contains(text[i + 1], StringComparison.Ordinal)))
            {
                name.Append(text[++i]);
            }
            else if (Quotes.Contains(text[i], StringComparison.Ordinal))
            {
                return (name.ToString(), i);
            }
            else
            {
                name.Append(text[i]);
            }
        }

        return (name.ToString(), -1);
    }

    private static int SkipSpace(string text, int at)
    {
        while (at < text.Length && char.IsWhiteSpace(text[at]))
        {
            at++;
        }

        return at;
    }

    private static int WordEnd(string text, int at)
    {
        while (at < text.Length && !char.IsWhiteSpace(text[at]))
        {
            at++;
        }

        return at;
    }
}
