namespace RolloutGate.Cli;

/// <summary>
/// The command line's plain-text tables (gate's checks, gate wait's metrics, audit's events and summary): every column
/// but the last padded to its widest cell, two spaces apart, so that the columns line up whatever their lengths; the
/// last, free text such as a detail, is not padded.
/// </summary>
public static class TextTable
{
    /// <summary><paramref name="rows"/> (a header first, if any), each line starting with <paramref name="indent"/>; nothing when there are none.</summary>
    public static async Task WriteAsync(TextWriter writer, string indent, IReadOnlyList<string[]> rows)
    {
        if (rows.Count == 0)
        {
            return;
        }

        var widths = rows[0].Select((_, column) => rows.Max(row => row[column].Length)).ToArray();
        foreach (var row in rows)
        {
            await writer.WriteLineAsync(indent + string.Join("  ", row.Select((cell, column) => column < row.Length - 1 ? cell.PadRight(widths[column]) : cell)));
        }
    }
}
