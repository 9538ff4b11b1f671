using RolloutGate.Infrastructure;

namespace RolloutGate.Cli;

/// <summary>
/// The command line's plain-text tables (gate's checks, gate wait's metrics, audit's events and summary): every column
/// but the last padded to its widest cell, two spaces apart, so that the columns line up whatever their lengths; the
/// last, free text such as a detail, is not padded. Control characters in a cell are written as escapes (<see cref="LogText.OneLine"/>).
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

        // Cells quote what others wrote (a webhook's initiator, an alert's labels in a check's detail): a line break
        // there would start what reads as a row, or a verdict line, of its own, and an escape sequence would drive the terminal.
        rows = rows.Select(row => row.Select(cell => LogText.OneLine(cell)).ToArray()).ToList();
        var widths = rows[0].Select((_, column) => rows.Max(row => row[column].Length)).ToArray();
        foreach (var row in rows)
        {
            await writer.WriteLineAsync(indent + string.Join("  ", row.Select((cell, column) => column < row.Length - 1 ? cell.PadRight(widths[column]) : cell)));
        }
    }
}
