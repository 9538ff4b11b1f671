namespace RolloutGate.Core.Runbooks;

/// <summary>
/// The line a person has to edit for a YAML syntax error. YamlDotNet's marks count lines from 1, as editors do, so its
/// line is used as it is; but it gives the place where its parser noticed the problem, and for indentation that is
/// often not the line to edit:
/// <list type="bullet">
/// <item><description>
/// A key indented too far (<c>   service:</c> with three spaces where its siblings have two) opens a mapping of its own,
/// and the parser notices only at the next line, whose indentation then matches no open mapping ("did not find expected
/// key"). A key indented too little after <c>spec:</c> makes the next line read as the rest of its value ("found invalid
/// mapping"), again one line late.
/// </description></item>
/// <item><description>A tab in the indentation is reported at line 1, or at the value on the line before it.</description></item>
/// </list>
/// For those messages the lines around are compared: when the lines from the reported one on agree on their indentation
/// and outnumber the lines before it that disagree (or the line before leaves the <c>key:</c> above it empty), the
/// first of those lines before is the odd one out and the line to edit. A tie keeps the parser's line, and every other
/// error keeps it too.
/// </summary>
internal static class YamlErrorLine
{
    /// <summary>
    /// The line to report for YamlDotNet's error <paramref name="message"/> at <paramref name="line"/> (1-based), and when
    /// it is an earlier line for indentation, a note saying where the parser noticed.
    /// </summary>
    public static (int Line, string? Note) ToEdit(string yaml, int line, string message)
    {
        var lines = yaml.Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        if (message.Contains(" tab ", StringComparison.Ordinal))
        {
            // Tabs are never indentation in YAML; the first line from the reported one that indents with one is it.
            var from = Math.Clamp(line - 1, 0, lines.Length);
            var tabbed = Array.FindIndex(lines, from, l => IsContent(l) && l[..(l.Length - l.TrimStart().Length)].Contains('\t'));
            return (tabbed < 0 ? line : tabbed + 1, null);
        }

        var edit = IndentationToEdit(lines, line, message);
        return (edit, edit == line ? null : $"noticed at line {line}; this line is indented differently from the lines after it");
    }

    private static int IndentationToEdit(string[] lines, int line, string message)
    {
        if (!message.Contains("did not find expected key", StringComparison.Ordinal)
            && !message.Contains("plain scalar value, found invalid mapping", StringComparison.Ordinal))
        {
            return line;
        }

        var at = line - 1;
        var previous = PreviousContent(lines, at);
        if (at < 0 || at >= lines.Length || !IsContent(lines[at]) || previous < 0)
        {
            return line;
        }

        var column = KeyColumn(lines[at]);
        var previousColumn = KeyColumn(lines[previous]);
        var after = Siblings(lines, at, step: 1, column);
        if (previousColumn > column)
        {
            // The lines just before are indented deeper than the reported one, which matches no open mapping: either it
            // is indented too little, or the block before it (from its first line) too far.
            var first = previous;
            for (var i = PreviousContent(lines, previous); i >= 0 && KeyColumn(lines[i]) > column; i = PreviousContent(lines, i))
            {
                first = i;
            }

            var blockColumn = Enumerable.Range(first, previous - first + 1).Where(i => IsContent(lines[i])).Min(i => KeyColumn(lines[i]));
            var before = Enumerable.Range(first, previous - first + 1).Count(i => IsContent(lines[i]) && KeyColumn(lines[i]) == blockColumn);
            return before < after ? first + 1 : line;
        }

        if (previousColumn < column && HasInlineValue(lines[previous]))
        {
            // The reported line was read as the rest of the previous line's value: either it is indented too far, or the
            // previous line too little, which is all but certain when it leaves the "key:" just before it empty and the
            // reported line has siblings that agree with it.
            var opener = PreviousContent(lines, previous);
            var emptied = opener >= 0 && KeyColumn(lines[opener]) >= previousColumn && OpensBlock(lines[opener]);
            return (emptied && after >= 2) || Siblings(lines, previous, step: -1, previousColumn) < after ? previous + 1 : line;
        }

        return line;
    }

    /// <summary>
    /// How many lines, from <paramref name="from"/> on in the direction of <paramref name="step"/>, are keys (or list
    /// items) at <paramref name="column"/>, until a line indented less; deeper lines are their children and are passed over.
    /// </summary>
    private static int Siblings(string[] lines, int from, int step, int column)
    {
        var count = 0;
        for (var i = from; i >= 0 && i < lines.Length; i += step)
        {
            if (!IsContent(lines[i]))
            {
                continue;
            }

            var key = KeyColumn(lines[i]);
            if (key < column)
            {
                break;
            }

            count += key == column ? 1 : 0;
        }

        return count;
    }

    private static int PreviousContent(string[] lines, int index)
    {
        var i = Math.Min(index, lines.Length) - 1;
        while (i >= 0 && !IsContent(lines[i]))
        {
            i--;
        }

        return i;
    }

    /// <summary>Neither blank nor only a comment.</summary>
    private static bool IsContent(string line) => line.TrimStart() is { Length: > 0 } text && text[0] != '#';

    /// <summary>Where the line's key or value starts, past its indentation and any list markers ("- ").</summary>
    private static int KeyColumn(string line)
    {
        var i = 0;
        while (i < line.Length && (line[i] == ' ' || (line[i] == '-' && (i + 1 == line.Length || line[i + 1] == ' '))))
        {
            i++;
        }

        return i;
    }

    /// <summary>"key:" with nothing after it but a comment: the lines after it, deeper, are its value.</summary>
    private static bool OpensBlock(string line)
    {
        var comment = line.IndexOf(" #", StringComparison.Ordinal);
        return (comment < 0 ? line : line[..comment]).TrimEnd().EndsWith(':');
    }

    /// <summary>"key: value" with a value on the line, so that a deeper next line cannot be its child.</summary>
    private static bool HasInlineValue(string line)
    {
        var colon = line.IndexOf(": ", KeyColumn(line), StringComparison.Ordinal);
        var value = colon < 0 ? "" : line[(colon + 2)..].Trim();
        return value.Length > 0 && value[0] is not ('#' or '|' or '>');
    }
}
