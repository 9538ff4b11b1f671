using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace RolloutGate.Infrastructure;

/// <summary>
/// Text from outside (a reason, a version, an actor's name) as part of one log line: a line break in it would start
/// what reads as a line of its own, so that a reason could forge an entry ("Decision inbox ... rollback by alice").
/// </summary>
public static class LogText
{
    /// <summary>
    /// <paramref name="text"/> with every control character (C0, DEL, C1) and line or paragraph separator written as an
    /// escape: <c>\n</c>, <c>\r</c>, <c>\t</c>, else <c>\uXXXX</c>. A backslash stays as it is; null stays null.
    /// </summary>
    [return: NotNullIfNotNull(nameof(text))]
    public static string? OneLine(string? text)
    {
        if (text is null || !text.Any(Breaks))
        {
            return text;
        }

        var line = new StringBuilder(text.Length + 8);
        foreach (var c in text)
        {
            _ = c switch
            {
                '\n' => line.Append("\\n"),
                '\r' => line.Append("\\r"),
                '\t' => line.Append("\\t"),
                _ when Breaks(c) => line.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:X4}"),
                _ => line.Append(c),
            };
        }

        return line.ToString();
    }

    /// <summary>Whether <paramref name="c"/> is a control character or a Unicode line or paragraph separator.</summary>
    public static bool Breaks(char c) => char.IsControl(c) || c is '\u2028' or '\u2029';
}
